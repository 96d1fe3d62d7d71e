package passes

import (
	"path/filepath"
	"testing"

	"github.com/openeas/openeas/internal/blade/onnx"
)

// TestConformanceSuiteNoErrors runs the lossless passes over every model of
// Debian's ONNX backend suite: none may fail or panic, and two runs must
// give identical bytes. (Numerical equality on real models is checked with
// ONNX Runtime in the other tests and by blade's conformance run.)
func TestConformanceSuiteNoErrors(t *testing.T) {
	paths, _ := filepath.Glob("/usr/share/libonnx-testdata/data/*/*/model.onnx")
	if len(paths) == 0 {
		t.Skip("libonnx-testdata not installed")
	}
	total := map[string]int{}
	for _, p := range paths {
		var digests [2]string
		for i := range digests {
			m, err := onnx.Load(p)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			counts, err := Run(onnx.ModelGraph(m), Lossless())
			if err != nil {
				t.Errorf("%s: %v", p, err)
				break
			}
			if i == 0 {
				for k, v := range counts {
					total[k] += v
				}
			}
			digests[i] = digest(t, m)
		}
		if digests[0] != digests[1] {
			t.Errorf("%s: passes are not deterministic", p)
		}
	}
	t.Logf("%d models; rewrites: %v", len(paths), total)
}

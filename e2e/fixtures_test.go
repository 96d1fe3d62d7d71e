package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
)

// buildTestPlugin builds the test plugin (testdata/plugins/scale-plugin) into a temp dir and
// returns its absolute path, for an image "local://<path>".
func buildTestPlugin(t *testing.T, e env) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "scale-plugin")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/plugins/scale-plugin")
	cmd.Dir = e.repo
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build test plugin: %v\n%s", err, b)
	}
	return out
}

// scaleOutputs writes a copy of the model whose first output is multiplied by factor:
// a "new model version" with the same signature and predictably different answers.
func scaleOutputs(t *testing.T, src, dst string, factor float32) {
	t.Helper()
	m, err := onnx.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	g := m.Graph
	out := g.Output[0].GetName()
	inner := out + "_unscaled"
	for _, n := range g.Node {
		for i, o := range n.Output {
			if o == out {
				n.Output[i] = inner
			}
		}
	}
	g.Initializer = append(g.Initializer, onnx.Float32Tensor("e2e_scale", nil, []float32{factor}))
	g.Node = append(g.Node, &onnxpb.NodeProto{OpType: proto.String("Mul"), Input: []string{inner, "e2e_scale"}, Output: []string{out}, Name: proto.String("e2e_scale_mul")})
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := onnx.Save(m, dst, 0); err != nil {
		t.Fatal(err)
	}
}

package tf

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/processor/onnxrt"
	"github.com/openeas/openeas/internal/tensor"
)

var benchFixtures = []string{"emotion", "blazeface", "nsfw-mobilenet-v2", "movenet-lightning", "facemesh-attention"}

// BenchmarkConvert measures GraphDef→ONNX conversion (decode included) per fixture.
func BenchmarkConvert(b *testing.B) {
	for _, name := range benchFixtures {
		b.Run(name, func(b *testing.B) {
			pb, err := os.ReadFile(filepath.Join(fixturesDir(), name, "frozen.pb"))
			if err != nil {
				b.Skip(err)
			}
			for b.Loop() {
				if _, err := Convert(context.Background(), pb, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkORTDirect runs the converted model on ONNX Runtime in process: the baseline for
// the served latency (docs/benchmarks.md, ## TensorFlow).
func BenchmarkORTDirect(b *testing.B) {
	t := &testing.T{}
	if os.Getenv("OPENEAS_ORT_LIB") == "" {
		b.Skip("OPENEAS_ORT_LIB is not set")
	}
	initORT(t)
	for _, name := range benchFixtures {
		b.Run(name, func(b *testing.B) {
			dir := filepath.Join(fixturesDir(), name)
			pb, err := os.ReadFile(filepath.Join(dir, "frozen.pb"))
			if err != nil {
				b.Skip(err)
			}
			ref := loadRef(t, dir)
			res, err := Convert(context.Background(), pb, Options{})
			if err != nil {
				b.Fatal(err)
			}
			path := filepath.Join(b.TempDir(), "model.onnx")
			if err := onnx.Save(res.Model, path, 0); err != nil {
				b.Fatal(err)
			}
			p, err := onnxrt.Open(path, processor.Runtime{})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			feeds := map[string]*tensor.Tensor{}
			for _, in := range ref.Inputs {
				feeds[ONNXName(in.Name)] = in.tensor(t)
			}
			for b.Loop() {
				if _, err := p.Predict(context.Background(), feeds, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

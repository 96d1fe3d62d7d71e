package torchopt

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/blade"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/processor/torchproc"
	"github.com/openeas/openeas/internal/torch"
)

const fixtures = "../../torch/testdata"

func initShim(t testing.TB) {
	t.Helper()
	p := os.Getenv("OPENEAS_TORCH_SHIM")
	if p == "" {
		t.Skip("OPENEAS_TORCH_SHIM is not set: no libtorch shim to test with (" + torch.InstallHint + ")")
	}
	if err := torch.Init(p); err != nil {
		t.Fatal(err)
	}
}

func TestOptimize(t *testing.T) {
	initShim(t)
	tests := []struct {
		model, level, shapes string
		verified             []string // candidates that must pass verification
		message              string   // in the diagnosis
	}{
		{"cnn_bn.pt", "o1", "2*3*16*16", []string{"freeze,threads=1", "freeze+optimize_for_inference,threads=1"}, "synthetic"},
		{"mlp.pt", "o2", "4*8", []string{"freeze,threads=1", "int8-dynamic-linear,threads=1"}, "synthetic"},
		{"tuple.pt", "o2", "5", []string{"threads=1"}, "no aten::linear with a constant float weight"},
	}
	for _, tc := range tests {
		t.Run(tc.model+"/"+tc.level, func(t *testing.T) {
			out := t.TempDir()
			res, err := Optimize(context.Background(), blade.Options{
				Model: filepath.Join(fixtures, tc.model), OutputDir: out, Level: tc.level,
				InputShapes: [][]string{{tc.shapes}}, Threads: []int{1}, Runs: 3,
			})
			if err != nil {
				t.Fatal(err)
			}
			r := res.Report
			got := map[string]string{}
			for _, c := range r.Candidates {
				got[c.Name] = c.Verdict
			}
			for _, name := range tc.verified {
				v, ok := got[name]
				if !ok || strings.HasPrefix(v, "rejected") || strings.HasPrefix(v, "failed") {
					t.Errorf("candidate %s: %q; want it verified (all: %v)", name, v, got)
				}
			}
			if !strings.Contains(r.Diagnosis.Message+" "+r.Diagnosis.TestDataSource, tc.message) {
				t.Errorf("diagnosis %+v lacks %q", r.Diagnosis, tc.message)
			}
			if r.Chosen == "" || r.Overall.OptimizedMS <= 0 || r.Overall.OptimizedMS > r.Overall.BaselineMS {
				t.Errorf("overall %+v chosen %q: never slower than the baseline", r.Overall, r.Chosen)
			}
			// The shipped model serves with the shipped settings and its signature file.
			for _, f := range []string{tc.model, tc.model + torchproc.SignatureSuffix, blade.RuntimeFile, "report.json"} {
				if _, err := os.Stat(filepath.Join(out, f)); err != nil {
					t.Errorf("output lacks %s", f)
				}
			}
			p, err := torchproc.Open(res.ModelPath, res.Runtime, torchproc.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if sig := p.Signature(); sig.Inputs[0].Shape == nil || len(sig.Outputs) == 0 {
				t.Errorf("shipped signature %+v lacks shapes", sig)
			}
		})
	}
}

func TestOptimizeNeedsShapes(t *testing.T) {
	initShim(t)
	_, err := Optimize(context.Background(), blade.Options{Model: filepath.Join(fixtures, "cnn_bn.pt"), OutputDir: t.TempDir(), Runs: 1})
	if err == nil || !strings.Contains(err.Error(), "give test_data or input_shapes") {
		t.Fatalf("no shapes anywhere: %v", err)
	}
}

func TestPluginRequest(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "model.pt"), []byte("x"), 0o644)
	req, ok, err := PluginRequest(blade.PluginEnv{Input: dir})
	if err != nil || !ok || req.ModelFile != "model.pt" || req.Options.Level != "o1" {
		t.Fatalf("single .pt, no config: %+v %v %v", req, ok, err)
	}
	cfg := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfg, []byte(`{"config":{"model_info":{"model.pt":{"optimization_level":"o2"}}},"processor":"pytorch_cpu_1.13"}`), 0o644)
	req, ok, err = PluginRequest(blade.PluginEnv{Input: dir, Config: cfg})
	if err != nil || !ok || req.Options.Level != "o2" {
		t.Fatalf("model_info naming model.pt: %+v %v %v", req, ok, err)
	}
	onnx := t.TempDir()
	os.WriteFile(filepath.Join(onnx, "model.onnx"), []byte("x"), 0o644)
	if _, ok, err := PluginRequest(blade.PluginEnv{Input: onnx}); ok || err != nil {
		t.Fatalf("an ONNX model is not torchopt's: %v %v", ok, err)
	}
	_ = processor.Runtime{}
}

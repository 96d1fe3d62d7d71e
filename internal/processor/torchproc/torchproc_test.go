package torchproc

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
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

func open(t *testing.T, path string, rt processor.Runtime) *Processor {
	t.Helper()
	p, err := Open(path, rt, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func f32(shape []int64, v ...float32) *tensor.Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return &tensor.Tensor{DType: tensor.Float, Shape: shape, Data: b}
}

func ramp(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i%7)/3 - 1
	}
	return v
}

// copyModel puts a fixture into a fresh directory, where a test may add a signature file.
func copyModel(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPredictEqualsLibtorch: the processor's values are exactly libtorch's on the same input.
func TestPredictEqualsLibtorch(t *testing.T) {
	initShim(t)
	for _, tc := range []struct {
		file  string
		input string
		shape []int64
	}{
		{"mlp.pt", "x", []int64{3, 8}},
		{"cnn_bn.pt", "image", []int64{2, 3, 16, 16}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(fixtures, tc.file)
			p := open(t, path, processor.Runtime{})
			x := f32(tc.shape, ramp(int(tensor.NumElements(tc.shape)))...)
			got, err := p.Predict(context.Background(), map[string]*tensor.Tensor{tc.input: x}, nil)
			if err != nil {
				t.Fatal(err)
			}
			m, err := torch.Load(path, torch.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			want, err := m.Forward(context.Background(), []*tensor.Tensor{x})
			if err != nil {
				t.Fatal(err)
			}
			if g := got["output_0"]; g == nil || string(g.Data) != string(want[0].Tensor.Data) || len(g.Shape) != 2 || g.Shape[0] != tc.shape[0] {
				t.Fatalf("processor output %v differs from libtorch's %v", g, want[0].Tensor)
			}
		})
	}
}

func TestSignature(t *testing.T) {
	initShim(t)
	mlp := open(t, filepath.Join(fixtures, "mlp.pt"), processor.Runtime{}).Signature()
	if len(mlp.Inputs) != 1 || mlp.Inputs[0].Name != "x" || tensor.ShapeString(mlp.Inputs[0].Shape) != "[?,8]" || mlp.Outputs[0].Name != "output_0" {
		t.Errorf("mlp (signature file): %+v", mlp)
	}
	cnn := open(t, filepath.Join(fixtures, "cnn_bn.pt"), processor.Runtime{}).Signature()
	if len(cnn.Inputs) != 1 || cnn.Inputs[0].Name != "image" || cnn.Inputs[0].DType != tensor.Invalid || cnn.Inputs[0].Shape != nil {
		t.Errorf("cnn_bn (schema only): %+v", cnn)
	}
	tup := open(t, filepath.Join(fixtures, "tuple.pt"), processor.Runtime{}).Signature()
	if got := strings.Join(names(tup.Outputs), ","); got != "output_0,output_1_0,output_1_1" || tup.Outputs[2].DType != tensor.Int64 {
		t.Errorf("tuple outputs %s %+v", got, tup.Outputs)
	}

	// A dict result needs described inputs; from them one run on zeros learns the outputs.
	dict := copyModel(t, "dict.pt")
	if _, err := Open(dict, processor.Runtime{}, Options{}); err == nil || !strings.Contains(err.Error(), "dict.pt.signature.json") {
		t.Fatalf("dict model without a signature file: %v; want an error naming the file to write", err)
	}
	if err := WriteSignatureFile(dict, processor.Signature{Inputs: []tensor.Info{
		{Name: "x", DType: tensor.Float, Shape: []int64{-1}}, {Name: "ids", DType: tensor.Int64, Shape: []int64{-1}},
	}}); err != nil {
		t.Fatal(err)
	}
	ds := open(t, dict, processor.Runtime{}).Signature()
	if got := strings.Join(names(ds.Outputs), ","); got != "scaled,total" {
		t.Errorf("dict outputs learnt: %s", got)
	}
}

// TestUndeclaredDTypeReachesLibtorch: without a signature file the input dtype is not
// declared, so a request's int64 tensor reaches libtorch as int64 (forward here is x*2) instead
// of being refused for not being float32.
func TestUndeclaredDTypeReachesLibtorch(t *testing.T) {
	initShim(t)
	tup := open(t, filepath.Join(fixtures, "tuple.pt"), processor.Runtime{})
	x := &tensor.Tensor{DType: tensor.Int64, Shape: []int64{3}, Data: make([]byte, 24)}
	for i, v := range []int64{1, -2, 40} {
		binary.LittleEndian.PutUint64(x.Data[8*i:], uint64(v))
	}
	out, err := tup.Predict(context.Background(), map[string]*tensor.Tensor{"x": x}, []string{"output_0"})
	if err != nil {
		t.Fatal(err)
	}
	y := out["output_0"]
	if y == nil || y.DType != tensor.Int64 || len(y.Data) != 24 ||
		int64(binary.LittleEndian.Uint64(y.Data[8:])) != -4 || int64(binary.LittleEndian.Uint64(y.Data[16:])) != 80 {
		t.Fatalf("x*2 of int64 [1 -2 40] = %+v", y)
	}
}

func TestBadInputs(t *testing.T) {
	initShim(t)
	mlp := open(t, filepath.Join(fixtures, "mlp.pt"), processor.Runtime{})
	cnn := open(t, filepath.Join(fixtures, "cnn_bn.pt"), processor.Runtime{})
	ids := &tensor.Tensor{DType: tensor.Int64, Shape: []int64{1, 8}, Data: make([]byte, 64)}
	tests := []struct {
		name    string
		p       *Processor
		in      map[string]*tensor.Tensor
		outputs []string
		input   string // the input the error names
		msg     string
	}{
		{"missing", mlp, map[string]*tensor.Tensor{}, nil, "x", "missing"},
		{"unknown input", mlp, map[string]*tensor.Tensor{"x": f32([]int64{1, 8}, ramp(8)...), "y": f32([]int64{1}, 1)}, nil, "y", "unknown input"},
		{"dtype", mlp, map[string]*tensor.Tensor{"x": ids}, nil, "x", "dtype int64, expected float32"},
		{"shape", mlp, map[string]*tensor.Tensor{"x": f32([]int64{1, 3}, 1, 2, 3)}, nil, "x", "shape [1 3], expected [?,8]"},
		{"unknown output", mlp, map[string]*tensor.Tensor{"x": f32([]int64{1, 8}, ramp(8)...)}, []string{"logits"}, "logits", "unknown output"},
		{"rank judged by the model", cnn, map[string]*tensor.Tensor{"image": f32([]int64{3}, 1, 2, 3)}, nil, "", "the model rejected the inputs: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.p.Predict(context.Background(), tc.in, tc.outputs)
			ie, ok := err.(*processor.InputError)
			if !ok || ie.Input != tc.input || !strings.Contains(ie.Msg, tc.msg) {
				t.Fatalf("got %v; want an InputError about %q containing %q", err, tc.input, tc.msg)
			}
			if strings.Contains(err.Error(), "Traceback") || strings.Contains(err.Error(), "frame #") {
				t.Errorf("message carries a traceback: %v", err)
			}
		})
	}
}

func TestRuntimeSettings(t *testing.T) {
	initShim(t)
	path := filepath.Join(fixtures, "cnn_bn.pt")
	x := map[string]*tensor.Tensor{"image": f32([]int64{1, 3, 16, 16}, ramp(768)...)}
	plain, err := open(t, path, processor.Runtime{}).Predict(context.Background(), x, nil)
	if err != nil {
		t.Fatal(err)
	}
	opt := open(t, path, processor.Runtime{IntraOpThreads: 1, ConfigEntries: map[string]string{ConfigOptimizeForInference: "true"}})
	if n := torch.Threads(); n != 1 {
		t.Errorf("intra-op threads %d after IntraOpThreads 1", n)
	}
	got, err := opt.Predict(context.Background(), x, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := plain["output_0"].Data, got["output_0"].Data
	for i := 0; i < len(a); i += 4 {
		u := math.Float32frombits(binary.LittleEndian.Uint32(a[i:]))
		v := math.Float32frombits(binary.LittleEndian.Uint32(b[i:]))
		if math.Abs(float64(u-v)) > 1e-4 {
			t.Fatalf("optimize_for_inference changed value %d: %g vs %g", i/4, u, v)
		}
	}
	if !strings.HasPrefix(opt.RuntimeVersion(), "libtorch 1.") && !strings.HasPrefix(opt.RuntimeVersion(), "libtorch 2.") {
		t.Errorf("RuntimeVersion %q", opt.RuntimeVersion())
	}
}

func TestCorruptModel(t *testing.T) {
	initShim(t)
	bad := filepath.Join(t.TempDir(), "model.pt")
	if err := os.WriteFile(bad, []byte("not a TorchScript archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bad, processor.Runtime{}, Options{}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("corrupt model: %v; want an error naming the file", err)
	}
}

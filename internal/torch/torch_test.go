package torch

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/tensor"
)

// initShim loads the shim named by OPENEAS_TORCH_SHIM (make test sets it) or skips.
func initShim(t testing.TB) {
	t.Helper()
	p := os.Getenv("OPENEAS_TORCH_SHIM")
	if p == "" {
		t.Skip("OPENEAS_TORCH_SHIM is not set: no libtorch shim to test with (" + InstallHint + ")")
	}
	if err := Init(p); err != nil {
		t.Fatal(err)
	}
}

type expectedCase struct {
	Input  []float32 `json:"input"`
	Shape  []int64   `json:"shape"`
	Output []float32 `json:"output"`
}

func readExpected(t testing.TB) map[string]expectedCase {
	t.Helper()
	b, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]expectedCase
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func floatTensor(shape []int64, v []float32) *tensor.Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return &tensor.Tensor{DType: tensor.Float, Shape: shape, Data: b}
}

func int64Tensor(shape []int64, v []int64) *tensor.Tensor {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return &tensor.Tensor{DType: tensor.Int64, Shape: shape, Data: b}
}

func floats(t *tensor.Tensor) []float32 {
	v := make([]float32, len(t.Data)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return v
}

func load(t *testing.T, name string) *Model {
	t.Helper()
	m, err := Load(filepath.Join("testdata", name), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestInitMissingShim(t *testing.T) {
	if initialized() {
		t.Skip("the shim is already loaded in this process")
	}
	err := Init(filepath.Join(t.TempDir(), ShimName))
	if err == nil || !strings.Contains(err.Error(), "apt-get install libtorch-dev") {
		t.Fatalf("Init of a missing shim: %v; want an error saying what to install", err)
	}
	if _, err := Load("testdata/mlp.pt", LoadOptions{}); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("Load before Init: %v, want ErrNotInitialized", err)
	}
}

func TestForwardMatchesPyTorch(t *testing.T) {
	initShim(t)
	exp := readExpected(t)
	for _, name := range []string{"mlp", "cnn_bn"} {
		t.Run(name, func(t *testing.T) {
			m := load(t, name+".pt")
			c := exp[name]
			outs, err := m.Forward(context.Background(), []*tensor.Tensor{floatTensor(c.Shape, c.Input)})
			if err != nil {
				t.Fatal(err)
			}
			if len(outs) != 1 || outs[0].Name != "output_0" {
				t.Fatalf("outputs %v, want one named output_0", outs)
			}
			got := floats(outs[0].Tensor)
			if len(got) != len(c.Output) {
				t.Fatalf("%d values, want %d", len(got), len(c.Output))
			}
			for i := range got {
				if math.Abs(float64(got[i]-c.Output[i])) > 1e-5 {
					t.Fatalf("value %d = %g, PyTorch gave %g", i, got[i], c.Output[i])
				}
			}
		})
	}
}

func TestForwardFlattensOutputs(t *testing.T) {
	initShim(t)
	x := floatTensor([]int64{2}, []float32{1.5, -2})
	t.Run("nested tuple", func(t *testing.T) {
		outs, err := load(t, "tuple.pt").Forward(context.Background(), []*tensor.Tensor{x})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"output_0", "output_1_0", "output_1_1"}
		if len(outs) != 3 {
			t.Fatalf("%d outputs, want %v", len(outs), want)
		}
		for i, o := range outs {
			if o.Name != want[i] {
				t.Errorf("output %d named %q, want %q", i, o.Name, want[i])
			}
		}
		if v := floats(outs[0].Tensor); v[0] != 3 || v[1] != -4 {
			t.Errorf("x*2 = %v", v)
		}
		if v := floats(outs[1].Tensor); len(outs[1].Tensor.Shape) != 0 || v[0] != -0.5 {
			t.Errorf("x.sum() = %v shape %v, want scalar -0.5", v, outs[1].Tensor.Shape)
		}
		if o := outs[2].Tensor; o.DType != tensor.Int64 || int64(binary.LittleEndian.Uint64(o.Data)) != 3 {
			t.Errorf("the int 3 came back as %v %v", o.DType, o.Data)
		}
	})
	t.Run("dict", func(t *testing.T) {
		outs, err := load(t, "dict.pt").Forward(context.Background(), []*tensor.Tensor{x, int64Tensor([]int64{2}, []int64{2, 3})})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]*tensor.Tensor{}
		for _, o := range outs {
			got[o.Name] = o.Tensor
		}
		if v := floats(got["scaled"]); len(v) != 2 || v[0] != 3 || v[1] != -6 {
			t.Errorf("scaled = %v, want [3 -6]", v)
		}
		if o := got["total"]; o == nil || int64(binary.LittleEndian.Uint64(o.Data)) != 5 {
			t.Errorf("total = %v, want 5", o)
		}
	})
}

func TestSchema(t *testing.T) {
	initShim(t)
	tests := []struct {
		file    string
		inputs  []string
		outputs []string // nil: known only at run time
	}{
		{"mlp.pt", []string{"x"}, []string{"output_0"}},
		{"tuple.pt", []string{"x"}, []string{"output_0", "output_1_0", "output_1_1"}},
		{"dict.pt", []string{"x", "ids"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			s, err := load(t, tc.file).Schema()
			if err != nil {
				t.Fatal(err)
			}
			var in, out []string
			for _, a := range s.Inputs {
				in = append(in, a.Name)
			}
			for _, a := range s.Outputs {
				out = append(out, a.Name)
			}
			if strings.Join(in, ",") != strings.Join(tc.inputs, ",") || strings.Join(out, ",") != strings.Join(tc.outputs, ",") || (tc.outputs == nil) != (s.Outputs == nil) {
				t.Errorf("schema %+v: inputs %v outputs %v, want %v and %v", s, in, out, tc.inputs, tc.outputs)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	initShim(t)
	corrupt := filepath.Join(t.TempDir(), "corrupt.pt")
	if err := os.WriteFile(corrupt, []byte("PK\x03\x04 not really a zip archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(corrupt, LoadOptions{})
	var te *Error
	if !errors.As(err, &te) || !strings.Contains(err.Error(), corrupt) {
		t.Fatalf("loading a corrupt file: %v; want a *torch.Error naming the file", err)
	}
	m := load(t, "mlp.pt")
	_, err = m.Forward(context.Background(), []*tensor.Tensor{floatTensor([]int64{1, 3}, []float32{1, 2, 3})})
	if !errors.As(err, &te) || te.Op != "forward" || !strings.Contains(te.Msg, "shapes cannot be multiplied") {
		t.Fatalf("wrong inner dimension: %v; want libtorch's forward error", err)
	}
	if strings.Contains(err.Error(), "frame #") {
		t.Errorf("error carries a C++ backtrace: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Forward(ctx, []*tensor.Tensor{floatTensor([]int64{1, 8}, make([]float32, 8))}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	m.Close()
	if _, err := m.Forward(context.Background(), nil); err == nil {
		t.Fatal("Forward after Close succeeded")
	}
}

func TestOptimize(t *testing.T) {
	initShim(t)
	exp := readExpected(t)
	dir := t.TempDir()
	tests := []struct {
		model, passes string
		tol           float64
		logHas        string
	}{
		{"cnn_bn", "freeze", 1e-5, "freeze"},
		{"mlp", "freeze,quantize_dynamic", 0.05, "2 linear layers to int8"},
	}
	for _, tc := range tests {
		t.Run(tc.model+"/"+tc.passes, func(t *testing.T) {
			out := filepath.Join(dir, tc.model+"-opt.pt")
			log, err := Optimize(filepath.Join("testdata", tc.model+".pt"), out, strings.Split(tc.passes, ","))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(log, tc.logHas) {
				t.Errorf("log %q lacks %q", log, tc.logHas)
			}
			m, err := Load(out, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			c := exp[tc.model]
			outs, err := m.Forward(context.Background(), []*tensor.Tensor{floatTensor(c.Shape, c.Input)})
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range floats(outs[0].Tensor) {
				if math.Abs(float64(v-c.Output[i])) > tc.tol {
					t.Fatalf("value %d = %g, original model %g (tolerance %g)", i, v, c.Output[i], tc.tol)
				}
			}
		})
	}
	if _, err := Optimize("testdata/mlp.pt", filepath.Join(dir, "x.pt"), []string{"quantize_dynamic"}); err == nil || !strings.Contains(err.Error(), "needs freeze first") {
		t.Errorf("quantize without freeze: %v", err)
	}
}

package onnxrt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/ort"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

const (
	goTestData = "../../ort/testdata/onnxruntime_go"
	clsModel   = "../../../.cache/models/ocr-1.4.2/ch_ppocr_mobile_v2.0_cls_infer.onnx"
)

func initORT(t *testing.T) {
	t.Helper()
	p := os.Getenv("OPENEAS_ORT_LIB")
	if p == "" {
		t.Skip("OPENEAS_ORT_LIB is not set; point it at libonnxruntime.so (scripts/fetch-deps.sh puts one in .cache/) to run the ONNX Runtime tests")
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("OPENEAS_ORT_LIB=%s: %v; run scripts/fetch-deps.sh to fetch ONNX Runtime", p, err)
	}
	if err := ort.Init(p); err != nil {
		t.Fatalf("ort.Init(%s): %v", p, err)
	}
}

func open(t *testing.T, path string, rt processor.Runtime) processor.Processor {
	t.Helper()
	p, err := Open(path, rt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func f32Tensor(shape []int64, vals []float32) *tensor.Tensor {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return &tensor.Tensor{DType: tensor.Float, Shape: shape, Data: b}
}

func f32Values(t *testing.T, tt *tensor.Tensor) []float32 {
	t.Helper()
	if tt == nil || tt.DType != tensor.Float {
		t.Fatalf("want a float32 tensor, got %+v", tt)
	}
	out := make([]float32, len(tt.Data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(tt.Data[4*i:]))
	}
	return out
}

type clsReference struct {
	Model       string    `json:"model"`
	Input       string    `json:"input"`
	InputShape  []int64   `json:"input_shape"`
	Output      string    `json:"output"`
	OutputShape []int64   `json:"output_shape"`
	Values      []float64 `json:"values"`
}

// loadCls opens the PaddleOCR classifier and its reference (testdata/make_cls_reference.py,
// a numpy evaluation of the graph) or skips when the model is not fetched.
func loadCls(t *testing.T) clsReference {
	t.Helper()
	if _, err := os.Stat(clsModel); err != nil {
		t.Skipf("%s missing (run scripts/fetch-deps.sh): %v", clsModel, err)
	}
	b, err := os.ReadFile("testdata/cls_reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref clsReference
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

// clsInput is the reference input: ((7n + 13c + 17h + 23w) mod 256) / 255 - 0.5, in float32.
func clsInput(shape []int64) *tensor.Tensor {
	vals := make([]float32, 0, tensor.NumElements(shape))
	for n := range shape[0] {
		for c := range shape[1] {
			for h := range shape[2] {
				for w := range shape[3] {
					vals = append(vals, float32((7*n+13*c+17*h+23*w)%256)/255-0.5)
				}
			}
		}
	}
	return f32Tensor(shape, vals)
}

func checkCls(t *testing.T, ref clsReference, out map[string]*tensor.Tensor) {
	t.Helper()
	got := out[ref.Output]
	if got == nil {
		t.Fatalf("output %q missing from %v", ref.Output, out)
	}
	if !slices.Equal(got.Shape, ref.OutputShape) {
		t.Fatalf("shape %v, want %v", got.Shape, ref.OutputShape)
	}
	for i, v := range f32Values(t, got) {
		if math.Abs(float64(v)-ref.Values[i]) > 2e-5 {
			t.Fatalf("value %d = %v, reference %v (all: %v)", i, v, ref.Values[i], f32Values(t, got))
		}
	}
}

func TestClsMatchesReference(t *testing.T) {
	initORT(t)
	ref := loadCls(t)
	p := open(t, clsModel, processor.Runtime{})
	sig := p.Signature()
	if len(sig.Inputs) != 1 || sig.Inputs[0].Name != ref.Input || !slices.Equal(sig.Inputs[0].Shape, []int64{-1, 3, -1, -1}) ||
		len(sig.Outputs) != 1 || sig.Outputs[0].Name != ref.Output || !slices.Equal(sig.Outputs[0].Shape, []int64{-1, 2}) {
		t.Fatalf("signature %+v", sig)
	}
	out, err := p.Predict(context.Background(), map[string]*tensor.Tensor{ref.Input: clsInput(ref.InputShape)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkCls(t, ref, out)
}

// Each runtime setting is applied without error and leaves the numbers unchanged.
func TestRuntimeSettings(t *testing.T) {
	initORT(t)
	ref := loadCls(t)
	no := false
	for _, rt := range []processor.Runtime{
		{IntraOpThreads: 1},
		{InterOpThreads: 2, ExecutionMode: "parallel"},
		{ExecutionMode: "sequential"},
		{GraphOptimizationLevel: "disable"},
		{GraphOptimizationLevel: "basic"},
		{GraphOptimizationLevel: "extended"},
		{GraphOptimizationLevel: "all"},
		{AllowSpinning: &no},
		{ConfigEntries: map[string]string{"session.disable_prepacking": "1"}},
	} {
		b, _ := json.Marshal(rt)
		t.Run(string(b), func(t *testing.T) {
			p := open(t, clsModel, rt)
			out, err := p.Predict(context.Background(), map[string]*tensor.Tensor{ref.Input: clsInput(ref.InputShape)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkCls(t, ref, out)
		})
	}
	if _, err := Open(clsModel, processor.Runtime{GraphOptimizationLevel: "fastest"}); err == nil ||
		!strings.Contains(err.Error(), "graph_optimization_level") {
		t.Fatalf("Open with a bad level: err = %v", err)
	}
}

func TestConcurrentPredict(t *testing.T) {
	initORT(t)
	ref := loadCls(t)
	p := open(t, clsModel, processor.Runtime{})
	in := map[string]*tensor.Tensor{ref.Input: clsInput(ref.InputShape)}
	var wg sync.WaitGroup
	results := make([]map[string]*tensor.Tensor, 8)
	errs := make([]error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				results[g], errs[g] = p.Predict(context.Background(), in, nil)
				if errs[g] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	for g := range 8 {
		if errs[g] != nil {
			t.Fatalf("goroutine %d: %v", g, errs[g])
		}
		checkCls(t, ref, results[g])
	}
}

func TestPredictSmallModels(t *testing.T) {
	initORT(t)
	cases := []struct {
		name   string
		file   string
		inputs map[string]*tensor.Tensor
		output string
		want   []float32
		shape  []int64
	}{
		{"dynamic batch", goTestData + "/example_dynamic_axes.onnx",
			map[string]*tensor.Tensor{"input_vectors": f32Tensor([]int64{2, 10}, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1})},
			"output_scalars", []float32{55, -1}, []int64{2}},
		{"zero-size output", goTestData + "/example_0_dim_output.onnx",
			map[string]*tensor.Tensor{"x": f32Tensor([]int64{2, 8}, make([]float32, 16))},
			"y", []float32{}, []int64{2, 0, 8}},
		{"zero inputs", "../../ort/testdata/zero_inputs.onnx", map[string]*tensor.Tensor{},
			"vec", []float32{42, -1.5}, []int64{2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := open(t, tc.file, processor.Runtime{})
			out, err := p.Predict(context.Background(), tc.inputs, []string{tc.output})
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 1 || !slices.Equal(out[tc.output].Shape, tc.shape) || !slices.Equal(f32Values(t, out[tc.output]), tc.want) {
				t.Fatalf("got %+v, want %s %v = %v", out, tc.output, tc.shape, tc.want)
			}
		})
	}
}

func TestPredictInputErrors(t *testing.T) {
	initORT(t)
	p := open(t, goTestData+"/example_multitype.onnx", processor.Runtime{})
	good := func() map[string]*tensor.Tensor {
		return map[string]*tensor.Tensor{
			"InputA": {DType: tensor.Uint8, Shape: []int64{1, 1, 1}, Data: []byte{3}},
			"InputB": {DType: tensor.Double, Shape: []int64{1, 2, 2}, Data: make([]byte, 32)},
		}
	}
	cases := []struct {
		name    string
		edit    func(map[string]*tensor.Tensor)
		outputs []string
		wantFor string // InputError.Input
		wantMsg string
	}{
		{"wrong dtype", func(m map[string]*tensor.Tensor) { m["InputA"].DType = tensor.Int8 }, nil, "InputA", "dtype int8, expected uint8"},
		{"wrong shape", func(m map[string]*tensor.Tensor) { m["InputB"].Shape = []int64{1, 4} }, nil, "InputB", "shape [1 4]"},
		{"data too short", func(m map[string]*tensor.Tensor) { m["InputB"].Data = m["InputB"].Data[:31] }, nil, "InputB", "needs 32 bytes"},
		{"missing input", func(m map[string]*tensor.Tensor) { delete(m, "InputB") }, nil, "InputB", "missing"},
		{"unknown input", func(m map[string]*tensor.Tensor) { m["InputC"] = m["InputA"] }, nil, "InputC", "unknown input"},
		{"unknown output", func(map[string]*tensor.Tensor) {}, []string{"OutputA", "Logits"}, "Logits", "unknown output"},
		{"output twice", func(map[string]*tensor.Tensor) {}, []string{"OutputB", "OutputB"}, "OutputB", "requested twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := good()
			tc.edit(in)
			_, err := p.Predict(context.Background(), in, tc.outputs)
			var ie *processor.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v, want *processor.InputError", err)
			}
			if ie.Input != tc.wantFor || !strings.Contains(ie.Msg, tc.wantMsg) {
				t.Fatalf("InputError{%q, %q}, want {%q, …%q…}", ie.Input, ie.Msg, tc.wantFor, tc.wantMsg)
			}
		})
	}
	out, err := p.Predict(context.Background(), good(), []string{"OutputB"})
	if err != nil || len(out) != 1 || out["OutputB"] == nil {
		t.Fatalf("good request after bad ones: %v, %v", out, err)
	}
}

func TestNonTensorOutputIsInputError(t *testing.T) {
	initORT(t)
	p := open(t, goTestData+"/sklearn_randomforest.onnx", processor.Runtime{})
	in := map[string]*tensor.Tensor{"X": f32Tensor([]int64{1, 4}, []float32{5.1, 3.5, 1.4, 0.2})}
	_, err := p.Predict(context.Background(), in, []string{"output_probability"})
	if !processor.IsInputError(err) {
		t.Fatalf("err = %v, want an InputError", err)
	}
}

func TestOpenBadFiles(t *testing.T) {
	initORT(t)
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(corrupt, []byte{0x08, 0xff, 0xff, 0xff}, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{corrupt, filepath.Join(dir, "absent.onnx")} {
		if p, err := Open(path, processor.Runtime{}); err == nil {
			p.Close()
			t.Errorf("Open(%s) succeeded", path)
		} else if !strings.Contains(err.Error(), path) {
			t.Errorf("Open(%s) error %q does not name the file", path, err)
		}
	}
}

func TestPredictCancel(t *testing.T) {
	initORT(t)
	if testing.Short() {
		t.Skip("allocates ~400 MB; skipped with -short")
	}
	p := open(t, goTestData+"/example_big_compute.onnx", processor.Runtime{})
	n := p.Signature().Inputs[0].Shape[1]
	in := map[string]*tensor.Tensor{"Input": {DType: tensor.Float, Shape: []int64{1, n}, Data: make([]byte, 4*n)}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	timer := time.AfterFunc(100*time.Millisecond, cancel)
	defer timer.Stop()
	_, err := p.Predict(ctx, in, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Predict error = %v, want context.Canceled", err)
	}
	var oe *ort.Error
	if !errors.As(err, &oe) {
		t.Fatalf("Predict error = %v, want ONNX Runtime's terminate status in the chain (the run was stopped inside ORT)", err)
	}
}

func TestPredictAfterClose(t *testing.T) {
	initORT(t)
	p, err := Open("../../ort/testdata/zero_inputs.onnx", processor.Runtime{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Predict(context.Background(), map[string]*tensor.Tensor{}, nil); !errors.Is(err, ort.ErrClosed) {
		t.Fatalf("Predict after Close = %v, want ort.ErrClosed", err)
	}
}

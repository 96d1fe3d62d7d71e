package ort

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/tensor"
)

const goTestData = "testdata/onnxruntime_go"

func newSession(tb testing.TB, path string, opts SessionOptions) *Session {
	tb.Helper()
	s, err := NewSession(path, opts)
	if err != nil {
		tb.Fatalf("NewSession: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestInitBadPathNamesIt(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "no-such-libonnxruntime.so")
	// Whether or not another test initialised the library first, the error names the path.
	err := Init(bad)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Init(%s) = %v, want an error naming the path", bad, err)
	}
}

func TestInitTwiceSamePath(t *testing.T) {
	initORT(t)
	if err := Init(os.Getenv("OPENEAS_ORT_LIB")); err != nil {
		t.Fatalf("second Init with the same path: %v", err)
	}
	if v := Version(); !strings.HasPrefix(v, "1.") {
		t.Errorf("Version() = %q, want 1.x.y", v)
	}
	if a := APIVersion(); a < minAPIVersion || a > 24 {
		t.Errorf("APIVersion() = %d, want %d..24", a, minAPIVersion)
	}
}

func TestFindLibrary(t *testing.T) {
	root := t.TempDir()
	bin := filepath.Join(root, "bin")
	cache := filepath.Join(root, ".cache")
	for _, d := range []string{bin, cache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	touch := func(p string) {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := FindLibrary(bin); got != "libonnxruntime.so.1" {
		t.Errorf("nothing present: got %q, want the system name", got)
	}
	touch(filepath.Join(cache, "libonnxruntime.so"))
	if got, want := FindLibrary(bin), filepath.Join(cache, "libonnxruntime.so"); got != want {
		t.Errorf("cache only: got %q, want %q", got, want)
	}
	touch(filepath.Join(bin, "libonnxruntime.so"))
	if got, want := FindLibrary(bin), filepath.Join(bin, "libonnxruntime.so"); got != want {
		t.Errorf("bin/.so: got %q, want %q", got, want)
	}
	touch(filepath.Join(bin, "libonnxruntime.so.1"))
	if got, want := FindLibrary(bin), filepath.Join(bin, "libonnxruntime.so.1"); got != want {
		t.Errorf("bin/.so.1: got %q, want %q", got, want)
	}
}

type modelCase struct {
	name    string
	file    string
	inputs  map[string]*tensor.Tensor
	outputs []string // nil = all
	wantIn  []tensor.Info
	wantOut []tensor.Info
	want    map[string]*tensor.Tensor
}

func modelCases(t *testing.T) []modelCase {
	// example_several_inputs_and_outputs: output 1 = int64(reshape(input 1, 10x10)) with
	// [0][0] += int64(input 3[0]); output 2 = float64(reshape(input 2, 1x2x3x4x5)).
	in1 := make([]int32, 100)
	out1 := make([]int64, 100)
	for i := range in1 {
		in1[i] = int32(i*3 - 150)
		out1[i] = int64(in1[i])
	}
	out1[0] += 3 // input 3[0] = 3.0
	in2 := make([]float32, 120)
	out2 := make([]float64, 120)
	for i := range in2 {
		in2[i] = float32(i)*0.25 - 7
		out2[i] = float64(in2[i])
	}
	in3 := []float32{3, -1, 0.5, 2, 0, 0, 0, 0, 1}

	// example_dynamic_axes: each row's sum. Integer values keep the float sums exact.
	rows := make([]float32, 30)
	for i := range rows {
		rows[i] = float32(i)
	}

	return []modelCase{
		{
			name: "several inputs and outputs",
			file: goTestData + "/example_several_inputs_and_outputs.onnx",
			inputs: map[string]*tensor.Tensor{
				"input 1": numeric(t, tensor.Int32, []int64{2, 5, 2, 5}, in1),
				"input 2": numeric(t, tensor.Float, []int64{2, 3, 20}, in2),
				"input 3": numeric(t, tensor.BFloat16, []int64{9}, bf16(t, in3...)),
			},
			wantIn: []tensor.Info{
				{Name: "input 1", DType: tensor.Int32, Shape: []int64{2, 5, 2, 5}},
				{Name: "input 2", DType: tensor.Float, Shape: []int64{2, 3, 20}},
				{Name: "input 3", DType: tensor.BFloat16, Shape: []int64{9}},
			},
			wantOut: []tensor.Info{
				{Name: "output 1", DType: tensor.Int64, Shape: []int64{10, 10}},
				{Name: "output 2", DType: tensor.Double, Shape: []int64{1, 2, 3, 4, 5}},
			},
			want: map[string]*tensor.Tensor{
				"output 1": numeric(t, tensor.Int64, []int64{10, 10}, out1),
				"output 2": numeric(t, tensor.Double, []int64{1, 2, 3, 4, 5}, out2),
			},
		},
		{
			name:    "several outputs, one requested",
			file:    goTestData + "/example_several_inputs_and_outputs.onnx",
			outputs: []string{"output 2"},
			inputs: map[string]*tensor.Tensor{
				"input 1": numeric(t, tensor.Int32, []int64{2, 5, 2, 5}, in1),
				"input 2": numeric(t, tensor.Float, []int64{2, 3, 20}, in2),
				"input 3": numeric(t, tensor.BFloat16, []int64{9}, bf16(t, in3...)),
			},
			want: map[string]*tensor.Tensor{
				"output 2": numeric(t, tensor.Double, []int64{1, 2, 3, 4, 5}, out2),
			},
		},
		{
			name:   "dynamic axes",
			file:   goTestData + "/example_dynamic_axes.onnx",
			inputs: map[string]*tensor.Tensor{"input_vectors": numeric(t, tensor.Float, []int64{3, 10}, rows)},
			wantIn: []tensor.Info{{Name: "input_vectors", DType: tensor.Float, Shape: []int64{-1, 10},
				DimNames: []string{"input_vectors_dynamic_axes_1", ""}}},
			wantOut: []tensor.Info{{Name: "output_scalars", DType: tensor.Float, Shape: []int64{-1},
				DimNames: []string{"output_scalars_dynamic_axes_1"}}},
			want: map[string]*tensor.Tensor{"output_scalars": numeric(t, tensor.Float, []int64{3}, []float32{45, 145, 245})},
		},
		{
			name:   "dynamic axes, empty batch",
			file:   goTestData + "/example_dynamic_axes.onnx",
			inputs: map[string]*tensor.Tensor{"input_vectors": {DType: tensor.Float, Shape: []int64{0, 10}, Data: []byte{}}},
			want:   map[string]*tensor.Tensor{"output_scalars": {DType: tensor.Float, Shape: []int64{0}, Data: []byte{}}},
		},
		{
			// OutputA = bfloat16(InputA * 3); the inputs make every product exact.
			name: "float16 in, bfloat16 out",
			file: goTestData + "/example_float16.onnx",
			inputs: map[string]*tensor.Tensor{"InputA": numeric(t, tensor.Float16, []int64{1, 2, 2, 2},
				f16(t, 0, 0.5, 1, 1.5, 2, -1, 0.25, 4))},
			wantIn:  []tensor.Info{{Name: "InputA", DType: tensor.Float16, Shape: []int64{1, 2, 2, 2}}},
			wantOut: []tensor.Info{{Name: "OutputA", DType: tensor.BFloat16, Shape: []int64{1, 2, 2, 2}}},
			want: map[string]*tensor.Tensor{"OutputA": numeric(t, tensor.BFloat16, []int64{1, 2, 2, 2},
				bf16(t, 0, 1.5, 3, 4.5, 6, -3, 0.75, 12))},
		},
		{
			// OutputA = int16(InputB * InputA - 512) (truncating), OutputB = int64(InputA) * 1234.
			name: "multitype",
			file: goTestData + "/example_multitype.onnx",
			inputs: map[string]*tensor.Tensor{
				"InputA": numeric(t, tensor.Uint8, []int64{1, 1, 1}, []uint8{3}),
				"InputB": numeric(t, tensor.Double, []int64{1, 2, 2}, []float64{1.5, 200, -10, 0.25}),
			},
			want: map[string]*tensor.Tensor{
				"OutputA": numeric(t, tensor.Int16, []int64{1, 2, 2}, []int16{-507, 88, -542, -511}),
				"OutputB": numeric(t, tensor.Int64, []int64{1, 1, 1}, []int64{3702}),
			},
		},
		{
			// y = x.sum(0) expanded to 2 x int(sum[0]) x 8: all-zero input gives a 2x0x8 output.
			name:   "zero-size output",
			file:   goTestData + "/example_0_dim_output.onnx",
			inputs: map[string]*tensor.Tensor{"x": numeric(t, tensor.Float, []int64{2, 8}, make([]float32, 16))},
			want:   map[string]*tensor.Tensor{"y": {DType: tensor.Float, Shape: []int64{2, 0, 8}, Data: []byte{}}},
		},
		{
			name:   "odd file name",
			file:   goTestData + "/example ż 大 김.onnx",
			inputs: map[string]*tensor.Tensor{"in": numeric(t, tensor.Int32, []int64{1, 2}, []int32{7, 35})},
			want:   map[string]*tensor.Tensor{"out": numeric(t, tensor.Int32, []int64{1}, []int32{42})},
		},
		{
			name: "strings",
			file: "testdata/strings_case.onnx",
			inputs: map[string]*tensor.Tensor{"input": {DType: tensor.String, Shape: []int64{4},
				Strings: []string{"I", "eAt", "POTATOEs!!", ""}}},
			wantIn: []tensor.Info{{Name: "input", DType: tensor.String, Shape: []int64{-1}, DimNames: []string{"n"}}},
			want: map[string]*tensor.Tensor{
				"output_lower": {DType: tensor.String, Shape: []int64{4}, Strings: []string{"i", "eat", "potatoes!!", ""}},
				"output_upper": {DType: tensor.String, Shape: []int64{4}, Strings: []string{"I", "EAT", "POTATOES!!", ""}},
			},
		},
		{
			name:    "zero inputs, 0-dim output",
			file:    "testdata/zero_inputs.onnx",
			inputs:  map[string]*tensor.Tensor{},
			wantIn:  []tensor.Info{},
			wantOut: []tensor.Info{{Name: "vec", DType: tensor.Float, Shape: []int64{2}}, {Name: "count", DType: tensor.Int64, Shape: []int64{}}},
			want: map[string]*tensor.Tensor{
				"vec":   numeric(t, tensor.Float, []int64{2}, []float32{42, -1.5}),
				"count": numeric(t, tensor.Int64, []int64{}, []int64{7}),
			},
		},
		{
			name:    "scalar in and out",
			file:    "testdata/scalar_mul.onnx",
			inputs:  map[string]*tensor.Tensor{"x": {DType: tensor.Float, Shape: nil, Data: le(t, []float32{-2.25})}}, // nil Shape = scalar
			wantIn:  []tensor.Info{{Name: "x", DType: tensor.Float, Shape: []int64{}}},
			wantOut: []tensor.Info{{Name: "y", DType: tensor.Float, Shape: []int64{}}},
			want:    map[string]*tensor.Tensor{"y": numeric(t, tensor.Float, nil, []float32{-4.5})},
		},
	}
}

func TestModels(t *testing.T) {
	initORT(t)
	for _, tc := range modelCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, tc.file, SessionOptions{})
			if tc.wantIn != nil {
				sameInfos(t, "inputs", s.Inputs(), tc.wantIn)
			}
			if tc.wantOut != nil {
				sameInfos(t, "outputs", s.Outputs(), tc.wantOut)
			}
			got, err := s.Run(context.Background(), tc.inputs, tc.outputs)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Errorf("got %d outputs, want %d", len(got), len(tc.want))
			}
			for name, want := range tc.want {
				sameTensor(t, name, got[name], want)
			}
		})
	}
}

// The upstream strings model asks StringNormalizer for the en_US.UTF-8 locale; it runs
// where that locale is installed (strings_case.onnx covers the same path everywhere).
func TestUpstreamStringsModel(t *testing.T) {
	initORT(t)
	s, err := NewSession(goTestData+"/example_strings.onnx", SessionOptions{})
	if err != nil {
		if strings.Contains(err.Error(), "locale") {
			t.Skipf("en_US.UTF-8 locale not installed here: %v", err)
		}
		t.Fatal(err)
	}
	defer s.Close()
	in := &tensor.Tensor{DType: tensor.String, Shape: []int64{3}, Strings: []string{"I", "eAt", "POTATOEs!!"}}
	got, err := s.Run(context.Background(), map[string]*tensor.Tensor{"input": in}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameTensor(t, "output_lower", got["output_lower"], &tensor.Tensor{DType: tensor.String, Shape: []int64{3}, Strings: []string{"i", "eat", "potatoes!!"}})
	sameTensor(t, "output_upper", got["output_upper"], &tensor.Tensor{DType: tensor.String, Shape: []int64{3}, Strings: []string{"I", "EAT", "POTATOES!!"}})
}

func sameInfos(t *testing.T, what string, got, want []tensor.Info) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %+v, want %+v", what, got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || !slices.Equal(g.DimNames, w.DimNames) {
			t.Errorf("%s[%d]: got %+v, want %+v", what, i, g, w)
		}
		if g.Shape == nil {
			t.Errorf("%s[%d]: nil Shape; a tensor's rank is always known", what, i)
		}
	}
}

// Identity over every element type: what goes in comes back, for n = 3 and n = 0, and
// strings keep NUL bytes and non-ASCII text.
func TestIdentityAllTypes(t *testing.T) {
	initORT(t)
	s := newSession(t, "testdata/identity_types.onnx", SessionOptions{})
	for _, n := range []int64{3, 0} {
		in := map[string]*tensor.Tensor{}
		for _, info := range s.Inputs() {
			tt := &tensor.Tensor{DType: info.DType, Shape: []int64{n}}
			if info.DType == tensor.String {
				tt.Strings = []string{"a\x00b", "", "ż 大 김"}[:n]
			} else {
				tt.Data = make([]byte, int(n)*info.DType.Size())
				for i := range tt.Data {
					tt.Data[i] = byte(i*37 + 1)
				}
				if info.DType == tensor.Bool {
					for i := range tt.Data {
						tt.Data[i] = byte(i % 2)
					}
				}
			}
			in[info.Name] = tt
		}
		got, err := s.Run(context.Background(), in, nil)
		if err != nil {
			t.Fatalf("n=%d: Run: %v", n, err)
		}
		for name, tt := range in {
			out := "y_" + strings.TrimPrefix(name, "x_")
			sameTensor(t, out, got[out], tt)
		}
	}
}

// A sub-slice at an odd address is still read correctly (it is copied to aligned memory).
func TestMisalignedInput(t *testing.T) {
	initORT(t)
	s := newSession(t, goTestData+"/example_dynamic_axes.onnx", SessionOptions{})
	buf := make([]byte, 1+40)
	copy(buf[1:], le(t, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}))
	in := &tensor.Tensor{DType: tensor.Float, Shape: []int64{1, 10}, Data: buf[1:]}
	got, err := s.Run(context.Background(), map[string]*tensor.Tensor{"input_vectors": in}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameTensor(t, "output_scalars", got["output_scalars"], numeric(t, tensor.Float, []int64{1}, []float32{55}))
}

func TestBadModelFiles(t *testing.T) {
	initORT(t)
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.onnx")
	if err := os.WriteFile(corrupt, []byte("this is not a protobuf"), 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.onnx")
	whole, err := os.ReadFile(goTestData + "/example_several_inputs_and_outputs.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, whole[:len(whole)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{corrupt, truncated, filepath.Join(dir, "missing.onnx"), dir} {
		s, err := NewSession(path, SessionOptions{})
		if err == nil {
			s.Close()
			t.Errorf("NewSession(%s) succeeded, want an error", path)
			continue
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("NewSession(%s) error %q does not name the file", path, err)
		}
	}
}

func TestRunRejectsBadInputs(t *testing.T) {
	initORT(t)
	s := newSession(t, goTestData+"/example_multitype.onnx", SessionOptions{})
	good := func() map[string]*tensor.Tensor {
		return map[string]*tensor.Tensor{
			"InputA": numeric(t, tensor.Uint8, []int64{1, 1, 1}, []uint8{3}),
			"InputB": numeric(t, tensor.Double, []int64{1, 2, 2}, []float64{1, 2, 3, 4}),
		}
	}
	cases := []struct {
		name    string
		edit    func(m map[string]*tensor.Tensor)
		outputs []string
		wantMsg string
	}{
		{"wrong dtype", func(m map[string]*tensor.Tensor) {
			m["InputB"].DType = tensor.Float
			m["InputB"].Data = m["InputB"].Data[:16]
		}, nil, `input "InputB": dtype float32, expected float64`},
		{"wrong shape", func(m map[string]*tensor.Tensor) { m["InputB"].Shape = []int64{2, 2} }, nil, `input "InputB": shape [2 2]`},
		{"short data", func(m map[string]*tensor.Tensor) { m["InputB"].Data = m["InputB"].Data[:8] }, nil, `input "InputB"`},
		{"missing", func(m map[string]*tensor.Tensor) { delete(m, "InputA") }, nil, `missing input "InputA"`},
		{"unknown", func(m map[string]*tensor.Tensor) { m["Extra"] = m["InputA"] }, nil, `unknown input "Extra"`},
		{"unknown output", func(map[string]*tensor.Tensor) {}, []string{"OutputC"}, `unknown output "OutputC"`},
		{"output twice", func(map[string]*tensor.Tensor) {}, []string{"OutputA", "OutputA"}, `output "OutputA" requested twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := good()
			tc.edit(in)
			_, err := s.Run(context.Background(), in, tc.outputs)
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Run error = %v, want one containing %q", err, tc.wantMsg)
			}
		})
	}
	// The session still works after the rejections.
	if _, err := s.Run(context.Background(), good(), nil); err != nil {
		t.Fatalf("good Run after bad ones: %v", err)
	}
}

// Cancelling the context terminates a long inference inside ONNX Runtime: the error
// carries both ctx.Err() and ORT's own "terminated" status, which ORT only returns when
// it stopped the run part way.
func TestRunCancelTerminates(t *testing.T) {
	initORT(t)
	if testing.Short() {
		t.Skip("allocates ~400 MB; skipped with -short")
	}
	s := newSession(t, goTestData+"/example_big_compute.onnx", SessionOptions{})
	n := s.Inputs()[0].Shape[1]
	in := &tensor.Tensor{DType: tensor.Float, Shape: []int64{1, n}, Data: make([]byte, 4*n)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// 40 divisions and multiplications over 50M floats take seconds; cancel well before.
	timer := time.AfterFunc(100*time.Millisecond, cancel)
	defer timer.Stop()
	_, err := s.Run(ctx, map[string]*tensor.Tensor{"Input": in}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
	var oe *Error
	if !errors.As(err, &oe) {
		t.Fatalf("Run error = %v, want ONNX Runtime's terminate status in the chain", err)
	}
	// An already-cancelled context never reaches the runtime.
	if _, err := s.Run(ctx, map[string]*tensor.Tensor{"Input": in}, nil); !errors.Is(err, context.Canceled) || errors.As(err, &oe) {
		t.Fatalf("Run with a cancelled ctx = %v, want context.Canceled before running", err)
	}
}

func TestConcurrentRuns(t *testing.T) {
	initORT(t)
	s := newSession(t, goTestData+"/example_dynamic_axes.onnx", SessionOptions{})
	const workers, iters = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := int64(w + 1)
			vals := make([]float32, batch*10)
			want := make([]float32, batch)
			for i := range vals {
				vals[i] = float32(w*1000 + i)
				want[i/10] += vals[i]
			}
			in := map[string]*tensor.Tensor{"input_vectors": numeric(t, tensor.Float, []int64{batch, 10}, vals)}
			for range iters {
				got, err := s.Run(context.Background(), in, nil)
				if err != nil {
					errs <- err
					return
				}
				if g := fromLE[float32](t, got["output_scalars"].Data); !slices.Equal(g, want) {
					errs <- errors.New("worker got wrong sums")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCloseThenRun(t *testing.T) {
	initORT(t)
	s, err := NewSession("testdata/zero_inputs.onnx", SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Run(context.Background(), nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close = %v, want ErrClosed", err)
	}
}

// BenchmarkRunTiny measures the per-Run cost on a scalar multiply, where nearly all time
// is the binding and ORT's own Run overhead. "cancellable" is what servers see: a request
// context, so the terminate watcher is armed for each run.
func BenchmarkRunTiny(b *testing.B) {
	initORT(b)
	s := newSession(b, "testdata/scalar_mul.onnx", SessionOptions{IntraOpThreads: 1, InterOpThreads: 1})
	in := map[string]*tensor.Tensor{"x": numeric(b, tensor.Float, nil, []float32{1.5})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, bc := range []struct {
		name string
		ctx  context.Context
	}{{"background", context.Background()}, {"cancellable", ctx}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Run(bc.ctx, in, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

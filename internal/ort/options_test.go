package ort

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// Every setting is accepted by ONNX Runtime and the model still computes the right sums.
func TestSessionOptionsApplied(t *testing.T) {
	initORT(t)
	no, yes := false, true
	cases := []struct {
		name string
		opts SessionOptions
	}{
		{"defaults", SessionOptions{}},
		{"threads", SessionOptions{IntraOpThreads: 1, InterOpThreads: 2}},
		{"opt disable", SessionOptions{GraphOptimizationLevel: "disable"}},
		{"opt basic", SessionOptions{GraphOptimizationLevel: "basic"}},
		{"opt extended", SessionOptions{GraphOptimizationLevel: "extended"}},
		{"opt all", SessionOptions{GraphOptimizationLevel: "all"}},
		{"sequential", SessionOptions{ExecutionMode: "sequential"}},
		{"parallel", SessionOptions{ExecutionMode: "parallel", InterOpThreads: 2}},
		{"no spinning", SessionOptions{AllowSpinning: &no}},
		{"spinning", SessionOptions{AllowSpinning: &yes}},
		{"config entries", SessionOptions{ConfigEntries: map[string]string{
			"session.disable_prepacking": "1", "session.use_env_allocators": "0"}}},
		{"free dimension override", SessionOptions{FreeDimensionOverrides: map[string]int64{"input_vectors_dynamic_axes_1": 2}}},
	}
	in := map[string]*tensor.Tensor{"input_vectors": numeric(t, tensor.Float, []int64{2, 10},
		[]float32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2})}
	want := numeric(t, tensor.Float, []int64{2}, []float32{10, 20})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, goTestData+"/example_dynamic_axes.onnx", tc.opts)
			got, err := s.Run(context.Background(), in, nil)
			if err != nil {
				t.Fatal(err)
			}
			sameTensor(t, "output_scalars", got["output_scalars"], want)
		})
	}
}

func TestSessionOptionsRejected(t *testing.T) {
	initORT(t)
	model := goTestData + "/example_dynamic_axes.onnx"
	cases := []struct {
		name    string
		opts    SessionOptions
		wantMsg string
	}{
		{"negative threads", SessionOptions{IntraOpThreads: -1}, "intra_op_threads -1"},
		{"bad level", SessionOptions{GraphOptimizationLevel: "max"}, `graph_optimization_level "max"`},
		{"bad mode", SessionOptions{ExecutionMode: "async"}, `execution_mode "async"`},
		{"empty config key", SessionOptions{ConfigEntries: map[string]string{"": "1"}}, "config_entries: empty key"},
		// ORT itself limits key lengths; its refusal comes back as an error naming the entry.
		{"config key too long", SessionOptions{ConfigEntries: map[string]string{strings.Repeat("k", 2000): "1"}}, "session config entry"},
		{"negative override", SessionOptions{FreeDimensionOverrides: map[string]int64{"n": -2}}, `free dimension override "n"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSession(model, tc.opts)
			if err == nil {
				s.Close()
				t.Fatalf("NewSession succeeded, want an error containing %q", tc.wantMsg)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), model) {
				t.Fatalf("error %q, want it to name the model and contain %q", err, tc.wantMsg)
			}
		})
	}
}

// OptimizedModelPath makes ORT write its optimized graph; that file loads and computes
// the same outputs as the original.
func TestOptimizedModelPath(t *testing.T) {
	initORT(t)
	for _, level := range []string{"basic", "extended", "all"} {
		t.Run(level, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "optimized.onnx")
			newSession(t, goTestData+"/example_several_inputs_and_outputs.onnx",
				SessionOptions{GraphOptimizationLevel: level, OptimizedModelPath: out})
			fi, err := os.Stat(out)
			if err != nil {
				t.Fatalf("optimized model not written: %v", err)
			}
			if fi.Size() == 0 {
				t.Fatal("optimized model is empty")
			}
			tc := modelCases(t)[0] // several inputs and outputs
			s := newSession(t, out, SessionOptions{GraphOptimizationLevel: "disable"})
			got, err := s.Run(context.Background(), tc.inputs, nil)
			if err != nil {
				t.Fatalf("Run on the optimized model: %v", err)
			}
			for name, want := range tc.want {
				sameTensor(t, name, got[name], want)
			}
		})
	}
}

func TestOptionsFromRuntime(t *testing.T) {
	spin := false
	rt := processor.Runtime{IntraOpThreads: 3, InterOpThreads: 1, GraphOptimizationLevel: "extended",
		ExecutionMode: "parallel", AllowSpinning: &spin, ConfigEntries: map[string]string{"k": "v"}}
	o := OptionsFromRuntime(rt)
	if o.IntraOpThreads != 3 || o.InterOpThreads != 1 || o.GraphOptimizationLevel != "extended" ||
		o.ExecutionMode != "parallel" || o.AllowSpinning == nil || *o.AllowSpinning || o.ConfigEntries["k"] != "v" {
		t.Fatalf("OptionsFromRuntime(%+v) = %+v", rt, o)
	}
	rt.ConfigEntries["k"] = "changed"
	if o.ConfigEntries["k"] != "v" {
		t.Error("options share the runtime's ConfigEntries map")
	}
}

// scikit-learn's random forest has a tensor output (labels) and a sequence-of-maps output
// (probabilities). The sequence shows as DType Invalid, is left out of the default
// selection and cannot be requested; the labels are the iris classes of textbook samples.
func TestNonTensorOutput(t *testing.T) {
	initORT(t)
	s := newSession(t, goTestData+"/sklearn_randomforest.onnx", SessionOptions{})
	outs := s.Outputs()
	if len(outs) != 2 || outs[0].Name != "output_label" || outs[0].DType != tensor.Int64 ||
		outs[1].Name != "output_probability" || outs[1].DType != tensor.Invalid {
		t.Fatalf("outputs %+v, want output_label int64 and output_probability non-tensor", outs)
	}
	in := map[string]*tensor.Tensor{"X": numeric(t, tensor.Float, []int64{3, 4}, []float32{
		5.1, 3.5, 1.4, 0.2, // setosa
		5.9, 3.0, 4.2, 1.5, // versicolor
		6.7, 3.0, 5.2, 2.3, // virginica
	})}
	got, err := s.Run(context.Background(), in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Errorf("default selection returned %d outputs, want only the tensor one", len(got))
	}
	sameTensor(t, "output_label", got["output_label"], numeric(t, tensor.Int64, []int64{3}, []int64{0, 1, 2}))
	if _, err := s.Run(context.Background(), in, []string{"output_probability"}); err == nil ||
		!strings.Contains(err.Error(), `output "output_probability" is not a tensor`) {
		t.Fatalf("requesting the sequence output: err = %v", err)
	}
}

// A free dimension override really fixes the dimension: batch 2 runs, batch 3 is refused.
func TestFreeDimensionOverrideFixesDim(t *testing.T) {
	initORT(t)
	s := newSession(t, goTestData+"/example_dynamic_axes.onnx",
		SessionOptions{FreeDimensionOverrides: map[string]int64{"input_vectors_dynamic_axes_1": 2}})
	run := func(batch int64) error {
		in := map[string]*tensor.Tensor{"input_vectors": numeric(t, tensor.Float, []int64{batch, 10}, make([]float32, batch*10))}
		_, err := s.Run(context.Background(), in, nil)
		return err
	}
	if err := run(2); err != nil {
		t.Fatalf("batch 2: %v", err)
	}
	if err := run(3); err == nil {
		t.Fatal("batch 3 ran although the batch dimension is fixed to 2")
	}
}

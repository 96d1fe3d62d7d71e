package blade

import (
	"context"
	"encoding/json"

	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/ort"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

const clsModel = "../../.cache/models/ocr-1.4.2/ch_ppocr_mobile_v2.0_cls_infer.onnx"

// needORT initializes ONNX Runtime from OPENEAS_ORT_LIB or skips the test.
func needORT(t *testing.T) {
	t.Helper()
	lib := os.Getenv("OPENEAS_ORT_LIB")
	if lib == "" {
		t.Skip("OPENEAS_ORT_LIB is not set: skipping tests that need the ONNX Runtime library (run scripts/fetch-deps.sh)")
	}
	if err := ort.Init(lib); err != nil {
		t.Fatalf("ort.Init(%s): %v", lib, err)
	}
}

func needModel(t *testing.T, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("model %s not present (run scripts/fetch-deps.sh): %v", path, err)
	}
	return path
}

func testOptions(t *testing.T, level string) Options {
	return Options{
		Model:       needModel(t, clsModel),
		OutputDir:   t.TempDir(),
		Level:       level,
		InputShapes: [][]string{{"1*3*48*192"}},
		InputRanges: [][]string{{"[-1.0,1.0]"}},
		Threads:     []int{1, 2},
		Runs:        5,
		Samples:     3,
	}
}

func TestOptimizeO1OnOCRClassifier(t *testing.T) {
	needORT(t)
	o := testOptions(t, LevelO1)
	res, err := Optimize(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report
	if rep.Diagnosis.TestDataSource != "synthetic" {
		t.Errorf("test_data_source = %q, want synthetic", rep.Diagnosis.TestDataSource)
	}
	if !strings.Contains(rep.Diagnosis.Message, "synthetic") {
		t.Errorf("diagnosis message does not say the inputs were synthetic: %q", rep.Diagnosis.Message)
	}
	// The chosen candidate must be inside the o1 budget.
	for _, c := range rep.Candidates {
		if c.Verdict != "chosen" {
			continue
		}
		for _, a := range c.Accuracy {
			if a.MaxRelativeError > 1e-4 || (a.Top1Agreement >= 0 && a.Top1Agreement < 1) {
				t.Errorf("chosen %s output %s outside the o1 budget: %+v", c.Name, a.Output, a)
			}
		}
	}
	// The shipped model with the shipped settings matches the original on fresh inputs.
	compareShipped(t, o, res, 1e-4)
	checkOutputFiles(t, res)
}

func TestOptimizeO2OnOCRClassifier(t *testing.T) {
	needORT(t)
	o := testOptions(t, LevelO2)
	res, err := Optimize(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var o2 *struct{ status, reason string }
	for _, e := range res.Report.Optimizations {
		if strings.HasPrefix(e.Name, "OnnxInt8") {
			o2 = &struct{ status, reason string }{e.Status, e.Reason}
		}
	}
	if o2 == nil {
		t.Fatalf("report has no INT8 optimization entry: %+v", res.Report.Optimizations)
	}
	chosenInt8 := strings.Contains(res.Report.Chosen, "int8")
	switch {
	case chosenInt8:
		for _, c := range res.Report.Candidates {
			if c.Verdict == "chosen" {
				for _, a := range c.Accuracy {
					if a.MinCosine < 0.99 {
						t.Errorf("chosen int8 output %s cosine %.5f < 0.99", a.Output, a.MinCosine)
					}
				}
			}
		}
		compareShippedCosine(t, o, res, 0.99)
	default:
		// Declined: the report must say why (a rejected/ineffective entry or a message).
		if o2.reason == "" && !strings.Contains(res.Report.Diagnosis.Message, "o2") {
			t.Errorf("o2 not chosen and the report does not say why: entry %+v, message %q", o2, res.Report.Diagnosis.Message)
		}
		compareShipped(t, o, res, 1e-4)
	}
	checkOutputFiles(t, res)
}

// freshInputs synthesizes inputs with another seed than Optimize used.
func freshInputs(t *testing.T, s Session) Sample {
	t.Helper()
	shape := []int64{1, 3, 48, 192}
	in := s.Inputs()[0]
	smp, _, err := synthesize([]tensor.Info{in}, [][]int64Shape{{shape}}, [][]Range{{{-1, 1}}}, 7)
	if err != nil {
		t.Fatal(err)
	}
	return smp[6]
}

func runBoth(t *testing.T, o Options, res *Result) (got, ref map[string]*tensor.Tensor) {
	t.Helper()
	orig, err := ORT{}.NewSession(o.Model, SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	var rt processor.Runtime
	b, err := os.ReadFile(res.RuntimePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rt); err != nil {
		t.Fatalf("runtime.json: %v", err)
	}
	opt, err := ORT{}.NewSession(res.ModelPath, SessionConfig{Runtime: rt})
	if err != nil {
		t.Fatalf("load shipped model: %v", err)
	}
	defer opt.Close()
	in := freshInputs(t, orig)
	if ref, err = orig.Run(context.Background(), in, nil); err != nil {
		t.Fatal(err)
	}
	if got, err = opt.Run(context.Background(), in, nil); err != nil {
		t.Fatal(err)
	}
	return got, ref
}

func compareShipped(t *testing.T, o Options, res *Result, maxRel float64) {
	t.Helper()
	got, ref := runBoth(t, o, res)
	for name, r := range ref {
		c := newOutputCompare(name, true)
		c.add(got[name], r)
		if ok, why := c.within(LevelO1, AccuracyBudget{MaxRelativeError: maxRel, MinTop1Agreement: 1}); !ok {
			t.Errorf("shipped model differs from the original on fresh inputs: %s", why)
		}
	}
}

func compareShippedCosine(t *testing.T, o Options, res *Result, minCos float64) {
	t.Helper()
	got, ref := runBoth(t, o, res)
	for name, r := range ref {
		c := newOutputCompare(name, false)
		c.add(got[name], r)
		if ok, why := c.within(LevelO2, AccuracyBudget{MinCosine: minCos}); !ok {
			t.Errorf("shipped int8 model off on fresh inputs: %s", why)
		}
	}
}

func checkOutputFiles(t *testing.T, res *Result) {
	t.Helper()
	b, err := os.ReadFile(res.ReportPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	for _, k := range []string{"software_context", "hardware_context", "user_config", "diagnosis", "optimizations", "overall", "model_info", "compatibility_list", "candidates"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("report.json lacks %q", k)
		}
	}
	overall, _ := rep["overall"].(map[string]any)
	for _, k := range []string{"baseline", "optimized", "speedup"} {
		if _, ok := overall[k]; !ok {
			t.Errorf("report.json overall lacks %q", k)
		}
	}
	for _, e := range rep["optimizations"].([]any) {
		m := e.(map[string]any)
		for _, k := range []string{"name", "status", "speedup", "pre_run", "post_run"} {
			if _, ok := m[k]; !ok {
				t.Errorf("optimization entry %v lacks %q", m["name"], k)
			}
		}
	}
	rb, err := os.ReadFile(res.RuntimePath)
	if err != nil {
		t.Fatal(err)
	}
	var rt processor.Runtime
	if err := json.Unmarshal(rb, &rt); err != nil {
		t.Fatalf("runtime.json is not a processor.Runtime: %v", err)
	}
	if _, err := os.Stat(res.ModelPath); err != nil {
		t.Errorf("model not written: %v", err)
	}
	var buf strings.Builder
	res.Report.PrintTable(&buf)
	if !strings.Contains(buf.String(), "baseline") || !strings.Contains(buf.String(), "chosen") {
		t.Errorf("table lacks the baseline or the chosen row:\n%s", buf.String())
	}
	t.Logf("\n%s", buf.String())
}

// Bad files fail while loading, before ONNX Runtime is needed.
func TestOptimizeBadModels(t *testing.T) {
	dir := t.TempDir()
	notONNX := filepath.Join(dir, "notes.onnx")
	os.WriteFile(notONNX, []byte("this is not a model\n"), 0o644)
	orig, err := os.ReadFile(needModel(t, clsModel))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.onnx")
	os.WriteFile(truncated, orig[:len(orig)/3], 0o644)
	empty := filepath.Join(dir, "empty.onnx")
	os.WriteFile(empty, nil, 0o644)
	for _, tc := range []struct{ name, path, want string }{
		{"not onnx", notONNX, "is not a readable ONNX model"},
		{"truncated", truncated, "is not a readable ONNX model"},
		{"empty", empty, "not a readable ONNX model"},
		{"missing", filepath.Join(dir, "nope.onnx"), "no such file"},
		{"directory", dir, "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Optimize(context.Background(), Options{Model: tc.path, OutputDir: t.TempDir(), Runs: 1})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{OutputDir: "x"}, "model path is required"},
		{Options{Model: "m.onnx"}, "output directory is required"},
		{Options{Model: "m", OutputDir: "x", Level: "o3"}, `optimization level "o3"`},
		{Options{Model: "m", OutputDir: "x", Device: "gpu"}, "this build of blade optimizes for CPU only"},
		{Options{Model: "m", OutputDir: "x", Device: "tpu"}, `device "tpu"`},
		{Options{Model: "m", OutputDir: "x", WeightAdjustment: "maybe"}, `weight_adjustment "maybe"`},
		{Options{Model: "m", OutputDir: "x", Threads: []int{0}}, "threads 0"},
		{Options{Model: "m", OutputDir: "x", InputShapes: [][]string{{"1x2"}}}, "input_shapes[0][0]"},
		{Options{Model: "m", OutputDir: "x", InputRanges: [][]string{{"[1]"}}}, "input_ranges[0][0]"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := Optimize(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

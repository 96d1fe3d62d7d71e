package conformance

import (
	"context"
	"flag"
	"fmt"
	"hash/fnv"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/blade"
	"github.com/openeas/openeas/internal/ort"
	"github.com/openeas/openeas/internal/tensor"
)

// The o1 pass covers every case; o2 costs about as much again, so by default it covers a
// deterministic sample. -blade.full (or OPENEAS_BLADE_CONFORMANCE=full) runs o2 on every case.
var full = flag.Bool("blade.full", false, "run o2 on every conformance case, not a sample (also OPENEAS_BLADE_CONFORMANCE=full)")

// o2SampleEvery picks one case in this many for o2 (by a hash of its name) unless full.
const o2SampleEvery = 4

// workers is how many cases run at once (each Optimize uses one intra-op thread).
const workers = 2

// caseTimeout guards against a hang in one case; real cases take well under a second.
const caseTimeout = 3 * time.Minute

func needORT(t *testing.T) {
	t.Helper()
	lib := os.Getenv("OPENEAS_ORT_LIB")
	if lib == "" {
		t.Skip("OPENEAS_ORT_LIB is not set: skipping the Blade conformance run (run scripts/fetch-deps.sh, or make test)")
	}
	if err := ort.Init(lib); err != nil {
		t.Fatalf("ort.Init(%s): %v", lib, err)
	}
}

// outcome is what one case did.
type outcome struct {
	name     string
	skip     string // why ONNX Runtime itself cannot run the case ("" when it can)
	detail   string // ONNX Runtime's message behind skip
	o1       string // "matched" or "" (failures go to fail)
	o2       string // "", "int8 verified" or "declined: <status>"
	bladeErr bool   // Optimize returned an error (allowed only when ORT cannot run the case)
	fail     []string
}

func (r *outcome) failf(format string, args ...any) {
	r.fail = append(r.fail, fmt.Sprintf(format, args...))
}

// TestBladeConformance runs every model of the ONNX backend suite through Blade at o1 with the
// case's reference inputs as test data. Blade must never panic; wherever ONNX Runtime runs the
// original model and matches the reference outputs, the model Blade ships (with the runtime
// settings it ships) must match them too, on every data set of the case. At o2 the shipped
// model must either be an INT8 candidate inside the o2 budget or a clean decline that still
// matches the references.
func TestBladeConformance(t *testing.T) {
	dirs, _ := ListCases(SuiteDir)
	if len(dirs) == 0 {
		t.Skip("libonnx-testdata is not installed (apt-get install libonnx-testdata; scripts/fetch-deps.sh does)")
	}
	needORT(t)
	fullRun := *full || os.Getenv("OPENEAS_BLADE_CONFORMANCE") == "full"
	scratch := t.TempDir()
	start := time.Now()

	jobs := make(chan string)
	results := make(chan *outcome)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for dir := range jobs {
				results <- runCase(dir, scratch, fullRun || sampled(dir))
			}
		}()
	}
	go func() {
		for _, d := range dirs {
			jobs <- d
		}
		close(jobs)
		wg.Wait()
		close(results)
	}()

	var all []*outcome
	for r := range results {
		all = append(all, r)
		for _, f := range r.fail {
			t.Errorf("%s: %s", r.name, f)
		}
		if r.skip != "" && testing.Verbose() {
			t.Logf("%s: skipped by ORT (%s): %.300s", r.name, r.skip, r.detail)
		}
	}
	slices.SortFunc(all, func(a, b *outcome) int { return strings.Compare(a.name, b.name) })
	printSummary(t, all, fullRun, time.Since(start))
}

// sampled picks the o2 sample: stable across runs and machines.
func sampled(dir string) bool {
	h := fnv.New32a()
	h.Write([]byte(filepath.Base(filepath.Dir(dir)) + "/" + filepath.Base(dir)))
	return h.Sum32()%o2SampleEvery == 0
}

func printSummary(t *testing.T, all []*outcome, fullRun bool, took time.Duration) {
	skips := map[string]int{}
	o2 := map[string]int{}
	var matched, skipped, bladeErrs, o2Ran int
	for _, r := range all {
		if r.skip != "" {
			skipped++
			skips[r.skip]++
		}
		if r.o1 == "matched" {
			matched++
		}
		if r.bladeErr {
			bladeErrs++
		}
		if r.o2 != "" {
			o2Ran++
			o2[r.o2]++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Blade conformance over %s (%s, %d workers):\n", SuiteDir, took.Round(time.Second), workers)
	fmt.Fprintf(&b, "  o1: %d cases ran through Blade; %d matched the reference outputs after optimization; %d skipped because ONNX Runtime cannot run them (Blade declined %d of all cases with a clean error)\n",
		len(all), matched, skipped, bladeErrs)
	for _, k := range slices.Sorted(maps.Keys(skips)) {
		fmt.Fprintf(&b, "      skipped by ORT, %-55s %4d\n", k+":", skips[k])
	}
	scope := fmt.Sprintf("a deterministic 1-in-%d sample of the runnable cases (-blade.full for all)", o2SampleEvery)
	if fullRun {
		scope = "every runnable case"
	}
	fmt.Fprintf(&b, "  o2: %d cases (%s):\n", o2Ran, scope)
	for _, k := range slices.Sorted(maps.Keys(o2)) {
		fmt.Fprintf(&b, "      %-63s %4d\n", k+":", o2[k])
	}
	t.Log(b.String())
	fmt.Print(b.String()) // visible without -v: make test shows the counts
}

// runCase does everything for one case; a panic anywhere becomes a failure naming the case.
func runCase(dir, scratch string, doO2 bool) (r *outcome) {
	r = &outcome{name: filepath.Base(filepath.Dir(dir)) + "/" + filepath.Base(dir)}
	defer func() {
		if p := recover(); p != nil {
			r.failf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	work, err := os.MkdirTemp(scratch, "case-")
	if err != nil {
		r.failf("scratch dir: %v", err)
		return r
	}
	defer os.RemoveAll(work)

	c, err := LoadCase(dir)
	if err != nil {
		// Blade must still fail cleanly on a model our own reader rejects.
		r.skip = "model unreadable"
		r.bladeErr = optimizeMustNotPanic(r, blade.Options{Model: filepath.Join(dir, "model.onnx")}, work, "o1") != nil
		return r
	}
	orig, skip, detail := runOriginal(c)
	r.skip, r.detail = skip, detail

	o := blade.Options{Model: c.Model, Level: blade.LevelO1}
	if len(c.Sets) > 0 && len(c.Inputs) > 0 {
		npz := filepath.Join(work, "test_data.npz")
		if err := WriteNpz(npz, c.Sets[0].Inputs); err == nil {
			o.TestData = npz
		} else if r.skip == "" {
			r.skip = "inputs not expressible as .npz (" + err.Error() + ")"
		}
	}
	res, err := optimize(r, o, work, "o1")
	if err != nil {
		r.bladeErr = true
		if r.skip == "" {
			r.failf("o1: ONNX Runtime runs this case but Blade failed: %v", err)
		}
		return r
	}
	if r.skip != "" {
		return r
	}
	if bad := checkShipped(c, res, nil); bad != "" {
		r.failf("o1: the optimized model (chosen %q) no longer matches the reference: %s", res.Report.Chosen, bad)
	} else {
		r.o1 = "matched"
	}
	if !doO2 {
		return r
	}
	o.Level = blade.LevelO2
	res, err = optimize(r, o, work, "o2")
	if err != nil {
		r.failf("o2: Blade failed where o1 succeeded: %v", err)
		return r
	}
	if strings.HasPrefix(res.Report.Chosen, "o2") {
		r.o2 = "int8 verified"
		if bad := checkShipped(c, res, orig); bad != "" {
			r.failf("o2: shipped INT8 model %q is outside the o2 budget: %s", res.Report.Chosen, bad)
		}
		return r
	}
	r.o2 = "declined: " + int8Status(res)
	if bad := checkShipped(c, res, nil); bad != "" {
		r.failf("o2 declined INT8 but the shipped model (chosen %q) no longer matches the reference: %s", res.Report.Chosen, bad)
	}
	return r
}

// int8Status is the o2 report entry's status and a short reason class.
func int8Status(res *blade.Result) string {
	for _, e := range res.Report.Optimizations {
		if strings.HasPrefix(e.Name, "OnnxInt8") {
			if e.Status == "skipped" && (strings.Contains(e.Reason, "nothing") || strings.Contains(e.Reason, "no MatMul")) {
				return "nothing to quantize"
			}
			return e.Status
		}
	}
	return "no INT8 stage"
}

func optimize(r *outcome, o blade.Options, work, level string) (*blade.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	o.OutputDir = filepath.Join(work, level)
	o.Threads = []int{1}
	o.Runs = 2
	o.Samples = 2
	res, err := blade.Optimize(ctx, o)
	if ctx.Err() != nil {
		r.failf("%s: Blade did not finish within %s", level, caseTimeout)
	}
	return res, err
}

func optimizeMustNotPanic(r *outcome, o blade.Options, work, level string) error {
	_, err := optimize(r, o, work, level)
	if err == nil {
		r.failf("%s: Blade accepted a model the ONNX reader rejects", level)
	}
	return err
}

// runOriginal runs the unmodified model with ONNX Runtime's defaults on every data set. It
// returns the outputs per set, or why the case cannot serve as a reference here.
func runOriginal(c *Case) (outs []map[string]*tensor.Tensor, skip, detail string) {
	if c.DataErr != "" {
		return nil, "reference data is not tensors (sequence/map/optional)", c.DataErr
	}
	s, err := blade.ORT{}.NewSession(c.Model, blade.SessionConfig{})
	if err != nil {
		return nil, "load failed: " + ortClass(err), err.Error()
	}
	defer s.Close()
	for i, ds := range c.Sets {
		got, err := s.Run(context.Background(), ds.Inputs, c.Outputs)
		if err != nil {
			return nil, "run failed: " + ortClass(err), err.Error()
		}
		for _, name := range c.Outputs {
			if ok, why := AllClose(got[name], ds.Outputs[name], DefaultTolerance); !ok {
				return nil, "ORT's own output differs from the reference", fmt.Sprintf("data set %d, output %s: %s", i, name, why)
			}
		}
		outs = append(outs, got)
	}
	return outs, "", ""
}

// ortClass reduces an ONNX Runtime error to a short class for the summary.
func ortClass(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "NOT_IMPLEMENTED") || strings.Contains(msg, "Could not find an implementation"):
		return "no kernel for an op/type"
	case strings.Contains(msg, "is not a registered function/op") || strings.Contains(msg, "No Op registered"):
		return "op not registered (removed, training or pre-opset-7 op)"
	case strings.Contains(msg, "Locale"):
		return "string op needs the en_US.UTF-8 locale"
	case strings.Contains(msg, "layout_ == 0"):
		return "batchwise RNN layout not in the CPU kernels"
	case strings.Contains(msg, "dtype uint16, expected bfloat16"):
		return "bfloat16 test data stored as uint16"
	case strings.Contains(msg, "opset") || strings.Contains(msg, "Opset"):
		return "unsupported opset"
	case strings.Contains(msg, "type") || strings.Contains(msg, "Type"):
		return "non-tensor or unsupported input/output type"
	case strings.Contains(msg, "shape") || strings.Contains(msg, "Shape"):
		return "shape inference error"
	}
	return "other"
}

// checkShipped runs the model Blade shipped, with the runtime settings it shipped, on every
// data set. With int8 == nil every output must match the reference within ONNX's tolerance;
// otherwise float outputs must keep cosine ≥ the o2 budget against ONNX Runtime's outputs of
// the original model (int8), and other outputs must match exactly.
func checkShipped(c *Case, res *blade.Result, int8 []map[string]*tensor.Tensor) string {
	s, err := blade.ORT{}.NewSession(res.ModelPath, blade.SessionConfig{Runtime: res.Runtime})
	if err != nil {
		return "load: " + err.Error()
	}
	defer s.Close()
	minCos := blade.DefaultBudget(blade.LevelO2).MinCosine
	for i, ds := range c.Sets {
		got, err := s.Run(context.Background(), ds.Inputs, c.Outputs)
		if err != nil {
			return fmt.Sprintf("data set %d: run: %v", i, err)
		}
		for _, name := range c.Outputs {
			if int8 == nil {
				if ok, why := AllClose(got[name], ds.Outputs[name], DefaultTolerance); !ok {
					return fmt.Sprintf("data set %d, output %s: %s", i, name, why)
				}
				continue
			}
			ref := int8[i][name]
			if ref.DType == tensor.Float || ref.DType == tensor.Double || ref.DType == tensor.Float16 {
				a, _ := got[name].Float64s()
				b, _ := ref.Float64s()
				if got[name] == nil || len(a) != len(b) {
					return fmt.Sprintf("data set %d, output %s: shape changed", i, name)
				}
				if cos := Cosine(a, b); cos < minCos {
					return fmt.Sprintf("data set %d, output %s: cosine %.5f < %.2f", i, name, cos, minCos)
				}
				continue
			}
			if ok, why := AllClose(got[name], ref, Tolerance{}); !ok {
				return fmt.Sprintf("data set %d, output %s: %s", i, name, why)
			}
		}
	}
	return ""
}

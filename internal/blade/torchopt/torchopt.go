// Package torchopt is Blade for TorchScript models (--optimize_for cpu). It builds
// candidates with libtorch (through internal/torch), verifies each against the original
// model's outputs on the test data (or on inputs made from input_shapes), times each, and
// ships the fastest that stays inside the accuracy budget — never an unverified or slower
// one — with the same report, runtime.json and budgets as Blade for ONNX.
//
//	o1: thread counts; torch::jit::freeze (constants folded, conv-bn folded, frozen-graph
//	    rewrites), saved; freeze + optimize_for_inference, applied by the processor at load
//	    (its MKLDNN weights are not saved). Budget: relative error ≤ 1e-4, same argmax.
//	o2: o1 plus dynamic INT8 Linear layers (quantized::linear_dynamic), verified with the o2
//	    budget (cosine, argmax); a model without Linear layers is declined in the report.
//
// The process must have called torch.Init first.
package torchopt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/openeas/openeas/internal/blade"
	"github.com/openeas/openeas/internal/blade/auxdata"
	"github.com/openeas/openeas/internal/blade/report"
	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/processor/torchproc"
	"github.com/openeas/openeas/internal/tensor"
	"github.com/openeas/openeas/internal/torch"
)

// IsTorchScript reports whether a model file name is one torchopt optimizes.
func IsTorchScript(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".pt", ".pth", ".torchscript":
		return true
	}
	return false
}

// candidate is one (model file, runtime settings) pair.
type candidate struct {
	name, detail string
	model        string
	rt           processor.Runtime
	level        string // the budget it must meet
	timing       *report.Timing
	acc          []report.OutputAccuracy
	verdict      string
	ok           bool
}

type optimizer struct {
	o       blade.Options
	log     io.Writer
	sig     processor.Signature
	samples []map[string]*tensor.Tensor
	source  string // "test_data" or "synthetic"
	refs    []map[string]*tensor.Tensor
	class   map[string]bool // class-score outputs: argmax agreement is checked
	tmp     string
	orig    string // the original model, copied into tmp with its signature file
}

// Optimize optimizes o.Model (a TorchScript file) into o.OutputDir: o.ModelName (default
// the input's name), its signature file, runtime.json and report.json.
func Optimize(ctx context.Context, o blade.Options) (*blade.Result, error) {
	if o.Level == "" {
		o.Level = blade.LevelO1
	}
	if o.Level != blade.LevelO1 && o.Level != blade.LevelO2 {
		return nil, fmt.Errorf("torchopt: level %q: expected o1 or o2", o.Level)
	}
	if o.Runs <= 0 {
		o.Runs = blade.DefaultRuns
	}
	if len(o.Threads) == 0 {
		o.Threads = []int{1}
		if n := runtime.NumCPU(); n > 1 {
			o.Threads = append(o.Threads, n)
		}
	}
	if o.ModelName == "" {
		o.ModelName = filepath.Base(o.Model)
	}
	op := &optimizer{o: o, log: o.Progress, class: map[string]bool{}}
	if op.log == nil {
		op.log = io.Discard
	}
	tmp, err := os.MkdirTemp("", "torchopt-")
	if err != nil {
		return nil, fmt.Errorf("torchopt: %w", err)
	}
	defer os.RemoveAll(tmp)
	op.tmp = tmp
	if err := op.prepare(ctx); err != nil {
		return nil, err
	}
	threads0 := torch.Threads()
	base := &candidate{name: "baseline", detail: fmt.Sprintf("original TorchScript, %d threads (libtorch default)", threads0), model: op.orig, level: blade.LevelO1}
	cands := []*candidate{base}
	var o2Note string
	frozen, err := op.derive("frozen.pt", "freeze")
	if err != nil {
		fmt.Fprintf(op.log, "torchopt: freeze failed: %v\n", err)
		frozen = ""
	}
	quant := ""
	if o.Level == blade.LevelO2 {
		if quant, err = op.derive("int8.pt", "freeze", "quantize_dynamic"); err != nil {
			o2Note = "INT8 declined: " + err.Error()
			quant = ""
		}
	}
	for _, n := range o.Threads {
		rt := processor.Runtime{IntraOpThreads: n}
		cands = append(cands, &candidate{name: fmt.Sprintf("threads=%d", n), detail: "original TorchScript", model: op.orig, rt: rt, level: blade.LevelO1})
		if frozen != "" {
			cands = append(cands,
				&candidate{name: fmt.Sprintf("freeze,threads=%d", n), detail: "torch::jit::freeze (conv-bn folding, frozen-graph optimizations)", model: frozen, rt: rt, level: blade.LevelO1},
				&candidate{name: fmt.Sprintf("freeze+optimize_for_inference,threads=%d", n), detail: "frozen; optimize_for_inference at load (MKLDNN)", model: frozen,
					rt: processor.Runtime{IntraOpThreads: n, ConfigEntries: map[string]string{torchproc.ConfigOptimizeForInference: "true"}}, level: blade.LevelO1})
		}
		if quant != "" {
			cands = append(cands, &candidate{name: fmt.Sprintf("int8-dynamic-linear,threads=%d", n), detail: "frozen; Linear layers as quantized::linear_dynamic (int8 weights)", model: quant, rt: rt, level: blade.LevelO2})
		}
	}
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		op.evaluate(ctx, c, threads0)
	}
	torch.SetThreads(threads0)
	return op.finish(cands, o2Note)
}

// prepare reads the signature and the samples, and runs the original model for references.
func (op *optimizer) prepare(ctx context.Context) error {
	p, err := torchproc.Open(op.o.Model, processor.Runtime{}, torchproc.Options{})
	if err != nil {
		return fmt.Errorf("torchopt: %w", err)
	}
	defer p.Close()
	op.sig = p.Signature()
	switch {
	case op.o.TestData != "":
		ds, err := auxdata.Read(op.o.TestData)
		if err != nil {
			return fmt.Errorf("torchopt: test_data: %w", err)
		}
		_, hasSig, err := torchproc.ReadSignatureFile(op.o.Model)
		if err != nil {
			return fmt.Errorf("torchopt: %w", err)
		}
		if !hasSig && len(ds.Samples) > 0 && len(ds.Samples[0].Positional) == len(op.sig.Inputs) {
			// No signature file: the test data says what the inputs are.
			for i, t := range ds.Samples[0].Positional {
				op.sig.Inputs[i].DType, op.sig.Inputs[i].Shape = t.DType, dynamicBatch(t.Shape)
			}
		}
		if op.samples, err = ds.Bind(op.sig.Inputs); err != nil {
			return fmt.Errorf("torchopt: test_data %s: %w", op.o.TestData, err)
		}
		op.source = "test_data"
	default:
		if op.samples, err = synthesize(op.sig.Inputs, op.o.InputShapes); err != nil {
			return fmt.Errorf("torchopt: %w", err)
		}
		op.source = "synthetic"
		// TorchScript declared no shapes: the ones verified with become the signature's,
		// dimensions that vary (and the batch dimension) dynamic.
		for i := range op.sig.Inputs {
			in := &op.sig.Inputs[i]
			if in.Shape != nil {
				continue
			}
			in.Shape = dynamicBatch(op.samples[0][in.Name].Shape)
			for _, s := range op.samples[1:] {
				for k, d := range s[in.Name].Shape {
					if k < len(in.Shape) && in.Shape[k] != d {
						in.Shape[k] = -1
					}
				}
			}
		}
	}
	if len(op.samples) == 0 {
		return errors.New("torchopt: no samples to verify with")
	}
	// Undeclared dtypes become the ones verified with, so the signature file written beside
	// every candidate is complete.
	for i := range op.sig.Inputs {
		if in := &op.sig.Inputs[i]; in.DType == tensor.Invalid {
			if t := op.samples[0][in.Name]; t != nil {
				in.DType = t.DType
			}
		}
	}
	// Every candidate is a file in tmp with the signature learnt here beside it.
	p.Close()
	op.orig = filepath.Join(op.tmp, "original.pt")
	if err := modelsource.CopyFile(op.o.Model, op.orig); err != nil {
		return fmt.Errorf("torchopt: %w", err)
	}
	if err := torchproc.WriteSignatureFile(op.orig, processor.Signature{Inputs: op.sig.Inputs}); err != nil {
		return fmt.Errorf("torchopt: %w", err)
	}
	if p, err = torchproc.Open(op.orig, processor.Runtime{}, torchproc.Options{}); err != nil {
		return fmt.Errorf("torchopt: %w", err)
	}
	op.sig = p.Signature()
	for i, s := range op.samples {
		out, err := p.Predict(ctx, s, nil)
		if err != nil {
			return fmt.Errorf("torchopt: the original model on sample %d: %w", i, err)
		}
		op.refs = append(op.refs, out)
	}
	// Outputs: what the original returned, batch dimension dynamic when the inputs' is.
	dyn := len(op.sig.Inputs) > 0 && len(op.sig.Inputs[0].Shape) > 0 && op.sig.Inputs[0].Shape[0] < 0
	for k, o := range op.sig.Outputs {
		t := op.refs[0][o.Name]
		shape := slices.Clone(t.Shape)
		if dyn && len(shape) > 0 {
			shape[0] = -1
		}
		op.sig.Outputs[k].DType, op.sig.Outputs[k].Shape = t.DType, shape
		op.class[o.Name] = len(t.Shape) == 2 && t.Shape[1] > 1 && (t.DType == tensor.Float || t.DType == tensor.Double)
	}
	return torchproc.WriteSignatureFile(op.orig, op.sig)
}

// derive makes a candidate model file from the original with the shim's passes.
func (op *optimizer) derive(name string, passes ...string) (string, error) {
	out := filepath.Join(op.tmp, name)
	log, err := torch.Optimize(op.orig, out, passes)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(op.log, "torchopt: %s\n", strings.TrimSpace(log))
	return out, torchproc.WriteSignatureFile(out, op.sig)
}

func dynamicBatch(shape []int64) []int64 {
	s := slices.Clone(shape)
	if len(s) > 0 {
		s[0] = -1
	}
	return s
}

// synthesize makes two samples of standard-normal floats (or small integers) from
// input_shapes, or from the signature's shapes with dynamic dimensions set to 1.
func synthesize(ins []tensor.Info, shapeSets [][]string) ([]map[string]*tensor.Tensor, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	var sets [][][]int64
	for si, set := range shapeSets {
		if len(set) != len(ins) {
			return nil, fmt.Errorf("input_shapes set %d has %d shapes; the model has %d inputs", si, len(set), len(ins))
		}
		var shapes [][]int64
		for _, s := range set {
			sh, err := blade.ParseShape(s)
			if err != nil {
				return nil, err
			}
			shapes = append(shapes, sh)
		}
		sets = append(sets, shapes)
	}
	if len(sets) == 0 {
		var shapes [][]int64
		for _, in := range ins {
			if in.Shape == nil {
				return nil, fmt.Errorf("input %s: TorchScript declares no shapes; give test_data or input_shapes (or a %s file)", in.Name, torchproc.SignatureSuffix)
			}
			s := slices.Clone(in.Shape)
			for k := range s {
				if s[k] < 0 {
					s[k] = 1
				}
			}
			shapes = append(shapes, s)
		}
		sets = [][][]int64{shapes}
	}
	var out []map[string]*tensor.Tensor
	for _, shapes := range sets {
		for range 2 {
			s := map[string]*tensor.Tensor{}
			for i, in := range ins {
				n := tensor.NumElements(shapes[i])
				dt := in.ValueDType()
				t := &tensor.Tensor{DType: dt, Shape: shapes[i], Data: make([]byte, n*int64(dt.Size()))}
				for k := range n {
					switch dt {
					case tensor.Float:
						putF32(t.Data[4*k:], float32(rng.NormFloat64()))
					case tensor.Int64:
						putU64(t.Data[8*k:], uint64(rng.IntN(100)))
					case tensor.Int32:
						putU32(t.Data[4*k:], uint32(rng.IntN(100)))
					default:
						return nil, fmt.Errorf("input %s: dtype %s: give test_data", in.Name, dt)
					}
				}
				s[in.Name] = t
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// evaluate verifies c against the references and times it.
func (op *optimizer) evaluate(ctx context.Context, c *candidate, defaultThreads int) {
	n := c.rt.IntraOpThreads
	if n == 0 {
		n = defaultThreads
	}
	torch.SetThreads(n)
	p, err := torchproc.Open(c.model, c.rt, torchproc.Options{})
	if err != nil {
		c.verdict = "failed: " + err.Error()
		return
	}
	defer p.Close()
	budget := op.o.Accuracy.BudgetFor(c.level)
	ok, why := true, ""
	c.acc = nil
	for _, o := range op.sig.Outputs {
		a := report.OutputAccuracy{Output: o.Name, MinCosine: 1, Top1Agreement: -1}
		agree, rows := 0, 0
		for i, s := range op.samples {
			got, err := p.Predict(ctx, s, nil)
			if err != nil {
				c.verdict = "failed: " + err.Error()
				return
			}
			g, r := f64(got[o.Name]), f64(op.refs[i][o.Name])
			if len(g) != len(r) {
				c.verdict = fmt.Sprintf("failed: output %s has %d values, the original %d", o.Name, len(g), len(r))
				return
			}
			rel, cos := compare(g, r)
			a.MaxRelativeError = math.Max(a.MaxRelativeError, rel)
			a.MinCosine = math.Min(a.MinCosine, cos)
			if op.class[o.Name] {
				cols := int(op.refs[i][o.Name].Shape[1])
				for row := 0; row+cols <= len(r); row += cols {
					rows++
					if argmax(g[row:row+cols]) == argmax(r[row:row+cols]) {
						agree++
					}
				}
			}
		}
		if rows > 0 {
			a.Top1Agreement = float64(agree) / float64(rows)
		}
		c.acc = append(c.acc, a)
		switch {
		case budget.MaxRelativeError > 0 && a.MaxRelativeError > budget.MaxRelativeError:
			ok, why = false, fmt.Sprintf("%s: relative error %.3g > %.3g", o.Name, a.MaxRelativeError, budget.MaxRelativeError)
		case budget.MinCosine > 0 && a.MinCosine < budget.MinCosine:
			ok, why = false, fmt.Sprintf("%s: cosine %.6f < %.6f", o.Name, a.MinCosine, budget.MinCosine)
		case a.Top1Agreement >= 0 && a.Top1Agreement < budget.MinTop1Agreement:
			ok, why = false, fmt.Sprintf("%s: top-1 agreement %.4f < %.4f", o.Name, a.Top1Agreement, budget.MinTop1Agreement)
		}
		if !ok {
			break
		}
	}
	if !ok {
		c.verdict = "rejected: " + why
		return
	}
	t, err := timeRuns(ctx, p, op.samples, op.o.Runs)
	if err != nil {
		c.verdict = "failed: " + err.Error()
		return
	}
	c.timing, c.ok = t, true
	fmt.Fprintf(op.log, "torchopt: %-44s median %s\n", c.name, report.MS(t.MedianMS))
}

// timeRuns warms up (3 runs) and times runs predictions cycling over the samples.
func timeRuns(ctx context.Context, p *torchproc.Processor, samples []map[string]*tensor.Tensor, runs int) (*report.Timing, error) {
	for i := range 3 {
		if _, err := p.Predict(ctx, samples[i%len(samples)], nil); err != nil {
			return nil, err
		}
	}
	d := make([]float64, runs)
	for i := range runs {
		t0 := time.Now()
		if _, err := p.Predict(ctx, samples[i%len(samples)], nil); err != nil {
			return nil, err
		}
		d[i] = float64(time.Since(t0).Microseconds()) / 1000
	}
	slices.Sort(d)
	return &report.Timing{Runs: runs, MedianMS: d[runs/2], MinMS: d[0], MaxMS: d[runs-1]}, nil
}

// finish picks the winner and writes the model, its signature file, runtime.json and the report.
func (op *optimizer) finish(cands []*candidate, o2Note string) (*blade.Result, error) {
	base := cands[0]
	if !base.ok {
		return nil, fmt.Errorf("torchopt: the original model cannot be timed: %s", base.verdict)
	}
	winner := base
	for _, c := range cands[1:] {
		if c.ok && c.timing.MedianMS < winner.timing.MedianMS {
			winner = c
		}
	}
	// Only a clear gain is worth shipping a changed model or setting (timing noise is ~2%).
	if winner != base && winner.timing.MedianMS > 0.98*base.timing.MedianMS {
		winner = base
	}
	for _, c := range cands {
		switch {
		case c == winner && c == base:
			c.verdict = "baseline"
		case c == winner:
			c.verdict = "chosen"
		case c.ok:
			c.verdict = fmt.Sprintf("verified, slower than %s", winner.name)
		}
	}
	if err := os.MkdirAll(op.o.OutputDir, 0o755); err != nil {
		return nil, fmt.Errorf("torchopt: %w", err)
	}
	modelPath := filepath.Join(op.o.OutputDir, op.o.ModelName)
	if err := modelsource.CopyFile(winner.model, modelPath); err != nil {
		return nil, fmt.Errorf("torchopt: write model: %w", err)
	}
	if err := torchproc.WriteSignatureFile(modelPath, op.sig); err != nil {
		return nil, fmt.Errorf("torchopt: write signature: %w", err)
	}
	rt := winner.rt
	if rt.IntraOpThreads == 0 && winner != base {
		rt.IntraOpThreads = torch.Threads()
	}
	res := &blade.Result{
		ModelPath: modelPath, RuntimePath: filepath.Join(op.o.OutputDir, blade.RuntimeFile),
		ReportPath: filepath.Join(op.o.OutputDir, "report.json"), Runtime: rt,
	}
	if err := writeJSON(res.RuntimePath, rt); err != nil {
		return nil, fmt.Errorf("torchopt: write runtime: %w", err)
	}
	res.Report = op.buildReport(cands, winner, o2Note)
	if err := res.Report.Write(res.ReportPath); err != nil {
		return nil, fmt.Errorf("torchopt: write report: %w", err)
	}
	return res, nil
}

func (op *optimizer) buildReport(cands []*candidate, winner *candidate, o2Note string) *report.Report {
	base := cands[0]
	r := &report.Report{
		SoftwareContext: map[string]string{"libtorch": torch.Version(), "framework": "pytorch", "blade": "openeas torchopt"},
		HardwareContext: report.HardwareContext(blade.DeviceCPU),
		UserConfig:      map[string]any{"optimization_level": op.o.Level, "test_data": filepath.Base(op.o.TestData), "input_shapes": op.o.InputShapes},
		Chosen:          winner.name,
		Runtime:         winner.rt,
	}
	r.Diagnosis = report.Diagnosis{Model: filepath.Base(op.o.Model), TestDataSource: op.source, ShapeVariation: "fixed",
		TestDataInfo: report.DataInfo{File: filepath.Base(op.o.TestData), Samples: len(op.samples), Shapes: map[string][]int64{}, DTypes: map[string]string{}}}
	for name, t := range op.samples[0] {
		r.Diagnosis.TestDataInfo.Shapes[name] = t.Shape
		r.Diagnosis.TestDataInfo.DTypes[name] = t.DType.String()
	}
	if op.source == "synthetic" {
		r.Diagnosis.Message = "verification used synthetic inputs (no test_data); "
	}
	if o2Note != "" {
		r.Diagnosis.Message += o2Note
	} else if op.o.Level == blade.LevelO2 && op.o.CalibrationDataset != "" {
		r.Diagnosis.Message += "calibration_dataset unused: libtorch's INT8 here is dynamic (weights int8, activations quantized per call)"
	}
	// One optimizations entry per kind, with its best verified candidate.
	for _, kind := range []struct{ name, prefix string }{
		{"thread tuning", "threads="}, {"freeze", "freeze,"}, {"optimize_for_inference", "freeze+optimize_for_inference,"}, {"int8 dynamic Linear", "int8-"},
	} {
		var bestC *candidate
		var reason string
		for _, c := range cands[1:] {
			if !strings.HasPrefix(c.name, kind.prefix) {
				continue
			}
			if c.ok && (bestC == nil || c.timing.MedianMS < bestC.timing.MedianMS) {
				bestC = c
			}
			if !c.ok && reason == "" {
				reason = c.verdict
			}
		}
		e := report.Optimization{Name: kind.name, PreRun: report.MS(base.timing.MedianMS)}
		switch {
		case bestC != nil:
			e.Ratio = base.timing.MedianMS / bestC.timing.MedianMS
			e.Speedup, e.PostRun = fmt.Sprintf("%.2f", e.Ratio), report.MS(bestC.timing.MedianMS)
			e.Status = "ineffective"
			if bestC == winner {
				e.Status = "effective"
			}
		case reason != "":
			e.Status, e.Reason = "rejected", reason
		case kind.prefix == "int8-" && op.o.Level == blade.LevelO2:
			e.Status, e.Reason = "skipped", o2Note
		default:
			e.Status, e.Reason = "skipped", "not part of level "+op.o.Level
		}
		r.Optimizations = append(r.Optimizations, e)
	}
	r.Overall = report.Overall{BaselineMS: base.timing.MedianMS, OptimizedMS: winner.timing.MedianMS,
		Baseline: report.MS(base.timing.MedianMS), Optimized: report.MS(winner.timing.MedianMS),
		Speedup: fmt.Sprintf("%.2f", base.timing.MedianMS/winner.timing.MedianMS)}
	st, _ := os.Stat(op.o.Model)
	mi := report.ModelInfo{Framework: "torchscript", File: filepath.Base(op.o.Model)}
	if st != nil {
		mi.SizeBytes = st.Size()
	}
	for _, in := range op.sig.Inputs {
		dt := in.DType.String()
		if in.DType == tensor.Invalid {
			dt = "any (not declared)"
		}
		mi.Inputs = append(mi.Inputs, report.Tensor{Name: in.Name, DType: dt, Shape: tensor.ShapeString(in.Shape)})
	}
	for _, o := range op.sig.Outputs {
		mi.Outputs = append(mi.Outputs, report.Tensor{Name: o.Name, DType: o.DType.String(), Shape: tensor.ShapeString(o.Shape)})
	}
	r.ModelInfo = mi
	r.CompatibilityList = []report.Compatibility{{Runtime: "libtorch", Version: torch.Version(), Note: "OpenEAS processor pytorch_cpu"}}
	for _, c := range cands {
		rc := report.Candidate{Name: c.name, Detail: c.detail, Timing: c.timing, Accuracy: c.acc, Verdict: c.verdict}
		if c.ok {
			rc.Speedup = base.timing.MedianMS / c.timing.MedianMS
		}
		r.Candidates = append(r.Candidates, rc)
	}
	return r
}

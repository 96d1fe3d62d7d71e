package blade

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"github.com/openeas/openeas/internal/blade/report"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// Output file names inside Options.OutputDir.
const (
	RuntimeFile = "runtime.json"
	ReportFile  = "report.json"
)

// Result is what Optimize produced.
type Result struct {
	ModelPath   string // OutputDir/<ModelName>
	RuntimePath string // OutputDir/runtime.json
	ReportPath  string // OutputDir/report.json
	Runtime     processor.Runtime
	Report      *report.Report
}

// candidate is one (model file, session settings) pair under evaluation.
type candidate struct {
	name   string // shown in the table
	opt    string // Blade-style optimization name it belongs to
	detail string
	model  string // model file to load
	rt     processor.Runtime
	level  string // budget it must meet: o1 (lossless) or o2
	timing *report.Timing
	acc    []report.OutputAccuracy
	ok     bool   // verified inside its budget
	why    string // rejection or failure reason
}

// optimizer holds one run's state.
type optimizer struct {
	o        Options
	eng      Engine
	work     string
	model    *onnxpb.ModelProto
	sig      []tensor.Info // inputs in the order input_shapes/input_ranges refer to
	outputs  []string      // outputs compared and fetched
	outSig   []tensor.Info // every output of the model, as ONNX Runtime declares it
	classOut map[string]bool
	samples  []Sample
	refs     []map[string]*tensor.Tensor
	base     *candidate
	cands    []*candidate
	groups   []group
	notes    []string
	dataSrc  string
}

// Optimize runs the whole search and writes OutputDir/<ModelName>, runtime.json and
// report.json. It fails only when the model cannot be read or run at all; candidates that
// fail are recorded in the report. Cancelling ctx stops between runs.
func Optimize(ctx context.Context, o Options) (*Result, error) {
	o.applyDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	eng := o.Engine
	if eng == nil {
		eng = ORT{}
	}
	if err := os.MkdirAll(o.OutputDir, 0o755); err != nil {
		return nil, fmt.Errorf("blade: create output directory: %w", err)
	}
	work, err := os.MkdirTemp(o.OutputDir, ".blade-work-")
	if err != nil {
		return nil, fmt.Errorf("blade: create work directory: %w", err)
	}
	defer os.RemoveAll(work)

	op := &optimizer{o: o, eng: eng, work: work}
	op.progress("loading %s", o.Model)
	m, err := loadModel(o.Model)
	if err != nil {
		return nil, err
	}
	op.model = m
	if err := op.prepare(ctx); err != nil {
		return nil, err
	}
	op.search(ctx)
	op.confirm(ctx)
	return op.finish()
}

// loadModel reads and sanity-checks the model so bad files fail with a clear message
// before ONNX Runtime sees them.
func loadModel(path string) (*onnxpb.ModelProto, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("blade: model %s: %w", path, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("blade: model %s is a directory; expected an .onnx file", path)
	}
	m, err := onnx.Load(path)
	if err != nil {
		return nil, fmt.Errorf("blade: model %s is not a readable ONNX model: %w", path, err)
	}
	if len(m.GetGraph().GetNode()) == 0 {
		return nil, fmt.Errorf("blade: model %s: the graph has no nodes (truncated or not an ONNX model?)", path)
	}
	return m, nil
}

func (op *optimizer) progress(format string, args ...any) {
	fmt.Fprintf(op.o.Progress, "blade: "+format+"\n", args...)
	op.o.Logger.Info(fmt.Sprintf(format, args...))
}

// prepare opens the original model with default settings, settles the signature, the
// samples and the reference outputs, and times the baseline.
func (op *optimizer) prepare(ctx context.Context) error {
	o := op.o
	s, err := op.eng.NewSession(o.Model, SessionConfig{})
	if err != nil {
		return fmt.Errorf("blade: ONNX Runtime cannot load %s: %w", o.Model, err)
	}
	defer s.Close()
	ins, outs := s.Inputs(), s.Outputs()
	op.outSig = outs
	if op.sig, err = orderInputs(ins, o.Inputs); err != nil {
		return err
	}
	if op.outputs, err = selectOutputs(outs, o.Outputs); err != nil {
		return err
	}
	for i, set := range o.InputShapes {
		if len(set) != len(op.sig) {
			return fmt.Errorf("blade: input_shapes[%d] has %d entries, expected %d (one per input: %s)", i, len(set), len(op.sig), strings.Join(infoNames(op.sig), ", "))
		}
	}
	for i, set := range o.InputRanges {
		if len(set) != len(op.sig) {
			return fmt.Errorf("blade: input_ranges[%d] has %d entries, expected %d (one per input: %s)", i, len(set), len(op.sig), strings.Join(infoNames(op.sig), ", "))
		}
	}
	op.classOut = classScoreOutputs(op.model, outs)

	if op.samples, err = op.loadSamples(); err != nil {
		return err
	}
	op.progress("computing reference outputs on %d samples (%s)", len(op.samples), op.dataSrc)
	op.refs = make([]map[string]*tensor.Tensor, len(op.samples))
	for i, smp := range op.samples {
		if op.refs[i], err = s.Run(ctx, smp, op.outputs); err != nil {
			return fmt.Errorf("blade: the original model fails on sample %d: %w", i, err)
		}
	}
	op.progress("timing baseline (ONNX Runtime defaults, %d runs)", o.Runs)
	t, err := measure(ctx, s, op.samples, op.outputs, o.Runs)
	if err != nil {
		return fmt.Errorf("blade: time baseline: %w", err)
	}
	op.base = &candidate{name: "baseline", opt: "Baseline", detail: "original model, ONNX Runtime default session options",
		model: o.Model, level: LevelO1, timing: t, ok: true}
	for _, name := range op.outputs {
		op.base.acc = append(op.base.acc, report.OutputAccuracy{Output: name, MinCosine: 1, Top1Agreement: topOrNone(op.classOut[name])})
	}
	return nil
}

func topOrNone(class bool) float64 {
	if class {
		return 1
	}
	return -1
}

func infoNames(infos []tensor.Info) []string {
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.Name
	}
	return out
}

// orderInputs returns the model inputs in the order the user listed them (all of them must be
// listed when any are, since every input needs a value).
func orderInputs(ins []tensor.Info, names []string) ([]tensor.Info, error) {
	if len(names) == 0 {
		return ins, nil
	}
	var out []tensor.Info
	for _, n := range names {
		i := slices.IndexFunc(ins, func(in tensor.Info) bool { return in.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("blade: inputs: %q is not an input of the model; its inputs are %s", n, strings.Join(infoNames(ins), ", "))
		}
		out = append(out, ins[i])
	}
	if len(out) != len(ins) {
		return nil, fmt.Errorf("blade: inputs lists %d of the model's %d inputs (%s); every input needs a value", len(out), len(ins), strings.Join(infoNames(ins), ", "))
	}
	return out, nil
}

func selectOutputs(outs []tensor.Info, names []string) ([]string, error) {
	if len(names) == 0 {
		return infoNames(outs), nil
	}
	for _, n := range names {
		if !slices.ContainsFunc(outs, func(o tensor.Info) bool { return o.Name == n }) {
			return nil, fmt.Errorf("blade: outputs: %q is not an output of the model; its outputs are %s", n, strings.Join(infoNames(outs), ", "))
		}
	}
	return names, nil
}

// classScoreOutputs marks float outputs that hold class scores: produced by Softmax or
// LogSoftmax, or of shape [batch, classes].
func classScoreOutputs(m *onnxpb.ModelProto, outs []tensor.Info) map[string]bool {
	g := onnx.ModelGraph(m)
	res := map[string]bool{}
	for _, out := range outs {
		if out.DType != tensor.Float && out.DType != tensor.Double && out.DType != tensor.Float16 {
			continue
		}
		if p := g.Producer(out.Name); p != nil && (p.GetOpType() == "Softmax" || p.GetOpType() == "LogSoftmax") {
			res[out.Name] = true
			continue
		}
		if len(out.Shape) == 2 && out.Shape[1] != 1 {
			res[out.Name] = true
		}
	}
	return res
}

// evaluate loads c, verifies it on every sample against the references and, when it holds,
// times it. Failures are recorded on c, never returned.
func (op *optimizer) evaluate(ctx context.Context, c *candidate) {
	op.cands = append(op.cands, c)
	op.progress("candidate %s: verifying on %d samples", c.name, len(op.samples))
	s, err := op.eng.NewSession(c.model, SessionConfig{Runtime: c.rt})
	if err != nil {
		c.why = "failed: load: " + err.Error()
		return
	}
	defer s.Close()
	budget := op.o.Accuracy.BudgetFor(c.level)
	cmp := make([]*outputCompare, len(op.outputs))
	for k, name := range op.outputs {
		cmp[k] = newOutputCompare(name, op.classOut[name])
	}
	for i, smp := range op.samples {
		got, err := s.Run(ctx, smp, op.outputs)
		if err != nil {
			c.why = fmt.Sprintf("failed: run on sample %d: %v", i, err)
			return
		}
		for k, name := range op.outputs {
			cmp[k].add(got[name], op.refs[i][name])
		}
	}
	c.ok = true
	for _, oc := range cmp {
		c.acc = append(c.acc, oc.result())
		if ok, why := oc.within(c.level, budget); !ok && c.ok {
			c.ok, c.why = false, "rejected: "+why
		}
	}
	if !c.ok {
		return
	}
	op.progress("candidate %s: timing %d runs", c.name, op.o.Runs)
	if c.timing, err = measure(ctx, s, op.samples, op.outputs, op.o.Runs); err != nil {
		c.ok, c.why = false, "failed: timing: "+err.Error()
	}
}

// confirm times the baseline and the fastest verified candidates again, interleaved (see
// interleaved), and keeps those figures: the winner is then chosen, and compared with the
// baseline, under the same conditions. A busy moment during the search can therefore
// neither inflate a speedup nor make Blade ship a setting that only looked faster.
func (op *optimizer) confirm(ctx context.Context) {
	var top []*candidate
	for _, c := range op.cands {
		if c.ok && c.timing != nil {
			top = append(top, c)
		}
	}
	slices.SortStableFunc(top, func(a, b *candidate) int { return cmp.Compare(a.timing.MedianMS, b.timing.MedianMS) })
	top = top[:min(len(top), confirmContenders)]
	contenders := append([]*candidate{op.base}, top...)
	var sessions []Session
	defer func() {
		for _, s := range sessions {
			s.Close()
		}
	}()
	for _, c := range contenders {
		s, err := op.eng.NewSession(c.model, SessionConfig{Runtime: c.rt})
		if err != nil {
			return // keep the search's figures
		}
		sessions = append(sessions, s)
	}
	op.progress("confirming: baseline and %d best candidate(s), interleaved", len(top))
	ts, err := interleaved(ctx, sessions, op.samples, op.outputs, op.o.Runs)
	if err != nil {
		return
	}
	for i, c := range contenders {
		c.timing = ts[i]
	}
}

// confirmContenders is how many of the fastest candidates the confirmation re-times.
const confirmContenders = 3

// speedup of c over the baseline (0 when untimed).
func (op *optimizer) speedup(c *candidate) float64 {
	if c.timing == nil || c.timing.MedianMS <= 0 {
		return 0
	}
	return op.base.timing.MedianMS / c.timing.MedianMS
}

// best returns the fastest verified candidate among cs, or nil.
func best(cs []*candidate) *candidate {
	var b *candidate
	for _, c := range cs {
		if c.ok && c.timing != nil && (b == nil || c.timing.MedianMS < b.timing.MedianMS) {
			b = c
		}
	}
	return b
}

// group is the candidates of one Blade-style optimization; the report entry is built at the
// end, against the final baseline timing.
type group struct {
	name   string
	cands  []*candidate
	reason string
}

// record notes a Blade-style optimization and its candidates.
func (op *optimizer) record(name string, cands []*candidate, reasonIfNone string) {
	op.groups = append(op.groups, group{name, cands, reasonIfNone})
}

// entry turns a group into a report entry.
func (op *optimizer) entry(gr group) report.Optimization {
	name, group, reasonIfNone := gr.name, gr.cands, gr.reason
	e := report.Optimization{Name: name, PreRun: report.MS(op.base.timing.MedianMS)}
	b := best(group)
	switch {
	case b != nil && b.timing.MedianMS < op.base.timing.MedianMS:
		e.Status = "effective"
		e.PostRun = report.MS(b.timing.MedianMS)
		e.Ratio = op.speedup(b)
		e.Speedup = fmt.Sprintf("%.2f", e.Ratio)
	case b != nil:
		e.Status = "ineffective"
		e.PostRun = report.MS(b.timing.MedianMS)
		e.Ratio = op.speedup(b)
		e.Speedup = fmt.Sprintf("%.2f", e.Ratio)
		e.Reason = "verified but not faster than the baseline"
	case len(group) == 0:
		e.Status, e.Reason = "skipped", reasonIfNone
	default:
		e.Status = "rejected"
		e.Reason = group[len(group)-1].why
		if reasonIfNone != "" {
			e.Reason = reasonIfNone
		}
	}
	return e
}

// saveModel writes m under the work directory and returns its path.
func (op *optimizer) saveModel(m *onnxpb.ModelProto, name string) (string, error) {
	p := filepath.Join(op.work, name+".onnx")
	if err := onnx.Save(m, p, 0); err != nil {
		return "", err
	}
	return p, nil
}

// offline runs ONNX Runtime's graph optimizer on in at the portable "extended" level and
// returns the path of the optimized model it saved.
func (op *optimizer) offline(in, name string) (string, error) {
	out := filepath.Join(op.work, name+".ort-extended.onnx")
	s, err := op.eng.NewSession(in, SessionConfig{Runtime: processor.Runtime{GraphOptimizationLevel: "extended"}, OptimizedModelPath: out})
	if err != nil {
		return "", fmt.Errorf("offline optimization: %w", err)
	}
	if err := s.Close(); err != nil {
		return "", fmt.Errorf("offline optimization: close: %w", err)
	}
	if _, err := os.Stat(out); err != nil {
		return "", fmt.Errorf("offline optimization wrote no model: %w", err)
	}
	return out, nil
}

// finish picks the winner, writes the model, runtime.json and report.json.
func (op *optimizer) finish() (*Result, error) {
	o := op.o
	winner := best(op.cands)
	var msg []string
	msg = append(msg, op.notes...)
	if winner == nil || winner.timing.MedianMS >= op.base.timing.MedianMS {
		if winner != nil {
			winner.why = fmt.Sprintf("verified, %.3f ms is not faster than the baseline's %.3f ms", winner.timing.MedianMS, op.base.timing.MedianMS)
		}
		msg = append(msg, "no candidate was both verified and faster than the baseline: shipping the original model with ONNX Runtime's default settings")
		winner = op.base
	}
	if op.o.Level == LevelO2 && winner.level != LevelO2 {
		var o2 []*candidate
		for _, c := range op.cands {
			if c.level == LevelO2 {
				o2 = append(o2, c)
			}
		}
		if b := best(o2); b != nil {
			msg = append(msg, fmt.Sprintf("o2: INT8 candidate %q was verified (%.3f ms) but is not faster than %q (%.3f ms); o2 returns the o1 result",
				b.name, b.timing.MedianMS, winner.name, winner.timing.MedianMS))
		}
	}
	for _, c := range op.cands {
		if c == winner {
			continue
		}
		if c.ok && c.why == "" {
			c.why = fmt.Sprintf("slower than %s", winner.name)
		}
	}

	res := &Result{
		ModelPath:   filepath.Join(o.OutputDir, o.ModelName),
		RuntimePath: filepath.Join(o.OutputDir, RuntimeFile),
		ReportPath:  filepath.Join(o.OutputDir, ReportFile),
		Runtime:     winner.rt,
	}
	if err := op.writeModel(winner, res.ModelPath); err != nil {
		return nil, err
	}
	rtJSON, err := json.MarshalIndent(winner.rt, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("blade: encode runtime settings: %w", err)
	}
	if err := os.WriteFile(res.RuntimePath, append(rtJSON, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("blade: write %s: %w", res.RuntimePath, err)
	}
	res.Report = op.buildReport(winner, strings.Join(msg, "; "))
	if err := res.Report.Write(res.ReportPath); err != nil {
		return nil, fmt.Errorf("blade: %w", err)
	}
	return res, nil
}

// writeModel saves the winner's model under dst (external data when it is large).
func (op *optimizer) writeModel(c *candidate, dst string) error {
	m := op.model
	if c.model != op.o.Model {
		var err error
		if m, err = onnx.Load(c.model); err != nil {
			return fmt.Errorf("blade: reload chosen model: %w", err)
		}
	}
	if err := onnx.Save(m, dst, 0); err != nil {
		return fmt.Errorf("blade: write optimized model: %w", err)
	}
	return nil
}

func (op *optimizer) buildReport(winner *candidate, message string) *report.Report {
	o := op.o
	r := &report.Report{
		SoftwareContext: map[string]string{
			"blade":        "openeas-blade",
			"onnxruntime":  op.eng.Version(),
			"framework":    "onnx",
			"generated_at": time.Now().UTC().Format(time.RFC3339),
		},
		HardwareContext: report.HardwareContext(o.Device),
		UserConfig: map[string]any{
			"optimization_level":  o.Level,
			"device":              o.Device,
			"test_data":           o.TestData,
			"calibration_dataset": o.CalibrationDataset,
			"inputs":              o.Inputs,
			"outputs":             o.Outputs,
			"input_shapes":        o.InputShapes,
			"input_ranges":        o.InputRanges,
			"quantization":        map[string]string{"weight_adjustment": o.WeightAdjustment},
			"accuracy":            o.Accuracy,
			"threads":             o.Threads,
			"runs":                o.Runs,
		},
		Diagnosis: report.Diagnosis{
			Model:          filepath.Base(o.Model),
			TestDataSource: op.dataSrc,
			ShapeVariation: op.shapeVariation(),
			Message:        message,
			TestDataInfo:   op.dataInfo(),
		},
		Optimizations: []report.Optimization{},
		Overall: report.Overall{
			Baseline:    report.MS(op.base.timing.MedianMS),
			Optimized:   report.MS(winner.timing.MedianMS),
			Speedup:     fmt.Sprintf("%.2f", op.speedup(winner)),
			BaselineMS:  op.base.timing.MedianMS,
			OptimizedMS: winner.timing.MedianMS,
		},
		ModelInfo:         op.modelInfo(),
		CompatibilityList: []report.Compatibility{{Runtime: "onnxruntime", Version: op.eng.Version(), Note: compatNote(winner)}},
		Chosen:            winner.name,
		Runtime:           winner.rt,
	}
	for _, gr := range op.groups {
		r.Optimizations = append(r.Optimizations, op.entry(gr))
	}
	for _, c := range append([]*candidate{op.base}, op.cands...) {
		rc := report.Candidate{Name: c.name, Detail: c.detail, Timing: c.timing, Speedup: op.speedup(c), Accuracy: c.acc, Verdict: c.why}
		switch {
		case c == winner:
			rc.Verdict = "chosen"
		case c == op.base:
			rc.Verdict = "reference"
		}
		r.Candidates = append(r.Candidates, rc)
	}
	return r
}

func compatNote(c *candidate) string {
	var notes []string
	if c.level == LevelO2 {
		notes = append(notes, "INT8 kernels from the com.microsoft domain (CPU execution provider)")
	}
	if c.opt == "OnnxShapeSpecialization" {
		notes = append(notes, "inputs fixed to the shapes given in input_shapes")
	}
	return strings.Join(notes, "; ")
}

func (op *optimizer) shapeVariation() string {
	dynamic := false
	for _, in := range op.sig {
		dynamic = dynamic || slicesContainNeg(in.Shape) || in.Shape == nil
	}
	switch {
	case !dynamic:
		return "fixed"
	case len(op.o.InputShapes) == 1:
		return "dynamic, one shape set given: " + strings.Join(op.o.InputShapes[0], ";")
	case len(op.o.InputShapes) > 1:
		return fmt.Sprintf("dynamic, %d shape sets given", len(op.o.InputShapes))
	}
	return "dynamic"
}

func (op *optimizer) dataInfo() report.DataInfo {
	d := report.DataInfo{Samples: len(op.samples), Shapes: map[string][]int64{}, DTypes: map[string]string{}}
	if op.dataSrc == "test_data" {
		d.File = filepath.Base(op.o.TestData)
	}
	if len(op.samples) > 0 {
		for name, t := range op.samples[0] {
			d.Shapes[name] = t.Shape
			d.DTypes[name] = t.DType.String()
		}
	}
	return d
}

func (op *optimizer) modelInfo() report.ModelInfo {
	m := op.model
	mi := report.ModelInfo{Framework: "onnx", File: filepath.Base(op.o.Model), Producer: strings.TrimSpace(m.GetProducerName() + " " + m.GetProducerVersion()), Nodes: len(m.GetGraph().GetNode())}
	for _, imp := range m.GetOpsetImport() {
		if d := imp.GetDomain(); d == "" || d == "ai.onnx" {
			mi.Opset = imp.GetVersion()
		}
	}
	if st, err := os.Stat(op.o.Model); err == nil {
		mi.SizeBytes = st.Size()
	}
	for _, in := range op.sig {
		mi.Inputs = append(mi.Inputs, report.Tensor{Name: in.Name, DType: in.DType.String(), Shape: tensor.ShapeString(in.Shape)})
	}
	for _, name := range op.outputs {
		t := report.Tensor{Name: name}
		if i := slices.IndexFunc(op.outSig, func(o tensor.Info) bool { return o.Name == name }); i >= 0 {
			t.DType, t.Shape = op.outSig[i].DType.String(), tensor.ShapeString(op.outSig[i].Shape)
		}
		mi.Outputs = append(mi.Outputs, t)
	}
	return mi
}

// errNoTargets marks an optimization with nothing to apply.
var errNoTargets = errors.New("nothing to apply")

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

package blade

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"github.com/openeas/openeas/internal/blade/quant"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// search builds and evaluates the candidates in stages; each later stage starts from the
// best settings of the earlier ones so the number of sessions stays small.
func (op *optimizer) search(ctx context.Context) {
	rt := op.tuneRuntime(ctx)
	if ctx.Err() != nil {
		return
	}
	o1, err := op.graphO1(ctx, rt)
	if err != nil {
		op.notes = append(op.notes, "o1 graph optimization: "+err.Error())
		return
	}
	if ctx.Err() != nil {
		return
	}
	op.specializeShapes(ctx, o1, rt)
	if op.o.Level == LevelO2 && ctx.Err() == nil {
		if op.o.CalibrationDataset != "" {
			op.quantizeStatic(ctx, o1, rt)
		} else {
			op.quantizeDynamic(ctx, o1, rt)
		}
	}
}

func boolPtr(b bool) *bool { return &b }

func rtName(rt processor.Runtime) string {
	parts := []string{"threads=default"}
	if rt.IntraOpThreads > 0 {
		parts[0] = fmt.Sprintf("threads=%d", rt.IntraOpThreads)
	}
	if rt.AllowSpinning != nil {
		parts = append(parts, map[bool]string{true: "spin=on", false: "spin=off"}[*rt.AllowSpinning])
	}
	if rt.ExecutionMode != "" {
		parts = append(parts, "mode="+rt.ExecutionMode)
	}
	return strings.Join(parts, " ")
}

// tuneRuntime tries thread counts × intra-op spinning (and parallel execution at the best
// count) on the original model, and returns the best settings found (the defaults when none
// beat them).
func (op *optimizer) tuneRuntime(ctx context.Context) processor.Runtime {
	var group []*candidate
	add := func(rt processor.Runtime) *candidate {
		c := &candidate{name: "runtime " + rtName(rt), opt: "OrtRuntimeTuning", detail: "original model, tuned session options",
			model: op.o.Model, rt: rt, level: LevelO1}
		op.evaluate(ctx, c)
		group = append(group, c)
		return c
	}
	for _, t := range op.o.Threads {
		if ctx.Err() != nil {
			break
		}
		if t == 1 { // one thread has no pool to spin
			add(processor.Runtime{IntraOpThreads: 1, GraphOptimizationLevel: "all"})
			continue
		}
		add(processor.Runtime{IntraOpThreads: t, GraphOptimizationLevel: "all", AllowSpinning: boolPtr(false)})
		add(processor.Runtime{IntraOpThreads: t, GraphOptimizationLevel: "all", AllowSpinning: boolPtr(true)})
	}
	if b := best(group); b != nil && ctx.Err() == nil {
		rt := b.rt
		rt.ExecutionMode, rt.InterOpThreads = "parallel", max(rt.IntraOpThreads, 1)
		add(rt)
	}
	op.record("OrtRuntimeTuning", group, "")
	b := best(group)
	if b == nil || b.timing.MedianMS >= op.base.timing.MedianMS {
		return processor.Runtime{GraphOptimizationLevel: "all"}
	}
	return b.rt
}

// graphO1 applies the lossless graph passes, then ONNX Runtime's offline optimization at the
// portable "extended" level, and evaluates the result served at level "all". It returns the
// rewritten (pre-ORT) graph for the later stages.
func (op *optimizer) graphO1(ctx context.Context, rt processor.Runtime) (*onnxpb.ModelProto, error) {
	m := quant.NameNodes(quant.Clone(op.model))
	applied, err := applyPasses(m)
	if err != nil {
		op.notes = append(op.notes, "graph passes skipped: "+err.Error())
		m = quant.NameNodes(quant.Clone(op.model))
		applied = nil
	}
	in, err := op.saveModel(m, "o1")
	if err != nil {
		return nil, err
	}
	var group []*candidate
	if off, err := op.offline(in, "o1"); err != nil {
		op.notes = append(op.notes, "offline ORT optimization failed: "+err.Error())
	} else {
		detail := "ORT offline optimization (extended, portable)"
		if len(applied) > 0 {
			detail = "passes: " + strings.Join(applied, ", ") + "; " + detail
		}
		c := &candidate{name: "o1 graph, " + rtName(rt), opt: "OnnxGraphOptimization", detail: detail, model: off, rt: rt, level: LevelO1}
		op.evaluate(ctx, c)
		group = append(group, c)
	}
	op.record("OnnxGraphOptimization", group, "")
	return m, nil
}

// specializeShapes fixes dynamic input dims to the single shape set given in input_shapes.
func (op *optimizer) specializeShapes(ctx context.Context, o1 *onnxpb.ModelProto, rt processor.Runtime) {
	if len(op.o.InputShapes) != 1 {
		reason := "no input_shapes given"
		if len(op.o.InputShapes) > 1 {
			reason = "several input shape sets given; the model must keep accepting all of them"
		}
		op.record("OnnxShapeSpecialization", nil, reason)
		return
	}
	shapes, _, err := parseSets(op.o.InputShapes, nil)
	if err != nil {
		op.record("OnnxShapeSpecialization", nil, err.Error())
		return
	}
	m := quant.Clone(o1)
	changed := 0
	for k, in := range op.sig {
		changed += fixInputShape(m, in.Name, shapes[0][k])
	}
	if changed == 0 {
		op.record("OnnxShapeSpecialization", nil, "the model's inputs have no dynamic dimensions")
		return
	}
	var group []*candidate
	in, err := op.saveModel(m, "shapes")
	if err == nil {
		var off string
		if off, err = op.offline(in, "shapes"); err == nil {
			c := &candidate{name: "o1 graph + fixed shapes, " + rtName(rt), opt: "OnnxShapeSpecialization",
				detail: "inputs fixed to " + strings.Join(op.o.InputShapes[0], ";"), model: off, rt: rt, level: LevelO1}
			op.evaluate(ctx, c)
			group = append(group, c)
		}
	}
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	op.record("OnnxShapeSpecialization", group, reason)
}

// fixInputShape sets the dims of graph input name to shape; it returns how many dims changed.
func fixInputShape(m *onnxpb.ModelProto, name string, shape []int64) int {
	changed := 0
	for _, vi := range m.GetGraph().GetInput() {
		if vi.GetName() != name {
			continue
		}
		tt := vi.GetType().GetTensorType()
		if tt == nil || tt.GetShape() == nil || len(tt.GetShape().GetDim()) != len(shape) {
			return 0
		}
		for i, d := range tt.GetShape().GetDim() {
			if _, fixed := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue); fixed {
				continue
			}
			d.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: shape[i]}
			changed++
		}
	}
	return changed
}

// quantizeDynamic tries dynamic INT8 on MatMul/Gemm, sending the nodes with the largest weight
// quantization error back to float until the o2 budget holds.
func (op *optimizer) quantizeDynamic(ctx context.Context, o1 *onnxpb.ModelProto, rt processor.Runtime) {
	const name = "OnnxInt8Dynamic"
	targets := quant.DynamicTargets(o1, true)
	if len(targets) == 0 {
		op.record(name, nil, "no MatMul/Gemm with constant weights to quantize")
		op.notes = append(op.notes, "o2: nothing to quantize (no MatMul/Gemm with constant weights); o2 returns the o1 result")
		return
	}
	slices.SortStableFunc(targets, func(a, b quant.Target) int {
		switch {
		case a.WeightError > b.WeightError:
			return -1
		case a.WeightError < b.WeightError:
			return 1
		}
		return 0
	})
	var means map[string][]float64
	if op.o.WeightAdjustment != "false" {
		var err error
		if means, err = op.inputMeans(ctx, o1, targets); err != nil {
			op.notes = append(op.notes, "bias correction unavailable: "+err.Error())
		}
	}
	adjust := map[string][]bool{"true": {true}, "false": {false}, "auto": {false, true}}[op.o.WeightAdjustment]
	if means == nil {
		adjust = []bool{false}
	}
	var group []*candidate
	var tried []int
	for _, frac := range []float64{0, 0.1, 0.25, 0.5, 0.75} {
		skipN := int(frac*float64(len(targets)) + 0.999)
		if skipN >= len(targets) || slices.Contains(tried, skipN) {
			continue
		}
		tried = append(tried, skipN)
		skip := map[string]bool{}
		for _, t := range targets[:skipN] {
			skip[t.Node] = true
		}
		for _, wa := range adjust {
			if ctx.Err() != nil {
				break
			}
			cfg := quant.DynamicConfig{PerChannel: true, Skip: skip}
			label := fmt.Sprintf("o2 dynamic int8 %d/%d nodes", len(targets)-skipN, len(targets))
			if wa {
				cfg.InputMeans = means
				label += " +bias-correction"
			}
			c := op.quantCandidate(ctx, o1, cfg, label, rt)
			group = append(group, c)
			if c.ok {
				op.record(name, group, "")
				return
			}
		}
	}
	op.record(name, group, "")
	op.notes = append(op.notes, fmt.Sprintf("o2: no INT8 variant met the budget (cosine ≥ %.4f, top-1 ≥ %.2f%%) even with the most sensitive nodes in float; o2 returns the o1 result",
		op.o.Accuracy.MinCosine, 100*op.o.Accuracy.MinTop1Agreement))
}

func (op *optimizer) quantCandidate(ctx context.Context, o1 *onnxpb.ModelProto, cfg quant.DynamicConfig, label string, rt processor.Runtime) *candidate {
	c := &candidate{name: label + ", " + rtName(rt), opt: "OnnxInt8Dynamic", detail: "per-channel int8 weights, DynamicQuantizeMatMul", rt: rt, level: LevelO2}
	m, done, err := quant.Dynamic(o1, cfg)
	if err == nil && len(done) == 0 {
		err = fmt.Errorf("no node quantized")
	}
	var in string
	if err == nil {
		in, err = op.saveModel(m, fmt.Sprintf("int8-%d", len(op.cands)))
	}
	if err == nil {
		c.model, err = op.offline(in, fmt.Sprintf("int8-%d", len(op.cands)))
	}
	if err != nil {
		c.why = "failed: " + err.Error()
		op.cands = append(op.cands, c)
		return c
	}
	op.evaluate(ctx, c)
	return c
}

// inputMeans runs the float model with the targets' activation inputs exposed as outputs and
// returns each input's per-feature mean (last axis) over the calibration samples, or the test
// samples when no calibration data is given.
func (op *optimizer) inputMeans(ctx context.Context, m *onnxpb.ModelProto, targets []quant.Target) (map[string][]float64, error) {
	samples := op.samples
	if op.o.CalibrationDataset != "" {
		var err error
		if samples, err = readAux(op.o.CalibrationDataset, op.sig, "calibration_dataset"); err != nil {
			return nil, err
		}
	}
	aug := quant.Clone(m)
	names := quant.ExposeTensors(aug, targetInputs(targets))
	path, err := op.saveModel(aug, "stats")
	if err != nil {
		return nil, err
	}
	s, err := op.eng.NewSession(path, SessionConfig{})
	if err != nil {
		return nil, fmt.Errorf("load statistics model: %w", err)
	}
	defer s.Close()
	sums := map[string][]float64{}
	counts := map[string]int{}
	for i, smp := range samples {
		out, err := s.Run(ctx, smp, names)
		if err != nil {
			return nil, fmt.Errorf("statistics run on sample %d: %w", i, err)
		}
		for _, n := range names {
			t := out[n]
			if t == nil || t.DType != tensor.Float || len(t.Shape) == 0 {
				continue
			}
			v, _ := t.Float64s()
			k := int(t.Shape[len(t.Shape)-1])
			if k == 0 {
				continue
			}
			if sums[n] == nil {
				sums[n] = make([]float64, k)
			}
			if len(sums[n]) != k {
				continue
			}
			for j, x := range v {
				sums[n][j%k] += x
			}
			counts[n] += len(v) / k
		}
	}
	means := map[string][]float64{}
	for _, t := range targets {
		if s := sums[t.Input]; s != nil && counts[t.Input] > 0 {
			mv := make([]float64, len(s))
			for j := range s {
				mv[j] = s[j] / float64(counts[t.Input])
			}
			means[t.Node] = mv
		}
	}
	return means, nil
}

func targetInputs(ts []quant.Target) []string {
	var out []string
	for _, t := range ts {
		if !slices.Contains(out, t.Input) {
			out = append(out, t.Input)
		}
	}
	return out
}

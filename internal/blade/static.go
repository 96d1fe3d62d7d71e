package blade

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"github.com/openeas/openeas/internal/blade/quant"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

const staticOpt = "OnnxInt8Static"

// quantizeStatic tries offline (static) INT8 in QDQ form with activation ranges calibrated on
// the calibration dataset. When the fully quantized model misses the o2 budget, the nodes that
// add the most error (measured layer by layer against the float model) go back to float in
// growing shares until the budget holds.
func (op *optimizer) quantizeStatic(ctx context.Context, o1 *onnxpb.ModelProto, rt processor.Runtime) {
	targets := quant.StaticTargets(o1)
	if len(targets) == 0 {
		op.record(staticOpt, nil, "no Conv, MatMul, Gemm, pool or residual Add to quantize")
		op.notes = append(op.notes, "o2: nothing to quantize statically; o2 returns the o1 result")
		return
	}
	calSamples, err := readAux(op.o.CalibrationDataset, op.sig, "calibration_dataset")
	if err != nil {
		op.record(staticOpt, nil, err.Error())
		op.notes = append(op.notes, "o2: "+err.Error()+"; o2 returns the o1 result")
		return
	}
	op.progress("calibrating activation ranges on %d samples", len(calSamples))
	cal, err := op.calibrate(ctx, o1, calSamples)
	if err != nil {
		op.record(staticOpt, nil, "calibration failed: "+err.Error())
		op.notes = append(op.notes, "o2: calibration failed ("+err.Error()+"); o2 returns the o1 result")
		return
	}
	cfg := quant.StaticConfig{Calibration: cal, BiasCorrection: op.o.WeightAdjustment != "false", ReduceRange: quant.NeedsReducedRange()}
	var group []*candidate
	try := func(skip map[string]bool, label string) *candidate {
		cfg.Skip = skip
		c := op.staticCandidate(ctx, o1, cfg, label, rt)
		group = append(group, c)
		return c
	}
	full := try(nil, fmt.Sprintf("o2 static int8 %d/%d nodes", len(targets), len(targets)))
	if full.ok || ctx.Err() != nil {
		op.record(staticOpt, group, "")
		return
	}
	ranked := targets
	if errs, err := op.layerErrors(ctx, o1, full); err != nil {
		op.notes = append(op.notes, "layer-wise sensitivity unavailable ("+err.Error()+"): nodes go back to float by weight error")
		ranked = quant.RankBySensitivity(targets, nil)
	} else {
		ranked = quant.RankBySensitivity(targets, errs)
	}
	tried := map[int]bool{}
	for _, frac := range []float64{0.05, 0.1, 0.25, 0.5, 0.75} {
		skipN := int(frac*float64(len(ranked)) + 0.999)
		if skipN >= len(ranked) || tried[skipN] || ctx.Err() != nil {
			continue
		}
		tried[skipN] = true
		skip := map[string]bool{}
		for _, t := range ranked[:skipN] {
			skip[t.Node] = true
		}
		c := try(skip, fmt.Sprintf("o2 static int8 %d/%d nodes (%d most sensitive in float)", len(ranked)-skipN, len(ranked), skipN))
		if c.ok {
			op.record(staticOpt, group, "")
			return
		}
	}
	op.record(staticOpt, group, "")
	op.notes = append(op.notes, fmt.Sprintf("o2: no static INT8 variant met the budget (cosine ≥ %.4f, top-1 ≥ %.2f%%) even with the most sensitive nodes in float; o2 returns the o1 result",
		op.o.Accuracy.BudgetFor(LevelO2).MinCosine, 100*op.o.Accuracy.BudgetFor(LevelO2).MinTop1Agreement))
}

// staticCandidate builds, offline-optimizes and evaluates one static INT8 model, and says in
// its detail how many convolutions ONNX Runtime turned into QLinearConv.
func (op *optimizer) staticCandidate(ctx context.Context, o1 *onnxpb.ModelProto, cfg quant.StaticConfig, label string, rt processor.Runtime) *candidate {
	c := &candidate{name: label + ", " + rtName(rt), opt: staticOpt, rt: rt, level: LevelO2,
		detail: "QDQ: per-channel int8 weights, calibrated 8-bit activations, int32 bias"}
	if cfg.BiasCorrection {
		c.name = strings.Replace(c.name, ",", " +bias-correction,", 1)
	}
	if cfg.ReduceRange {
		c.detail += ", 7-bit weights (this CPU has no VNNI)"
	}
	m, done, err := quant.Static(o1, cfg)
	if err == nil && len(done) == 0 {
		err = fmt.Errorf("no node quantized")
	}
	var in string
	tag := fmt.Sprintf("static-%d", len(op.cands))
	if err == nil {
		in, err = op.saveModel(m, tag)
	}
	if err == nil {
		c.model, err = op.offline(in, tag)
	}
	if err != nil {
		c.why = "failed: " + err.Error()
		op.cands = append(op.cands, c)
		return c
	}
	if om, err := onnx.Load(c.model); err == nil {
		ops := map[string]int{}
		for _, n := range om.GetGraph().GetNode() {
			ops[n.GetOpType()]++
		}
		c.detail += fmt.Sprintf("; ORT formed %d QLinearConv (%d Conv left float)", ops["QLinearConv"], ops["Conv"]+ops["FusedConv"])
	}
	op.evaluate(ctx, c)
	return c
}

// calibrate runs the float model with every activation the quantizer needs exposed as an
// output, over the calibration samples, and returns their ranges (min/max, or the
// CalibrationPercentile) and channel means. input_ranges widen the graph inputs' ranges.
func (op *optimizer) calibrate(ctx context.Context, m *onnxpb.ModelProto, samples []Sample) (*quant.Calibration, error) {
	aug := quant.Clone(m)
	names := quant.ExposeTensors(aug, quant.StaticActivations(m))
	path, err := op.saveModel(aug, "calibration")
	if err != nil {
		return nil, err
	}
	s, err := op.eng.NewSession(path, SessionConfig{})
	if err != nil {
		return nil, fmt.Errorf("load calibration model: %w", err)
	}
	defer s.Close()
	col := quant.NewCollector()
	pct := op.o.CalibrationPercentile
	for pass := 0; pass < 2; pass++ {
		if pass == 1 && (pct <= 0 || pct >= 100) {
			break
		}
		for i, smp := range samples {
			out, err := s.Run(ctx, smp, names)
			if err != nil {
				return nil, fmt.Errorf("calibration run on sample %d: %w", i, err)
			}
			for name, t := range smp {
				out[name] = t
			}
			for name, t := range out {
				if pass == 0 {
					col.Add(name, t)
				} else {
					col.AddHistogram(name, t)
				}
			}
		}
	}
	seed := map[string]quant.Range{}
	if _, ranges, err := parseSets(nil, op.o.InputRanges); err == nil {
		for _, set := range ranges {
			for k, r := range set {
				name := op.sig[k].Name
				qr := quant.Range{Lo: r.Lo, Hi: r.Hi}
				if have, ok := seed[name]; ok {
					qr = qr.Union(have)
				}
				seed[name] = qr
			}
		}
	}
	return col.Calibration(pct, seed)
}

// layerErrors runs the float model and the candidate's quantized model (before ORT's offline
// pass, with the quantized nodes' outputs exposed) on the verification samples and returns
// the worst relative L2 error of each exposed activation.
func (op *optimizer) layerErrors(ctx context.Context, o1 *onnxpb.ModelProto, full *candidate) (map[string]float64, error) {
	cfgTargets := quant.StaticTargets(o1)
	var names []string
	for _, t := range cfgTargets {
		names = append(names, t.Output)
		names = append(names, t.Inputs...)
	}
	qpath := strings.TrimSuffix(full.model, ".ort-extended.onnx") + ".onnx"
	qm, err := onnx.Load(qpath)
	if err != nil {
		return nil, err
	}
	fm := quant.Clone(o1)
	fNames := quant.ExposeTensors(fm, names)
	qNames := quant.ExposeTensors(qm, names)
	fp, err := op.saveModel(fm, "sensitivity-float")
	if err != nil {
		return nil, err
	}
	qp, err := op.saveModel(qm, "sensitivity-int8")
	if err != nil {
		return nil, err
	}
	fs, err := op.eng.NewSession(fp, SessionConfig{})
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	qs, err := op.eng.NewSession(qp, SessionConfig{Runtime: full.rt})
	if err != nil {
		return nil, err
	}
	defer qs.Close()
	errs := map[string]float64{}
	for i, smp := range op.samples {
		fo, err := fs.Run(ctx, smp, fNames)
		if err != nil {
			return nil, fmt.Errorf("float run on sample %d: %w", i, err)
		}
		qo, err := qs.Run(ctx, smp, qNames)
		if err != nil {
			return nil, fmt.Errorf("int8 run on sample %d: %w", i, err)
		}
		for _, n := range qNames {
			if e, ok := relL2(qo[n], fo[n]); ok {
				errs[n] = math.Max(errs[n], e)
			}
		}
	}
	return errs, nil
}

// relL2 is ‖a − b‖/‖b‖ for float tensors of the same shape.
func relL2(a, b *tensor.Tensor) (float64, bool) {
	if a == nil || b == nil || len(a.Data) != len(b.Data) {
		return 0, false
	}
	va, okA := a.Float64s()
	vb, okB := b.Float64s()
	if !okA || !okB {
		return 0, false
	}
	var d, n float64
	for i := range va {
		d += (va[i] - vb[i]) * (va[i] - vb[i])
		n += vb[i] * vb[i]
	}
	if n == 0 {
		return 0, d == 0
	}
	return math.Sqrt(d / n), true
}

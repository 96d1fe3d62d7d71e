package quant

import (
	"fmt"
	"math"
	"runtime"
	"slices"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"github.com/openeas/openeas/internal/blade/passes"
	"golang.org/x/sys/cpu"
)

// StaticConfig selects what Static rewrites.
type StaticConfig struct {
	// Calibration holds the activation ranges (required) and per-channel means (bias correction).
	Calibration *Calibration
	// Int8Activations quantizes activations to int8 (asymmetric) instead of uint8.
	Int8Activations bool
	// Skip names nodes to keep in float.
	Skip map[string]bool
	// BiasCorrection folds the expected weight quantization error of Conv and Gemm into their
	// bias, using the per-channel means of their input from Calibration.
	BiasCorrection bool
	// ReduceRange quantizes weights to 7 bits ([-63, 63]). x86 CPUs without VNNI multiply
	// uint8 activations by int8 weights in 16-bit pairs that saturate at full range, which
	// wrecks accuracy (see NeedsReducedRange).
	ReduceRange bool
	// MSDomain forces com.microsoft QuantizeLinear/DequantizeLinear; they are used anyway when
	// the default-domain opset is below 13 (per-channel axis needs opset 13 there).
	MSDomain bool
}

// staticSite is a node Static quantizes, with the activations it reads and the activation
// whose quantization ends it (its output, or the output of a Relu/Clip it absorbs).
type staticSite struct {
	n       *onnxpb.NodeProto
	acts    []string // activation inputs, in input order
	out     string   // quantized output
	absorbs *onnxpb.NodeProto
	w       []float32 // constant weight (Conv, MatMul, Gemm), as stored
	wDims   []int64
	axis    int // weight channel axis
	bias    []float32
	weight  string
}

func isDefault(n *onnxpb.NodeProto) bool { return n.GetDomain() == "" || n.GetDomain() == "ai.onnx" }

// isConst reports whether name is a constant (initializer or Constant node output).
func isConst(g *onnx.Graph, name string) bool {
	if g.Constant(name) != nil {
		return true
	}
	p := g.Producer(name)
	return p != nil && p.GetOpType() == "Constant" && isDefault(p)
}

// floatActivation reports whether name is a non-constant value that may be float (its type is
// float or unknown).
func floatActivation(g *onnx.Graph, name string) bool {
	if name == "" || isConst(g, name) {
		return false
	}
	if vi := g.ValueInfo(name); vi != nil && vi.GetType().GetTensorType() != nil {
		if et := vi.GetType().GetTensorType().GetElemType(); et != 0 && et != int32(onnxpb.TensorProto_FLOAT) {
			return false
		}
	}
	if p := g.Producer(name); p != nil {
		switch p.GetOpType() {
		case "Shape", "Size", "NonZero", "ArgMax", "ArgMin", "Equal", "Greater", "Less", "Not", "And", "Or", "Cast":
			return false // integer, boolean or of unknown target type
		}
	}
	return true
}

// absorbedActivation returns the Relu (or Clip with a lower bound ≥ 0) that alone consumes a
// Conv/MatMul/Gemm or residual Add output: ORT removes it when the Q after it starts at zero, so the Q goes
// after it instead of between the two.
func absorbedActivation(g *onnx.Graph, out string) *onnxpb.NodeProto {
	c := g.Consumers(out)
	if len(c) != 1 || g.IsOutput(out) || !isDefault(c[0]) || len(c[0].Output) != 1 {
		return nil
	}
	n := c[0]
	switch n.GetOpType() {
	case "Relu":
		return n
	case "Clip":
		lo := float32(math.Inf(-1))
		if g.Opset("") < 11 {
			lo = onnx.AttrFloat(n, "min", lo)
		} else if len(n.Input) > 1 && n.Input[1] != "" {
			v, _, ok := constFloat(g, n.Input[1])
			if !ok || len(v) != 1 {
				return nil
			}
			lo = v[0]
		}
		if lo >= 0 {
			return n
		}
	}
	return nil
}

// findStaticSites lists the nodes Static can quantize, in graph order.
func findStaticSites(g *onnx.Graph) []staticSite {
	opset := g.Opset("")
	var sites []staticSite
	for _, n := range g.Proto.GetNode() {
		if !isDefault(n) || len(n.GetOutput()) < 1 || n.GetName() == "" {
			continue
		}
		s := staticSite{n: n, out: n.Output[0]}
		switch op := n.GetOpType(); op {
		case "Conv":
			if len(n.Input) < 2 || len(n.Output) != 1 || !floatActivation(g, n.Input[0]) {
				continue
			}
			w, dims, ok := constFloat(g, n.Input[1])
			if !ok || len(dims) < 3 {
				continue
			}
			s.w, s.wDims, s.axis, s.weight = w, dims, 0, n.Input[1]
			if len(n.Input) > 2 && n.Input[2] != "" {
				b, _, ok := constFloat(g, n.Input[2])
				if !ok || len(b) != int(dims[0]) {
					continue
				}
				s.bias = b
			}
			s.acts = []string{n.Input[0]}
		case "MatMul":
			if len(n.Input) != 2 || !floatActivation(g, n.Input[0]) {
				continue
			}
			w, dims, ok := constFloat(g, n.Input[1])
			if !ok || len(dims) != 2 {
				continue
			}
			s.w, s.wDims, s.axis, s.weight = w, dims, 1, n.Input[1]
			s.acts = []string{n.Input[0]}
		case "Gemm":
			if len(n.Input) < 2 || attrInt(n, "transA", 0) != 0 || attrFloat(n, "alpha", 1) != 1 || !floatActivation(g, n.Input[0]) {
				continue
			}
			w, dims, ok := constFloat(g, n.Input[1])
			if !ok || len(dims) != 2 {
				continue
			}
			s.w, s.wDims, s.weight = w, dims, n.Input[1]
			s.axis = 1
			if attrInt(n, "transB", 0) != 0 {
				s.axis = 0
			}
			if len(n.Input) > 2 && n.Input[2] != "" {
				b, _, ok := constFloat(g, n.Input[2])
				if !ok || attrFloat(n, "beta", 1) != 1 || len(b) != int(dims[s.axis]) {
					continue
				}
				s.bias = b
			}
			s.acts = []string{n.Input[0]}
		case "Add", "Mul":
			// Residual adds and gating muls: both operands are activations (QLinearAdd/Mul).
			if len(n.Input) != 2 || !floatActivation(g, n.Input[0]) || !floatActivation(g, n.Input[1]) || n.Input[0] == n.Input[1] {
				continue
			}
			s.acts = []string{n.Input[0], n.Input[1]}
		case "GlobalAveragePool", "AveragePool":
			if !floatActivation(g, n.Input[0]) || len(n.Output) != 1 {
				continue
			}
			s.acts = []string{n.Input[0]}
		case "MaxPool":
			// ORT runs MaxPool on 8-bit data (dropping its Q/DQ) from opset 12 only.
			if opset < 12 || len(n.Output) != 1 || !floatActivation(g, n.Input[0]) {
				continue
			}
			s.acts = []string{n.Input[0]}
		case "Concat":
			ok := len(n.Input) > 1
			for _, in := range n.Input {
				ok = ok && floatActivation(g, in)
			}
			if !ok {
				continue
			}
			s.acts = slices.Clone(n.Input)
		default:
			continue
		}
		// A Relu after a weighted op or a residual Add ends the site: its Q goes after the Relu,
		// whose range starts at zero, and ORT drops the Relu (QLinearConv/QLinearAdd then clamp).
		if s.w != nil || n.GetOpType() == "Add" {
			if a := absorbedActivation(g, s.out); a != nil {
				s.absorbs, s.out = a, a.Output[0]
			}
		}
		sites = append(sites, s)
	}
	return sites
}

// StaticTargets lists the nodes Static would rewrite, in graph order, with the weight error of
// those that have weights.
func StaticTargets(m *onnxpb.ModelProto) []Target {
	g := onnx.ModelGraph(Clone(m))
	onnx.ConstantsToInitializers(g)
	var out []Target
	for _, s := range findStaticSites(g) {
		t := Target{Node: s.n.GetName(), Op: s.n.GetOpType(), Input: s.acts[0], Inputs: slices.Clone(s.acts), Output: s.out}
		if s.w != nil {
			_, _, t.WeightError = quantizeChannels(s.w, s.wDims, s.axis, nil, 127)
		}
		out = append(out, t)
	}
	return out
}

// StaticActivations lists, sorted, the activations whose ranges Static needs: every input and
// quantized output of every site.
func StaticActivations(m *onnxpb.ModelProto) []string {
	g := onnx.ModelGraph(Clone(m))
	onnx.ConstantsToInitializers(g)
	set := map[string]bool{}
	for _, s := range findStaticSites(g) {
		for _, a := range s.acts {
			set[a] = true
		}
		set[s.out] = true
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// quantParams is an activation's affine 8-bit encoding.
type quantParams struct {
	scale float32
	zp    int32
}

// activationParams maps a range onto uint8 [0,255] or int8 [-128,127], with 0 exactly
// representable (so zero padding and ReLU outputs stay exact).
func activationParams(r Range, int8Act bool) quantParams {
	qmin, qmax := 0.0, 255.0
	if int8Act {
		qmin, qmax = -128, 127
	}
	lo, hi := math.Min(0, r.Lo), math.Max(0, r.Hi)
	scale := (hi - lo) / (qmax - qmin)
	if !(scale > 1e-30) || math.IsInf(scale, 0) {
		return quantParams{scale: 1, zp: int32(max(qmin, 0))}
	}
	zp := math.Round(qmin - lo/scale)
	zp = math.Max(qmin, math.Min(qmax, zp))
	return quantParams{scale: float32(scale), zp: int32(zp)}
}

// quantizeChannels quantizes w (dims, channel axis) to int8 symmetric with one scale per
// channel. minScale, when set, gives a lower bound per channel (see Static's bias clamp). It
// returns the values, the scales and the relative L2 error.
func quantizeChannels(w []float32, dims []int64, axis int, minScale []float32, qmax float64) ([]int8, []float32, float64) {
	ch := int(dims[axis])
	inner := 1
	for _, d := range dims[axis+1:] {
		inner *= int(d)
	}
	chOf := func(i int) int { return (i / inner) % ch }
	amax := make([]float64, ch)
	for i, x := range w {
		amax[chOf(i)] = math.Max(amax[chOf(i)], math.Abs(float64(x)))
	}
	scales := make([]float32, ch)
	for c, a := range amax {
		s := float32(a / qmax)
		if minScale != nil && s < minScale[c] {
			s = minScale[c]
		}
		if !(s > 0) || math.IsInf(float64(s), 0) {
			s = 1 // an all-zero channel: any scale reproduces it
		}
		scales[c] = s
	}
	q := make([]int8, len(w))
	var diff, norm float64
	for i, x := range w {
		s := float64(scales[chOf(i)])
		v := math.Max(-qmax, math.Min(qmax, math.Round(float64(x)/s)))
		q[i] = int8(v)
		d := float64(x) - v*s
		diff += d * d
		norm += float64(x) * float64(x)
	}
	rel := 0.0
	if norm > 0 {
		rel = math.Sqrt(diff / norm)
	}
	return q, scales, rel
}

// maxBiasQ bounds |bias/(x_scale·w_scale)| so the int32 bias and the accumulator it joins keep
// headroom.
const maxBiasQ = 1 << 30

// Static returns a copy of m (whose nodes must be named, see NameNodes) in QDQ form: per-channel
// int8 weights and calibrated 8-bit activations around Conv, MatMul, Gemm, residual Add, gating
// Mul, pools and Concat, with the Conv/Gemm bias as int32 (scale x_scale·w_scale) and a Q on
// each quantized output, the layout ONNX Runtime fuses into QLinearConv, QLinearAdd and the
// rest. Nodes in cfg.Skip, and nodes whose activations have no calibrated range, stay float.
// It returns the quantized node names.
func Static(m *onnxpb.ModelProto, cfg StaticConfig) (*onnxpb.ModelProto, []string, error) {
	if cfg.Calibration == nil {
		return nil, nil, fmt.Errorf("quant: static quantization needs calibration ranges")
	}
	out := Clone(m)
	g := onnx.ModelGraph(out)
	onnx.ConstantsToInitializers(g)
	ranges := cfg.Calibration.Ranges
	// Per-channel DequantizeLinear needs opset 13, and ORT fuses Q/DQ into default-domain
	// QLinear ops (opset 10): older graphs are upgraded when every op keeps its meaning.
	if v := g.Opset(""); v < 13 && !cfg.MSDomain {
		if err := passes.UpgradeOpset(g, 13); err != nil {
			if v < 10 {
				return nil, nil, fmt.Errorf("quant: static QDQ needs opset ≥ 10 (ORT's QLinear ops) and this opset-%d graph cannot be upgraded: %w", v, err)
			}
			cfg.MSDomain = true // com.microsoft Q/DQ carry the axis attribute at any opset
		}
	}

	var sites []staticSite
	for _, s := range findStaticSites(g) {
		if cfg.Skip[s.n.GetName()] {
			continue
		}
		ok := true
		for _, a := range append(slices.Clone(s.acts), s.out) {
			_, has := ranges[a]
			ok = ok && has
		}
		if ok {
			sites = append(sites, s)
		}
	}
	if len(sites) == 0 {
		return out, nil, nil
	}

	q := &qdqWriter{g: g, int8Act: cfg.Int8Activations, ms: cfg.MSDomain, wmax: 127}
	if cfg.ReduceRange {
		q.wmax = 63
	}
	siteOf := map[*onnxpb.NodeProto]bool{}
	quantProducer := map[string]bool{} // activations whose producer is quantized
	for _, s := range sites {
		siteOf[s.n] = true
		quantProducer[s.out] = true
	}
	// Each activation is quantized once, in the order the sites first need it.
	var acts []string
	seen := map[string]bool{}
	for _, s := range sites {
		for _, a := range append(slices.Clone(s.acts), s.out) {
			if !seen[a] {
				seen[a] = true
				acts = append(acts, a)
			}
		}
	}
	params := map[string]quantParams{}
	for _, a := range acts {
		params[a] = activationParams(ranges[a], cfg.Int8Activations)
	}
	for _, a := range acts {
		q.quantizeActivation(a, params[a], quantProducer[a], siteOf)
	}
	var done []string
	for _, s := range sites {
		if s.w != nil {
			var means []float64
			if cfg.BiasCorrection {
				means = cfg.Calibration.Means[s.acts[0]]
			}
			if err := q.quantizeWeights(s, params[s.acts[0]], means); err != nil {
				return nil, nil, fmt.Errorf("quant: node %s: %w", s.n.GetName(), err)
			}
		}
		done = append(done, s.n.GetName())
	}
	if q.ms {
		ensureMSOpset(g)
	}
	if err := g.TopoSort(); err != nil {
		return nil, nil, fmt.Errorf("quant: %w", err)
	}
	g.RemoveDeadNodes()
	g.RemoveUnusedInitializers()
	return out, done, nil
}

// qdqWriter inserts QuantizeLinear/DequantizeLinear nodes.
type qdqWriter struct {
	g       *onnx.Graph
	int8Act bool
	ms      bool    // com.microsoft Q/DQ
	wmax    float64 // largest weight magnitude: 127, or 63 with ReduceRange
}

func (q *qdqWriter) domain() string {
	if q.ms {
		return MSDomain
	}
	return ""
}

func (q *qdqWriter) zpTensor(name string, zp int32) *onnxpb.TensorProto {
	if q.int8Act {
		return int8Tensor(name, []int64{}, []int8{int8(zp)})
	}
	return uint8Tensor(name, []int64{}, []uint8{uint8(zp)})
}

// quantizeActivation puts Q→DQ on value a. When a's producer is quantized every reader must
// see the dequantized value (so ORT can fuse the producer with its Q): the producer's output is
// renamed and the DQ takes over the name a, graph outputs included. Otherwise only quantized
// readers switch to the DQ output and float readers keep the exact value.
func (q *qdqWriter) quantizeActivation(a string, p quantParams, producerQuantized bool, sites map[*onnxpb.NodeProto]bool) {
	g := q.g
	sName := g.UniqueName(a + "_scale")
	zName := g.UniqueName(a + "_zero_point")
	g.AddInitializer(onnx.Float32Tensor(sName, []int64{}, []float32{p.scale}))
	g.AddInitializer(q.zpTensor(zName, p.zp))
	qOut := g.UniqueName(a + "_quantized")
	prod := g.Producer(a)
	if producerQuantized && prod != nil {
		pre := g.UniqueName(a + "_prequant")
		for i, o := range prod.Output {
			if o == a {
				prod.Output[i] = pre
			}
		}
		qn := node("QuantizeLinear", q.domain(), g.UniqueName(a+"_QuantizeLinear"), []string{pre, sName, zName}, []string{qOut})
		dq := node("DequantizeLinear", q.domain(), g.UniqueName(a+"_DequantizeLinear"), []string{qOut, sName, zName}, []string{a})
		g.InsertNodeAfter(prod, qn)
		g.InsertNodeAfter(qn, dq)
		return
	}
	dqOut := g.UniqueName(a + "_dequantized")
	readers := g.Consumers(a)
	qn := node("QuantizeLinear", q.domain(), g.UniqueName(a+"_QuantizeLinear"), []string{a, sName, zName}, []string{qOut})
	dq := node("DequantizeLinear", q.domain(), g.UniqueName(a+"_DequantizeLinear"), []string{qOut, sName, zName}, []string{dqOut})
	for _, r := range readers {
		if !sites[r] {
			continue
		}
		for i, in := range r.Input {
			if in == a {
				r.Input[i] = dqOut
			}
		}
	}
	g.InsertNodeAfter(prod, qn) // nil producer (a graph input): appended, TopoSort moves it
	g.InsertNodeAfter(qn, dq)
}

// quantizeWeights replaces s's weight (and bias) by per-channel int8 (int32) constants behind
// DequantizeLinear. x is the parameters of the activation the weight multiplies; means, when
// set, are that activation's per-channel means for bias correction.
func (q *qdqWriter) quantizeWeights(s staticSite, x quantParams, means []float64) error {
	g := q.g
	n := s.n
	ch := int(s.wDims[s.axis])
	bias := s.bias
	hasBias := bias != nil
	if bias == nil {
		bias = make([]float32, ch)
	}
	// A channel whose weights are ~0 (denormals) with a non-zero bias would need an int32 bias
	// far beyond range: raise its weight scale until the bias fits.
	minScale := make([]float32, ch)
	for c, b := range bias {
		minScale[c] = float32(math.Max(math.Abs(float64(b))/(float64(x.scale)*maxBiasQ), 1e-30/float64(x.scale)))
	}
	wq, scales, _ := quantizeChannels(s.w, s.wDims, s.axis, minScale, q.wmax)
	if means != nil {
		if corrected, ok := correctBiasChannels(bias, s, wq, scales, means); ok {
			bias, hasBias = corrected, true
		}
	}
	base := n.GetName()
	wName := g.UniqueName(s.weight + "_" + base + "_quantized")
	sName := g.UniqueName(s.weight + "_" + base + "_scale")
	zName := g.UniqueName(s.weight + "_" + base + "_zero_point")
	dqOut := g.UniqueName(s.weight + "_" + base + "_dequantized")
	g.AddInitializer(int8Tensor(wName, s.wDims, wq))
	g.AddInitializer(onnx.Float32Tensor(sName, []int64{int64(ch)}, scales))
	g.AddInitializer(int8Tensor(zName, []int64{int64(ch)}, make([]int8, ch)))
	dq := node("DequantizeLinear", q.domain(), g.UniqueName(base+"_weight_DequantizeLinear"), []string{wName, sName, zName}, []string{dqOut}, intAttr("axis", int64(s.axis)))
	g.InsertNodeAfter(nil, dq)
	n.Input[1] = dqOut
	if !hasBias {
		return nil
	}
	bScales := make([]float32, ch)
	bq := make([]int32, ch)
	for c := range ch {
		bScales[c] = x.scale * scales[c]
		v := math.Round(float64(bias[c]) / float64(bScales[c]))
		if math.Abs(v) > math.MaxInt32 || math.IsNaN(v) {
			return fmt.Errorf("bias channel %d (%g) does not fit int32 at scale %g", c, bias[c], bScales[c])
		}
		bq[c] = int32(v)
	}
	bName := g.UniqueName(base + "_bias_quantized")
	bsName := g.UniqueName(base + "_bias_scale")
	bzName := g.UniqueName(base + "_bias_zero_point")
	bOut := g.UniqueName(base + "_bias_dequantized")
	dt := int32(onnxpb.TensorProto_INT32)
	g.AddInitializer(&onnxpb.TensorProto{Name: &bName, Dims: []int64{int64(ch)}, DataType: &dt, RawData: int32Raw(bq)})
	g.AddInitializer(onnx.Float32Tensor(bsName, []int64{int64(ch)}, bScales))
	g.AddInitializer(&onnxpb.TensorProto{Name: &bzName, Dims: []int64{int64(ch)}, DataType: &dt, RawData: int32Raw(make([]int32, ch))})
	bdq := node("DequantizeLinear", q.domain(), g.UniqueName(base+"_bias_DequantizeLinear"), []string{bName, bsName, bzName}, []string{bOut}, intAttr("axis", 0))
	g.InsertNodeAfter(nil, bdq)
	for len(n.Input) < 3 {
		n.Input = append(n.Input, "")
	}
	n.Input[2] = bOut
	return nil
}

// correctBiasChannels folds the expected weight quantization error into the bias:
// bias_c += Σ_k mean(x_k)·Σ(W − Ŵ)[c, k, …] for Conv (input channel k, grouped convs read
// their group's channels), and the same over K for Gemm.
func correctBiasChannels(bias []float32, s staticSite, q []int8, scales []float32, means []float64) ([]float32, bool) {
	out := slices.Clone(bias)
	dims := s.wDims
	switch s.n.GetOpType() {
	case "Conv":
		oc, icg := int(dims[0]), int(dims[1])
		groups := int(attrInt(s.n, "group", 1))
		if groups < 1 || oc%groups != 0 || len(means) != icg*groups {
			return nil, false
		}
		k := 1
		for _, d := range dims[2:] {
			k *= int(d)
		}
		ocg := oc / groups
		for c := range oc {
			gi := c / ocg
			var d float64
			for ic := range icg {
				var e float64
				for j := range k {
					i := (c*icg+ic)*k + j
					e += float64(s.w[i]) - float64(q[i])*float64(scales[c])
				}
				d += means[gi*icg+ic] * e
			}
			out[c] += float32(d)
		}
	case "Gemm":
		n := int(dims[s.axis])
		kk := int(dims[1-s.axis])
		if len(means) != kk {
			return nil, false
		}
		for c := range n {
			var d float64
			for r := range kk {
				i := r*n + c // [K, N]
				if s.axis == 0 {
					i = c*kk + r // [N, K]
				}
				d += means[r] * (float64(s.w[i]) - float64(q[i])*float64(scales[c]))
			}
			out[c] += float32(d)
		}
	default:
		return nil, false
	}
	return out, true
}

// RankBySensitivity returns targets ordered by their own contribution to the quantization
// error, most sensitive first (ties keep graph order). relErr maps activations to
// ‖quantized − float‖/‖float‖ measured on the fully quantized model; a target's share is the
// error of its output less the worst error of its inputs, so error inherited from upstream
// is not blamed on it. Targets whose output was not measured fall back to their weight error.
func RankBySensitivity(targets []Target, relErr map[string]float64) []Target {
	out := slices.Clone(targets)
	for i := range out {
		t := &out[i]
		e, ok := relErr[t.Output]
		if !ok {
			t.Sensitivity = t.WeightError
			continue
		}
		worst := 0.0
		for _, in := range t.Inputs {
			worst = math.Max(worst, relErr[in])
		}
		t.Sensitivity = math.Max(0, e-worst)
	}
	slices.SortStableFunc(out, func(a, b Target) int {
		switch {
		case a.Sensitivity > b.Sensitivity:
			return -1
		case a.Sensitivity < b.Sensitivity:
			return 1
		}
		return 0
	})
	return out
}

// NeedsReducedRange reports whether this CPU lacks the VNNI dot-product instructions, so
// ONNX Runtime's uint8×int8 kernels would saturate with full-range int8 weights.
func NeedsReducedRange() bool {
	if runtime.GOARCH != "amd64" {
		return false
	}
	return !cpu.X86.HasAVX512VNNI && !cpu.X86.HasAVXVNNI
}

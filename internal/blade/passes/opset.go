package passes

import (
	"fmt"
	"slices"
	"strings"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

// opsetSafeFrom lists default-domain ops whose meaning is the same in every version from the
// given opset up to 14: later versions only added types, negative axes, or attributes whose
// defaults keep the old behaviour (MaxPool ceil_mode, Reshape allowzero, LSTM layout, …).
// LayerNormalization is ONNX Runtime's own default-domain op below opset 17 (FuseLayerNorm).
// Ops that changed shape (attributes turned into inputs, Softmax's axis semantics) are
// rewritten by opsetConverters instead; anything else blocks the upgrade.
var opsetSafeFrom = map[string]int64{
	"Abs": 6, "Acos": 7, "Asin": 7, "Atan": 7, "Cos": 7, "Sin": 7, "Tan": 7, "Add": 7, "Sub": 7, "Mul": 7, "Div": 7,
	"And": 7, "Or": 7, "Xor": 7, "Not": 1, "ArgMax": 1, "ArgMin": 1, "AveragePool": 7, "Cast": 6, "Ceil": 6, "Floor": 6,
	"Concat": 4, "Constant": 1, "ConstantOfShape": 9, "Conv": 1, "ConvTranspose": 1, "DepthToSpace": 1, "Elu": 6,
	"Equal": 7, "Erf": 9, "Exp": 6, "Expand": 8, "Flatten": 1, "Gather": 1, "Gemm": 7, "GlobalAveragePool": 1,
	"GlobalMaxPool": 1, "Greater": 7, "Less": 7, "HardSigmoid": 6, "HardSwish": 14, "Identity": 1,
	"InstanceNormalization": 6, "LeakyRelu": 6, "Log": 6, "LRN": 1, "LSTM": 7, "GRU": 7, "RNN": 7, "MatMul": 1,
	"Max": 6, "Min": 6, "Mean": 6, "Sum": 6, "MaxPool": 8, "Neg": 6, "Pow": 7, "PRelu": 7, "Reciprocal": 6,
	"ReduceMax": 1, "ReduceMin": 1, "ReduceMean": 1, "ReduceProd": 1, "ReduceL1": 1, "ReduceL2": 1,
	"ReduceLogSum": 1, "ReduceLogSumExp": 1, "ReduceSumSquare": 1, "Relu": 6, "Reshape": 5, "Resize": 11,
	"Selu": 6, "Shape": 1, "Sigmoid": 6, "Sign": 9, "Size": 1, "Slice": 10, "Softplus": 1, "Softsign": 1,
	"SpaceToDepth": 1, "Sqrt": 6, "Tanh": 6, "Tile": 6, "Transpose": 1, "Where": 9, "Einsum": 12, "Range": 11,
	"NonZero": 9, "Clip": 11, "Dropout": 12, "Squeeze": 13, "Unsqueeze": 13, "ReduceSum": 13, "Split": 13,
	"Pad": 11, "Softmax": 13, "LogSoftmax": 13, "Hardmax": 13, "QuantizeLinear": 10, "DequantizeLinear": 10,
	"MatMulInteger": 10, "ConvInteger": 10, "QLinearConv": 10, "QLinearMatMul": 10, "Mod": 10, "IsNaN": 9,
	"IsInf": 10, "Round": 11, "GatherElements": 11, "CumSum": 11, "Celu": 12, "GatherND": 11,
	"BatchNormalization": 9, "Trilu": 14, "LayerNormalization": 1, "Det": 11, "MeanVarianceNormalization": 9, "Shrink": 9,
	"ThresholdedRelu": 10, "EyeLike": 9, "Compress": 11, "OneHot": 11, "TopK": 11, "ScatterND": 11,
	"ScatterElements": 11, "GlobalLpPool": 2, "LpNormalization": 1, "LpPool": 11, "MaxRoiPool": 1,
	"Multinomial": 7, "RandomNormal": 1, "RandomUniform": 1, "RandomNormalLike": 1, "RandomUniformLike": 1,
}

// opsetConverters rewrite an op written for an older opset into its form at the target opset,
// with exactly the same results. A converter returns false when it cannot.
var opsetConverters = map[string]struct {
	before  int64 // applies when the source opset is below this
	convert func(g *onnx.Graph, n *onnxpb.NodeProto, from int64) bool
}{
	"Clip":       {11, attrsToInputs([]string{"min", "max"}, floatScalar)},
	"Slice":      {10, attrsToInputs([]string{"starts", "ends", "axes"}, int64List)},
	"Squeeze":    {13, attrsToInputs([]string{"axes"}, int64List)},
	"Unsqueeze":  {13, attrsToInputs([]string{"axes"}, int64List)},
	"ReduceSum":  {13, attrsToInputs([]string{"axes"}, int64List)},
	"Split":      {13, attrsToInputs([]string{"split"}, int64List)},
	"Pad":        {11, convertPad},
	"Dropout":    {12, convertDropout},
	"Softmax":    {13, convertSoftmax},
	"LogSoftmax": {13, convertSoftmax},
	"Hardmax":    {13, convertSoftmax},
}

type attrConst func(g *onnx.Graph, name string, a *onnxpb.AttributeProto) *onnxpb.TensorProto

func floatScalar(_ *onnx.Graph, name string, a *onnxpb.AttributeProto) *onnxpb.TensorProto {
	if a.GetType() != onnxpb.AttributeProto_FLOAT {
		return nil
	}
	return onnx.Float32Tensor(name, []int64{}, []float32{a.GetF()})
}

func int64List(_ *onnx.Graph, name string, a *onnxpb.AttributeProto) *onnxpb.TensorProto {
	if a.GetType() != onnxpb.AttributeProto_INTS {
		return nil
	}
	return onnx.Int64Tensor(name, []int64{int64(len(a.GetInts()))}, a.GetInts())
}

// attrsToInputs moves the named attributes (in this order) into constant inputs after the
// first input; absent ones become empty optional inputs.
func attrsToInputs(names []string, mk attrConst) func(*onnx.Graph, *onnxpb.NodeProto, int64) bool {
	return func(g *onnx.Graph, n *onnxpb.NodeProto, _ int64) bool {
		if len(n.Input) != 1 {
			return false
		}
		if n.GetOpType() == "Clip" && !floatTyped(g, n.Input[0]) {
			return false // the bounds' type must match the input's
		}
		ins := []string{n.Input[0]}
		var consts []*onnxpb.TensorProto
		for _, an := range names {
			a := onnx.Attr(n, an)
			if a == nil {
				ins = append(ins, "")
				continue
			}
			t := mk(g, g.UniqueName(n.GetName()+"_"+an), a)
			if t == nil {
				return false
			}
			consts = append(consts, t)
			ins = append(ins, t.GetName())
		}
		for len(ins) > 1 && ins[len(ins)-1] == "" {
			ins = ins[:len(ins)-1]
		}
		for _, t := range consts {
			g.AddInitializer(t)
		}
		n.Input = ins
		n.Attribute = slices.DeleteFunc(n.Attribute, func(a *onnxpb.AttributeProto) bool { return slices.Contains(names, a.GetName()) })
		return true
	}
}

// floatTyped reports whether a value is known to be float32 (a Clip on anything else cannot
// get float bounds).
func floatTyped(g *onnx.Graph, name string) bool {
	if vi := g.ValueInfo(name); vi != nil && vi.GetType().GetTensorType() != nil {
		return vi.GetType().GetTensorType().GetElemType() == int32(onnxpb.TensorProto_FLOAT)
	}
	if t := constant(g, name); t != nil {
		return t.GetDataType() == int32(onnxpb.TensorProto_FLOAT)
	}
	p := g.Producer(name)
	if p == nil {
		return false
	}
	switch p.GetOpType() {
	case "Conv", "BatchNormalization", "Add", "Sub", "Mul", "Div", "Relu", "MatMul", "Gemm", "Sigmoid", "HardSigmoid",
		"GlobalAveragePool", "AveragePool", "MaxPool", "Clip", "Tanh", "Sqrt", "Pow", "Softmax", "ConvTranspose", "HardSwish":
		for _, in := range p.Input {
			if in != "" && !isConst(g, in) {
				return floatTyped(g, in)
			}
		}
		return true
	case "Cast":
		return onnx.AttrInt(p, "to", 0) == int64(onnxpb.TensorProto_FLOAT)
	}
	return false
}

func isConst(g *onnx.Graph, name string) bool { return constant(g, name) != nil }

func convertPad(g *onnx.Graph, n *onnxpb.NodeProto, _ int64) bool {
	if len(n.Input) != 1 || !floatTyped(g, n.Input[0]) {
		return false
	}
	pads := onnx.Attr(n, "pads")
	if pads == nil {
		return false
	}
	pn := g.UniqueName(n.GetName() + "_pads")
	g.AddInitializer(onnx.Int64Tensor(pn, []int64{int64(len(pads.GetInts()))}, pads.GetInts()))
	n.Input = append(n.Input, pn)
	if v := onnx.Attr(n, "value"); v != nil {
		vn := g.UniqueName(n.GetName() + "_value")
		g.AddInitializer(onnx.Float32Tensor(vn, []int64{}, []float32{v.GetF()}))
		n.Input = append(n.Input, vn)
	}
	n.Attribute = slices.DeleteFunc(n.Attribute, func(a *onnxpb.AttributeProto) bool {
		return a.GetName() == "pads" || a.GetName() == "value"
	})
	return true
}

// convertDropout drops the ratio attribute: at inference Dropout is the identity whatever the
// ratio (training_mode defaults to false from opset 12).
func convertDropout(_ *onnx.Graph, n *onnxpb.NodeProto, _ int64) bool {
	if onnx.Attr(n, "is_test") != nil {
		return false
	}
	n.Attribute = slices.DeleteFunc(n.Attribute, func(a *onnxpb.AttributeProto) bool { return a.GetName() == "ratio" })
	return true
}

// convertSoftmax maps the old semantics (flatten to 2-D at axis, normalize each row) onto
// opset 13's single-axis form: a last-axis softmax is the same op; otherwise
// Flatten(axis) → Softmax(-1) → Reshape(Shape(x)) reproduces the old result exactly.
func convertSoftmax(g *onnx.Graph, n *onnxpb.NodeProto, from int64) bool {
	if len(n.Input) != 1 || len(n.Output) != 1 {
		return false
	}
	axis := onnx.AttrInt(n, "axis", 1)
	rank := valueRank(g, n.Input[0])
	if axis == -1 || (rank > 0 && (axis == rank-1 || axis == -1)) {
		setIntAttr(n, "axis", -1)
		return true
	}
	if axis < 0 {
		return false // a negative axis other than -1 needs the rank (opset 11 only)
	}
	x, y := n.Input[0], n.Output[0]
	flat := g.UniqueName(y + "_flat")
	shp := g.UniqueName(y + "_shape")
	sm := g.UniqueName(y + "_2d")
	flatten := &onnxpb.NodeProto{Name: ptr(g.UniqueName(n.GetName() + "_flatten")), OpType: ptr("Flatten"), Input: []string{x}, Output: []string{flat}}
	setIntAttr(flatten, "axis", axis)
	shape := &onnxpb.NodeProto{Name: ptr(g.UniqueName(n.GetName() + "_shape")), OpType: ptr("Shape"), Input: []string{x}, Output: []string{shp}}
	reshape := &onnxpb.NodeProto{Name: ptr(g.UniqueName(n.GetName() + "_reshape")), OpType: ptr("Reshape"), Input: []string{sm, shp}, Output: []string{y}}
	n.Input, n.Output = []string{flat}, []string{sm}
	setIntAttr(n, "axis", -1)
	g.InsertNodeAfter(n, reshape)
	g.InsertNodeAfter(n, shape)
	g.InsertNodeAfter(nil, flatten)
	return true
}

func setIntAttr(n *onnxpb.NodeProto, name string, v int64) {
	if a := onnx.Attr(n, name); a != nil {
		a.I, a.Type = ptr(v), onnxpb.AttributeProto_INT.Enum()
		return
	}
	n.Attribute = append(n.Attribute, &onnxpb.AttributeProto{Name: ptr(name), Type: onnxpb.AttributeProto_INT.Enum(), I: ptr(v)})
}

// valueRank returns a value's declared rank, or 0 when unknown.
func valueRank(g *onnx.Graph, name string) int64 {
	vi := g.ValueInfo(name)
	if vi == nil || vi.GetType().GetTensorType() == nil || vi.GetType().GetTensorType().GetShape() == nil {
		return 0
	}
	return int64(len(vi.GetType().GetTensorType().GetShape().GetDim()))
}

// UpgradeOpset raises the model's default-domain opset to target when every node of the main
// graph means the same there, rewriting the few ops whose form changed (Clip, Slice, Squeeze,
// Unsqueeze, ReduceSum, Split, Pad, Dropout, Softmax). It changes nothing and says why when
// some op is not understood or lives in a subgraph. Newer per-channel quantization (opset 13)
// and HardSwish (opset 14) need this on opset-9/11 exports.
func UpgradeOpset(g *onnx.Graph, target int64) error {
	from := g.Opset("")
	if from >= target {
		return nil
	}
	if from < 7 {
		return fmt.Errorf("opset %d is older than 7: not upgraded", from)
	}
	var blockers []string
	for _, n := range g.Proto.GetNode() {
		if !isOp(n, n.GetOpType()) {
			continue // other domains do not follow the default opset
		}
		if len(onnx.Subgraphs(n)) > 0 {
			blockers = append(blockers, n.GetOpType()+" (subgraph)")
			continue
		}
		op := n.GetOpType()
		if c, ok := opsetConverters[op]; ok && from < c.before {
			continue
		}
		if v, ok := opsetSafeFrom[op]; !ok || from < v {
			blockers = append(blockers, op)
		}
	}
	if op := firstBNWithStats(g); op != "" {
		blockers = append(blockers, op)
	}
	if len(blockers) > 0 {
		slices.Sort(blockers)
		return fmt.Errorf("opset %d → %d: ops not known to keep their meaning: %s", from, target, strings.Join(slices.Compact(blockers), ", "))
	}
	// Convert on a scratch copy so a refusal half way leaves g untouched.
	m := g.Model()
	if m == nil {
		return fmt.Errorf("opset upgrade needs the graph's model")
	}
	scratch := proto.Clone(m).(*onnxpb.ModelProto)
	work := onnx.ModelGraph(scratch)
	for _, n := range append([]*onnxpb.NodeProto{}, work.Proto.GetNode()...) {
		if !isOp(n, n.GetOpType()) {
			continue
		}
		if c, ok := opsetConverters[n.GetOpType()]; ok && from < c.before {
			if !c.convert(work, n, from) {
				return fmt.Errorf("opset %d → %d: cannot convert %s node %q", from, target, n.GetOpType(), n.GetName())
			}
		}
		if isOp(n, "BatchNormalization") {
			n.Output = n.Output[:1]
			n.Attribute = slices.DeleteFunc(n.Attribute, func(a *onnxpb.AttributeProto) bool { return a.GetName() == "spatial" })
		}
	}
	work.SetOpset("", target)
	if err := work.TopoSort(); err != nil {
		return err
	}
	proto.Reset(g.Proto)
	proto.Merge(g.Proto, scratch.Graph)
	m.OpsetImport = scratch.OpsetImport
	g.Reindex()
	return nil
}

// firstBNWithStats names a BatchNormalization whose extra (training) outputs are read or whose
// spatial attribute is 0: neither exists in opset 14.
func firstBNWithStats(g *onnx.Graph) string {
	for _, n := range g.Proto.GetNode() {
		if !isOp(n, "BatchNormalization") {
			continue
		}
		if len(n.Output) > 1 && anyUsed(g, n.Output[1:]) {
			return "BatchNormalization (training outputs)"
		}
		if a := onnx.Attr(n, "spatial"); a != nil && a.GetI() == 0 {
			return "BatchNormalization (spatial=0)"
		}
	}
	return ""
}

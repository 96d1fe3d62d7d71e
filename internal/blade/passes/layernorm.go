package passes

import (
	"math"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
)

// FuseLayerNorm replaces the split-up layer normalization exporters write,
//
//	d = x − ReduceMean(x); y = d / Sqrt(ReduceMean(Pow(d, 2)) + eps) · gamma + beta
//
// over the last axis, with one LayerNormalization(x, gamma, beta, axis=-1, epsilon=eps).
// The op is in the default domain: ONNX defines it from opset 17 and ONNX Runtime registers
// the same op for every older opset (its own fusion emits it there too).
type FuseLayerNorm struct{}

func (FuseLayerNorm) Name() string { return "FuseLayerNorm" }

func (FuseLayerNorm) Apply(g *onnx.Graph) (int, error) {
	changed := 0
	for _, rm := range append([]*onnxpb.NodeProto{}, g.Proto.GetNode()...) {
		mt := matchLayerNorm(g, rm)
		if mt == nil {
			continue
		}
		ln := &onnxpb.NodeProto{
			Name: ptr(g.UniqueName(rm.GetName() + "_layernorm")), OpType: ptr("LayerNormalization"),
			Input: []string{mt.x, mt.gamma, mt.beta}, Output: []string{mt.out},
		}
		setIntAttr(ln, "axis", -1)
		ln.Attribute = append(ln.Attribute, &onnxpb.AttributeProto{Name: ptr("epsilon"), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: ptr(mt.eps)})
		g.InsertNodeAfter(mt.nodes[len(mt.nodes)-1], ln)
		g.RemoveNodes(mt.nodes...)
		changed++
	}
	if changed > 0 {
		if err := g.TopoSort(); err != nil {
			return changed, err
		}
	}
	return changed, nil
}

type layerNormMatch struct {
	x, gamma, beta, out string
	eps                 float32
	nodes               []*onnxpb.NodeProto
}

// lastAxisMean reports whether n is ReduceMean over the last axis only, keeping dims.
func lastAxisMean(g *onnx.Graph, n *onnxpb.NodeProto) bool {
	if !isOp(n, "ReduceMean") || onnx.AttrInt(n, "keepdims", 1) != 1 {
		return false
	}
	axes := onnx.AttrInts(n, "axes")
	if len(n.Input) > 1 && n.Input[1] != "" { // opset 18: axes as an input
		t := constTensor(g, n.Input[1])
		if t == nil {
			return false
		}
		axes = ints(t)
	}
	return len(axes) == 1 && (axes[0] == -1 || (axes[0] > 0 && valueRank(g, n.Input[0]) == axes[0]+1))
}

func matchLayerNorm(g *onnx.Graph, mean *onnxpb.NodeProto) *layerNormMatch {
	if !lastAxisMean(g, mean) {
		return nil
	}
	x := mean.Input[0]
	sub := soleConsumer(g, mean.Output[0])
	if !isOp(sub, "Sub") || sub.Input[0] != x || sub.Input[1] != mean.Output[0] {
		return nil
	}
	d := sub.Output[0]
	cs := g.Consumers(d)
	if len(cs) != 2 || g.IsOutput(d) {
		return nil
	}
	var pow, div *onnxpb.NodeProto
	for _, c := range cs {
		switch {
		case isOp(c, "Pow") && c.Input[0] == d:
			pow = c
		case isOp(c, "Div") && c.Input[0] == d:
			div = c
		}
	}
	if pow == nil || div == nil {
		return nil
	}
	if v, ok := scalarF(g, pow.Input[1]); !ok || v != 2 {
		return nil
	}
	mean2 := soleConsumer(g, pow.Output[0])
	if !lastAxisMean(g, mean2) {
		return nil
	}
	add := soleConsumer(g, mean2.Output[0])
	if !isOp(add, "Add") {
		return nil
	}
	eps, ok := scalarF(g, other(add, mean2.Output[0]))
	if !ok || eps < 0 || eps > 1e-2 {
		return nil
	}
	sqrt := soleConsumer(g, add.Output[0])
	if !isOp(sqrt, "Sqrt") || soleConsumer(g, sqrt.Output[0]) != div || div.Input[1] != sqrt.Output[0] {
		return nil
	}
	mul := soleConsumer(g, div.Output[0])
	if !isOp(mul, "Mul") {
		return nil
	}
	gamma := other(mul, div.Output[0])
	addB := soleConsumer(g, mul.Output[0])
	if !isOp(addB, "Add") {
		return nil
	}
	beta := other(addB, mul.Output[0])
	gt, bt := constant(g, gamma), constant(g, beta)
	// gamma and beta must be vectors over the normalized axis (a scalar would need expanding).
	if gt == nil || bt == nil || len(gt.GetDims()) != 1 || len(bt.GetDims()) != 1 || gt.GetDims()[0] != bt.GetDims()[0] || gt.GetDims()[0] < 2 ||
		gt.GetDataType() != int32(onnxpb.TensorProto_FLOAT) || bt.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
		return nil
	}
	if math.IsNaN(eps) {
		return nil
	}
	return &layerNormMatch{x: x, gamma: gamma, beta: beta, out: addB.Output[0], eps: float32(eps),
		nodes: []*onnxpb.NodeProto{mean, sub, pow, mean2, add, sqrt, div, mul, addB}}
}

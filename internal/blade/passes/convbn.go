package passes

import (
	"math"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
)

// FuseConvBN folds an inference BatchNormalization into the Conv before it
// when the Conv feeds only that BN and all weights are constants
// (initializers or Constant nodes, as in opset-9 exports):
// W' = W·s, B' = (B − mean)·s + beta with s = gamma / sqrt(var + eps),
// computed in float64. New initializers are added; the old weights stay for
// any other reader and RemoveDead drops them otherwise.
type FuseConvBN struct{}

func (FuseConvBN) Name() string { return "FuseConvBatchNorm" }

func (FuseConvBN) Apply(g *onnx.Graph) (int, error) {
	changed := 0
	for _, bn := range append([]*onnxpb.NodeProto{}, g.Proto.GetNode()...) {
		if !isOp(bn, "BatchNormalization") || len(bn.Input) != 5 || len(bn.Output) < 1 {
			continue
		}
		if len(bn.Output) > 1 && anyUsed(g, bn.Output[1:]) {
			continue // training-mode statistics are read
		}
		if onnx.AttrInt(bn, "training_mode", 0) != 0 {
			continue
		}
		conv := g.Producer(bn.Input[0])
		if !isOp(conv, "Conv") || len(conv.Output) != 1 || soleConsumer(g, conv.Output[0]) != bn {
			continue
		}
		w := constant(g, conv.Input[1])
		if w == nil || w.GetDataType() != int32(onnxpb.TensorProto_FLOAT) || len(w.GetDims()) < 3 {
			continue
		}
		wv, err := onnx.TensorToFloat32(w)
		if err != nil {
			continue
		}
		oc := int(w.GetDims()[0])
		params := make([][]float32, 4)
		ok := true
		for i := range params {
			t := constant(g, bn.Input[1+i])
			if t == nil {
				ok = false
				break
			}
			if params[i], err = onnx.TensorToFloat32(t); err != nil || len(params[i]) != oc {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		bias := make([]float32, oc)
		if len(conv.Input) > 2 && conv.Input[2] != "" {
			t := constant(g, conv.Input[2])
			if t == nil {
				continue
			}
			if bias, err = onnx.TensorToFloat32(t); err != nil || len(bias) != oc {
				continue
			}
		}
		eps := float64(onnx.AttrFloat(bn, "epsilon", 1e-5))
		per := len(wv) / oc
		nw := make([]float32, len(wv))
		nb := make([]float32, oc)
		for c := 0; c < oc; c++ {
			s := float64(params[0][c]) / math.Sqrt(float64(params[3][c])+eps)
			for k := c * per; k < (c+1)*per; k++ {
				nw[k] = float32(float64(wv[k]) * s)
			}
			nb[c] = float32((float64(bias[c])-float64(params[2][c]))*s + float64(params[1][c]))
		}
		base := conv.GetName()
		if base == "" {
			base = conv.Output[0]
		}
		wName := g.UniqueName(base + "_bn_W")
		bName := g.UniqueName(base + "_bn_B")
		g.AddInitializer(onnx.Float32Tensor(wName, w.GetDims(), nw))
		g.AddInitializer(onnx.Float32Tensor(bName, []int64{int64(oc)}, nb))
		conv.Input = []string{conv.Input[0], wName, bName}
		conv.Output[0] = bn.Output[0]
		g.RemoveNodes(bn)
		changed++
	}
	return changed, nil
}

func anyUsed(g *onnx.Graph, names []string) bool {
	for _, n := range names {
		if n != "" && (len(g.Consumers(n)) > 0 || g.IsOutput(n)) {
			return true
		}
	}
	return false
}

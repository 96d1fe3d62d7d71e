package passes

import (
	"encoding/binary"
	"slices"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"github.com/openeas/openeas/internal/tensor"
)

// FoldConstants evaluates the shape arithmetic ONNX exporters leave behind
// when every input is constant: Shape (of a constant or a fully static
// value), Unsqueeze, Concat, Gather (axis 0), Reshape and integer Cast.
// These only move or widen exact values, so the result is bit-identical.
type FoldConstants struct{}

func (FoldConstants) Name() string { return "FoldConstants" }

func (FoldConstants) Apply(g *onnx.Graph) (int, error) {
	changed := 0
	for _, n := range append([]*onnxpb.NodeProto{}, g.Proto.GetNode()...) {
		if len(n.Output) != 1 || g.IsOutput(n.Output[0]) || n.GetDomain() != "" {
			continue
		}
		out := evalNode(g, n)
		if out == nil {
			continue
		}
		p, err := onnx.FromTensor(n.Output[0], out)
		if err != nil {
			continue
		}
		g.AddInitializer(p)
		g.RemoveNodes(n)
		changed++
	}
	return changed, nil
}

func constTensor(g *onnx.Graph, name string) *tensor.Tensor {
	p := constant(g, name)
	if p == nil {
		return nil
	}
	t, err := onnx.ToTensor(p)
	if err != nil {
		return nil
	}
	return t
}

func ints(t *tensor.Tensor) []int64 {
	switch t.DType {
	case tensor.Int64:
		out := make([]int64, len(t.Data)/8)
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(t.Data[8*i:]))
		}
		return out
	case tensor.Int32:
		out := make([]int64, len(t.Data)/4)
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(t.Data[4*i:])))
		}
		return out
	}
	return nil
}

func int64Tensor(shape []int64, v []int64) *tensor.Tensor {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return &tensor.Tensor{DType: tensor.Int64, Shape: shape, Data: b}
}

func staticShape(g *onnx.Graph, name string) []int64 {
	if t := constant(g, name); t != nil {
		return append([]int64{}, t.GetDims()...)
	}
	vi := g.ValueInfo(name)
	tt := vi.GetType().GetTensorType()
	if tt == nil || tt.GetShape() == nil {
		return nil
	}
	var out []int64
	for _, d := range tt.GetShape().GetDim() {
		v, ok := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue)
		if !ok || v.DimValue < 0 {
			return nil
		}
		out = append(out, v.DimValue)
	}
	if out == nil {
		out = []int64{}
	}
	return out
}

// evalNode computes n's output, or nil when n is not foldable.
func evalNode(g *onnx.Graph, n *onnxpb.NodeProto) *tensor.Tensor {
	inputs := func(from int) []*tensor.Tensor {
		var ts []*tensor.Tensor
		for _, in := range n.Input[from:] {
			if in == "" {
				return nil
			}
			t := constTensor(g, in)
			if t == nil || t.DType == tensor.String {
				return nil
			}
			ts = append(ts, t)
		}
		return ts
	}
	if len(n.Input) == 0 {
		return nil
	}
	switch {
	case isOp(n, "Shape"):
		if onnx.Attr(n, "start") != nil || onnx.Attr(n, "end") != nil {
			return nil
		}
		s := staticShape(g, n.Input[0])
		if s == nil {
			return nil
		}
		return int64Tensor([]int64{int64(len(s))}, s)
	case isOp(n, "Unsqueeze"):
		ts := inputs(0)
		if ts == nil {
			return nil
		}
		axes := onnx.AttrInts(n, "axes")
		if len(ts) == 2 {
			axes = ints(ts[1])
		}
		if len(axes) == 0 {
			return nil
		}
		rank := int64(len(ts[0].Shape) + len(axes))
		shape := make([]int64, 0, rank)
		norm := map[int64]bool{}
		for _, a := range axes {
			if a < 0 {
				a += rank
			}
			if a < 0 || a >= rank || norm[a] {
				return nil
			}
			norm[a] = true
		}
		k := 0
		for i := int64(0); i < rank; i++ {
			if norm[i] {
				shape = append(shape, 1)
			} else {
				shape = append(shape, ts[0].Shape[k])
				k++
			}
		}
		return &tensor.Tensor{DType: ts[0].DType, Shape: shape, Data: ts[0].Data}
	case isOp(n, "Concat"):
		ts := inputs(0)
		if ts == nil || len(ts) == 0 {
			return nil
		}
		// Only 1-D concatenation, which is what shape arithmetic uses.
		var data []byte
		var total int64
		for _, t := range ts {
			if t.DType != ts[0].DType || len(t.Shape) != 1 {
				return nil
			}
			data = append(data, t.Data...)
			total += t.Shape[0]
		}
		return &tensor.Tensor{DType: ts[0].DType, Shape: []int64{total}, Data: data}
	case isOp(n, "Gather"):
		ts := inputs(0)
		if len(ts) != 2 || onnx.AttrInt(n, "axis", 0) != 0 || len(ts[0].Shape) == 0 {
			return nil
		}
		idx := ints(ts[1])
		if idx == nil {
			return nil
		}
		dim := ts[0].Shape[0]
		row := int64(len(ts[0].Data)) / max(dim, 1)
		var data []byte
		for _, i := range idx {
			if i < 0 {
				i += dim
			}
			if i < 0 || i >= dim {
				return nil
			}
			data = append(data, ts[0].Data[i*row:(i+1)*row]...)
		}
		shape := append(slices.Clone(ts[1].Shape), ts[0].Shape[1:]...)
		return &tensor.Tensor{DType: ts[0].DType, Shape: shape, Data: data}
	case isOp(n, "Reshape"):
		ts := inputs(0)
		if len(ts) != 2 || onnx.AttrInt(n, "allowzero", 0) != 0 {
			return nil
		}
		want := ints(ts[1])
		total := tensor.NumElements(ts[0].Shape)
		known, neg := int64(1), -1
		shape := make([]int64, len(want))
		for i, d := range want {
			switch {
			case d == 0 && i < len(ts[0].Shape):
				d = ts[0].Shape[i]
			case d == -1 && neg < 0:
				neg = i
				continue
			case d < 0:
				return nil
			}
			shape[i] = d
			known *= d
		}
		if neg >= 0 {
			if known == 0 || total%known != 0 {
				return nil
			}
			shape[neg] = total / known
		} else if known != total {
			return nil
		}
		return &tensor.Tensor{DType: ts[0].DType, Shape: shape, Data: ts[0].Data}
	case isOp(n, "Cast"):
		ts := inputs(0)
		to := tensor.DType(onnx.AttrInt(n, "to", 0))
		if len(ts) != 1 || (to != tensor.Int64 && to != tensor.Int32) {
			return nil
		}
		v := ints(ts[0])
		if v == nil {
			return nil
		}
		if to == tensor.Int64 {
			return int64Tensor(ts[0].Shape, v)
		}
		b := make([]byte, 4*len(v))
		for i, x := range v {
			if int64(int32(x)) != x {
				return nil // would wrap: leave it to the runtime
			}
			binary.LittleEndian.PutUint32(b[4*i:], uint32(int32(x)))
		}
		return &tensor.Tensor{DType: tensor.Int32, Shape: ts[0].Shape, Data: b}
	}
	return nil
}

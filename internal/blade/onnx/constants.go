package onnx

import (
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
)

// ConstantValue returns the tensor a Constant node produces (value,
// value_float(s), value_int(s), value_string(s)), named after its output, or
// nil when n is not such a node (sparse_value and value references are not
// understood).
func ConstantValue(n *onnxpb.NodeProto) *onnxpb.TensorProto {
	if n.GetOpType() != "Constant" || normDomain(n.GetDomain()) != "" || len(n.GetOutput()) != 1 || len(n.GetAttribute()) != 1 {
		return nil
	}
	name := n.GetOutput()[0]
	a := n.GetAttribute()[0]
	switch a.GetName() {
	case "value":
		if a.GetT() == nil {
			return nil
		}
		t := cloneTensor(a.GetT())
		t.Name = &name
		return t
	case "value_float":
		return Float32Tensor(name, nil, []float32{a.GetF()})
	case "value_floats":
		return Float32Tensor(name, []int64{int64(len(a.GetFloats()))}, a.GetFloats())
	case "value_int":
		return Int64Tensor(name, nil, []int64{a.GetI()})
	case "value_ints":
		return Int64Tensor(name, []int64{int64(len(a.GetInts()))}, a.GetInts())
	case "value_string":
		return &onnxpb.TensorProto{Name: &name, DataType: ptr(int32(onnxpb.TensorProto_STRING)), Dims: []int64{}, StringData: [][]byte{a.GetS()}}
	case "value_strings":
		return &onnxpb.TensorProto{Name: &name, DataType: ptr(int32(onnxpb.TensorProto_STRING)), Dims: []int64{int64(len(a.GetStrings()))}, StringData: a.GetStrings()}
	}
	return nil
}

// ConstantsToInitializers turns the graph's Constant nodes into initializers
// so passes see every weight the same way. Constants inside subgraphs are
// left alone, and so are those whose output is a graph output. In models of
// IR version < 4, where initializers must also be graph inputs, the new
// initializers are listed as inputs too. It returns the number converted.
func ConstantsToInitializers(g *Graph) int {
	g.ensure()
	var dead []*onnxpb.NodeProto
	needInput := g.model != nil && g.model.GetIrVersion() < 4
	for _, n := range g.Proto.GetNode() {
		t := ConstantValue(n)
		if t == nil {
			continue
		}
		name := t.GetName()
		if g.inits[name] != nil || g.outputs[name] || g.inputs[name] {
			continue
		}
		g.Proto.Initializer = append(g.Proto.Initializer, t)
		g.inits[name] = t
		if needInput {
			g.Proto.Input = append(g.Proto.Input, TensorValueInfo(t))
		}
		dead = append(dead, n)
	}
	g.RemoveNodes(dead...)
	return len(dead)
}

// TensorValueInfo describes t's type and static shape.
func TensorValueInfo(t *onnxpb.TensorProto) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range t.GetDims() {
		shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
	}
	return &onnxpb.ValueInfoProto{
		Name: ptr(t.GetName()),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: ptr(t.GetDataType()),
			Shape:    shape,
		}}},
	}
}

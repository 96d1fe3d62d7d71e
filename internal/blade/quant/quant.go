// Package quant rewrites ONNX graphs to INT8: dynamic (online) quantization of MatMul/Gemm
// weights through com.microsoft.DynamicQuantizeMatMul, and static QDQ quantization of Conv
// with calibrated activation ranges. Rewrites work on a clone of the model; the caller
// verifies and times the result.
package quant

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

// MSDomain is ONNX Runtime's contrib-op domain.
const MSDomain = "com.microsoft"

// Target is one node that can be quantized.
type Target struct {
	Node string // node name (made unique by Prepare)
	Op   string
	// Input is the activation input the node quantizes (for statistics and bias correction).
	Input string
	// Output is the node's output.
	Output string
	// WeightError is ‖W − deq(q(W))‖/‖W‖ for the chosen weight scheme: the ranking used to
	// send the most sensitive nodes back to float first.
	WeightError float64
	// Inputs are all activation inputs the node quantizes (static targets).
	Inputs []string
	// Sensitivity is the node's own share of the output error (see RankBySensitivity).
	Sensitivity float64
}

// Clone deep-copies a model so rewrites never touch the caller's.
func Clone(m *onnxpb.ModelProto) *onnxpb.ModelProto { return proto.Clone(m).(*onnxpb.ModelProto) }

// NameNodes gives every unnamed node of the main graph a unique name, so targets and
// fallback lists can refer to nodes stably across clones. It returns m.
func NameNodes(m *onnxpb.ModelProto) *onnxpb.ModelProto {
	g := onnx.ModelGraph(m)
	for i, n := range m.GetGraph().GetNode() {
		if n.GetName() == "" {
			name := g.UniqueName(fmt.Sprintf("%s_%d", n.GetOpType(), i))
			n.Name = &name
		}
	}
	return m
}

// constFloat returns the values and dims of a float constant: an initializer that is not an
// overridable input, or the value of a Constant node.
func constFloat(g *onnx.Graph, name string) ([]float32, []int64, bool) {
	if t := g.Constant(name); t != nil {
		v, err := onnx.TensorToFloat32(t)
		if err != nil {
			return nil, nil, false
		}
		return v, t.GetDims(), true
	}
	p := g.Producer(name)
	if p == nil || p.GetOpType() != "Constant" || p.GetDomain() != "" {
		return nil, nil, false
	}
	for _, a := range p.GetAttribute() {
		if a.GetName() == "value" && a.GetT() != nil {
			v, err := onnx.TensorToFloat32(a.GetT())
			if err != nil {
				return nil, nil, false
			}
			return v, a.GetT().GetDims(), true
		}
	}
	return nil, nil, false
}

func attrInt(n *onnxpb.NodeProto, name string, def int64) int64 {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a.GetI()
		}
	}
	return def
}

func attrFloat(n *onnxpb.NodeProto, name string, def float32) float32 {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a.GetF()
		}
	}
	return def
}

// quantizeSymmetric quantizes w (rows × cols, row-major) to int8 symmetric with one scale per
// column (perChannel, axis 1) or one for all. It returns the int8 values, the scales and the
// relative L2 quantization error.
func quantizeSymmetric(w []float32, rows, cols int, perChannel bool) ([]int8, []float32, float64) {
	return quantizeSymmetricMax(w, rows, cols, perChannel, 127)
}

// quantizeSymmetricMax is quantizeSymmetric with weights in [-qmax, qmax] (63: 7 bits).
func quantizeSymmetricMax(w []float32, rows, cols int, perChannel bool, qmax float64) ([]int8, []float32, float64) {
	nScales := 1
	if perChannel {
		nScales = cols
	}
	amax := make([]float64, nScales)
	for r := range rows {
		for c := range cols {
			k := 0
			if perChannel {
				k = c
			}
			amax[k] = math.Max(amax[k], math.Abs(float64(w[r*cols+c])))
		}
	}
	scales := make([]float32, nScales)
	for k, a := range amax {
		scales[k] = float32(a / qmax)
		if scales[k] == 0 || math.IsInf(float64(scales[k]), 0) || math.IsNaN(float64(scales[k])) {
			scales[k] = 1 // an all-zero column: any scale reproduces it
		}
	}
	q := make([]int8, len(w))
	var diff, norm float64
	for r := range rows {
		for c := range cols {
			k := 0
			if perChannel {
				k = c
			}
			i := r*cols + c
			v := math.Round(float64(w[i]) / float64(scales[k]))
			v = math.Max(-qmax, math.Min(qmax, v))
			q[i] = int8(v)
			d := float64(w[i]) - v*float64(scales[k])
			diff += d * d
			norm += float64(w[i]) * float64(w[i])
		}
	}
	rel := 0.0
	if norm > 0 {
		rel = math.Sqrt(diff / norm)
	}
	return q, scales, rel
}

func int8Tensor(name string, dims []int64, v []int8) *onnxpb.TensorProto {
	b := make([]byte, len(v))
	for i, x := range v {
		b[i] = byte(x)
	}
	dt := int32(onnxpb.TensorProto_INT8)
	return &onnxpb.TensorProto{Name: &name, Dims: dims, DataType: &dt, RawData: b}
}

func uint8Tensor(name string, dims []int64, v []uint8) *onnxpb.TensorProto {
	dt := int32(onnxpb.TensorProto_UINT8)
	return &onnxpb.TensorProto{Name: &name, Dims: dims, DataType: &dt, RawData: append([]byte{}, v...)}
}

func int32Raw(v []int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

func node(op, domain, name string, inputs, outputs []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	n := &onnxpb.NodeProto{OpType: &op, Name: &name, Input: inputs, Output: outputs, Attribute: attrs}
	if domain != "" {
		n.Domain = &domain
	}
	return n
}

func intAttr(name string, v int64) *onnxpb.AttributeProto {
	t := onnxpb.AttributeProto_INT
	return &onnxpb.AttributeProto{Name: &name, Type: &t, I: &v}
}

// ensureMSOpset imports com.microsoft version 1 when the model lacks it.
func ensureMSOpset(g *onnx.Graph) {
	if g.Opset(MSDomain) == 0 {
		g.SetOpset(MSDomain, 1)
	}
}

// ExposeTensors makes the named values graph outputs of m (typed float, shape left to the
// runtime), so a session can fetch intermediate activations for statistics. It returns the
// names actually exposed: graph inputs and existing outputs are fetched as they are.
func ExposeTensors(m *onnxpb.ModelProto, names []string) []string {
	g := m.GetGraph()
	have := map[string]bool{}
	for _, o := range g.GetOutput() {
		have[o.GetName()] = true
	}
	var out []string
	listed := map[string]bool{}
	for _, n := range names {
		if listed[n] {
			continue // each output may be requested once
		}
		listed[n] = true
		out = append(out, n)
		if have[n] {
			continue
		}
		isInput := false
		for _, in := range g.GetInput() {
			isInput = isInput || in.GetName() == n
		}
		if isInput {
			// A graph input cannot be an output as well; its statistics come from the feed.
			out = out[:len(out)-1]
			continue
		}
		have[n] = true
		name := n
		elem := int32(onnxpb.TensorProto_FLOAT)
		g.Output = append(g.Output, &onnxpb.ValueInfoProto{
			Name: &name,
			Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: &elem}}},
		})
	}
	return out
}

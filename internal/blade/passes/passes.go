// Package passes holds Blade's lossless graph rewrites. Each pass edits an
// onnx.Graph in place, keeps the model valid and its outputs numerically
// equal, and is deterministic: the same graph always gives the same result.
package passes

import (
	"fmt"
	"math"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
)

// Pass is one rewrite. Apply returns how many rewrites it made (0: graph unchanged).
type Pass interface {
	Name() string
	Apply(*onnx.Graph) (changed int, err error)
}

// Lossless returns the o1 passes in the order they should run.
func Lossless() []Pass {
	return []Pass{RemoveIdentity{}, FoldConstants{}, FuseConvBN{}, FuseGelu{}, FuseLayerNorm{}, FuseHardSwish{}, RemoveDead{}}
}

// Run applies passes in order and returns the changes each made, by name.
func Run(g *onnx.Graph, ps []Pass) (map[string]int, error) {
	if err := g.TopoSort(); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, p := range ps {
		n, err := p.Apply(g)
		if err != nil {
			return out, fmt.Errorf("pass %s: %w", p.Name(), err)
		}
		out[p.Name()] += n
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }

// constant returns a value's fixed tensor: a non-overridable initializer or
// the output of a Constant node.
func constant(g *onnx.Graph, name string) *onnxpb.TensorProto {
	if t := g.Constant(name); t != nil {
		return t
	}
	if p := g.Producer(name); p != nil {
		return onnx.ConstantValue(p)
	}
	return nil
}

// scalarF returns a float constant holding one value.
func scalarF(g *onnx.Graph, name string) (float64, bool) {
	t := constant(g, name)
	if t == nil || onnx.NumElements(t) != 1 {
		return 0, false
	}
	switch onnxpb.TensorProto_DataType(t.GetDataType()) {
	case onnxpb.TensorProto_FLOAT:
		v, err := onnx.TensorToFloat32(t)
		if err != nil {
			return 0, false
		}
		return float64(v[0]), true
	case onnxpb.TensorProto_DOUBLE:
		tt, err := onnx.ToTensor(t)
		if err != nil {
			return 0, false
		}
		return math.Float64frombits(le64(tt.Data)), true
	}
	return 0, false
}

func le64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func isOp(n *onnxpb.NodeProto, op string) bool {
	return n != nil && n.GetOpType() == op && (n.GetDomain() == "" || n.GetDomain() == "ai.onnx")
}

// soleConsumer returns the only node reading name when name is not a graph output.
func soleConsumer(g *onnx.Graph, name string) *onnxpb.NodeProto {
	c := g.Consumers(name)
	if len(c) != 1 || g.IsOutput(name) {
		return nil
	}
	return c[0]
}

// other returns the input of a binary node that is not name ("" if both are).
func other(n *onnxpb.NodeProto, name string) string {
	if len(n.Input) != 2 {
		return ""
	}
	if n.Input[0] == name && n.Input[1] != name {
		return n.Input[1]
	}
	if n.Input[1] == name && n.Input[0] != name {
		return n.Input[0]
	}
	return ""
}

// RemoveDead deletes nodes and initializers that do not reach an output.
type RemoveDead struct{}

func (RemoveDead) Name() string { return "RemoveDeadNodes" }
func (RemoveDead) Apply(g *onnx.Graph) (int, error) {
	return g.RemoveDeadNodes() + g.RemoveUnusedInitializers(), nil
}

// RemoveIdentity bypasses Identity nodes and inference-mode Dropout nodes
// whose mask output is unused.
type RemoveIdentity struct{}

func (RemoveIdentity) Name() string { return "RemoveIdentity" }
func (RemoveIdentity) Apply(g *onnx.Graph) (int, error) {
	changed := 0
	for _, n := range append([]*onnxpb.NodeProto{}, g.Proto.GetNode()...) {
		if !removable(g, n) {
			continue
		}
		in, out := n.Input[0], n.Output[0]
		if !g.IsOutput(out) {
			g.ReplaceAllUses(out, in)
			g.RemoveNodes(n)
			changed++
			continue
		}
		// The output name must survive: rename the producer's output instead.
		p := g.Producer(in)
		if p == nil || g.IsOutput(in) || len(onnx.Subgraphs(p)) > 0 {
			continue
		}
		for i, o := range p.Output {
			if o == in {
				p.Output[i] = out
			}
		}
		g.RemoveNodes(n)
		g.ReplaceAllUses(in, out)
		changed++
	}
	return changed, nil
}

func removable(g *onnx.Graph, n *onnxpb.NodeProto) bool {
	if len(n.Input) == 0 || n.Input[0] == "" || len(n.Output) == 0 {
		return false
	}
	switch {
	case isOp(n, "Identity"):
		// Identity of a sequence or optional is still a plain copy.
		return len(n.Output) == 1
	case isOp(n, "Dropout"):
		if len(n.Output) > 1 && n.Output[1] != "" && (len(g.Consumers(n.Output[1])) > 0 || g.IsOutput(n.Output[1])) {
			return false
		}
		if len(n.Input) > 2 && n.Input[2] != "" { // training_mode must be a constant false
			t := constant(g, n.Input[2])
			if t == nil {
				return false
			}
			tt, err := onnx.ToTensor(t)
			if err != nil || len(tt.Data) != 1 || tt.Data[0] != 0 {
				return false
			}
		}
		return true
	}
	return false
}

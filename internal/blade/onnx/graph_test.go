package onnx

import (
	"slices"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
)

func node(op, name string, in, out []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: ptr(op), Name: ptr(name), Input: in, Output: out, Attribute: attrs}
}

func vi(name string) *onnxpb.ValueInfoProto { return &onnxpb.ValueInfoProto{Name: ptr(name)} }

func nodeNames(g *onnxpb.GraphProto) []string {
	var s []string
	for _, n := range g.GetNode() {
		s = append(s, n.GetName())
	}
	return s
}

// ifGraph: an If whose then-branch reads "b" from the outer scope.
func ifGraph() *onnxpb.GraphProto {
	then := &onnxpb.GraphProto{Name: ptr("then"), Node: []*onnxpb.NodeProto{node("Neg", "neg", []string{"b"}, []string{"t"})}, Output: []*onnxpb.ValueInfoProto{vi("t")}}
	els := &onnxpb.GraphProto{Name: ptr("else"), Node: []*onnxpb.NodeProto{node("Identity", "id", []string{"a"}, []string{"e"})}, Output: []*onnxpb.ValueInfoProto{vi("e")}}
	return &onnxpb.GraphProto{
		Name:   ptr("main"),
		Input:  []*onnxpb.ValueInfoProto{vi("x"), vi("cond")},
		Output: []*onnxpb.ValueInfoProto{vi("y")},
		Node: []*onnxpb.NodeProto{
			node("If", "if", []string{"cond"}, []string{"y"},
				&onnxpb.AttributeProto{Name: ptr("then_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: then},
				&onnxpb.AttributeProto{Name: ptr("else_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: els}),
			node("Relu", "relu_b", []string{"a"}, []string{"b"}),
			node("Abs", "dead", []string{"x"}, []string{"unused"}),
			node("Sigmoid", "sig_a", []string{"x"}, []string{"a"}),
		},
	}
}

func TestTopoSortRespectsSubgraphReads(t *testing.T) {
	gp := ifGraph()
	g := NewGraph(gp)
	if got := OuterReferences(gp.Node[0]); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("OuterReferences(if) = %v, want [a b]", got)
	}
	if c := g.Consumers("b"); len(c) != 1 || c[0].GetName() != "if" {
		t.Errorf("Consumers(b) = %v, want the If node", nodeNames(&onnxpb.GraphProto{Node: c}))
	}
	if err := g.TopoSort(); err != nil {
		t.Fatal(err)
	}
	want := []string{"dead", "sig_a", "relu_b", "if"}
	if got := nodeNames(gp); !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	// Sorting a sorted graph changes nothing.
	if err := g.TopoSort(); err != nil || !slices.Equal(nodeNames(gp), want) {
		t.Errorf("second sort: %v %v", nodeNames(gp), err)
	}
	if n := g.RemoveDeadNodes(); n != 1 {
		t.Errorf("RemoveDeadNodes = %d, want 1", n)
	}
	if got := nodeNames(gp); !slices.Equal(got, []string{"sig_a", "relu_b", "if"}) {
		t.Errorf("after dead removal: %v", got)
	}
	if g.Producer("b").GetName() != "relu_b" {
		t.Error("index stale after RemoveDeadNodes")
	}
}

func TestTopoSortCycle(t *testing.T) {
	gp := &onnxpb.GraphProto{Name: ptr("c"), Node: []*onnxpb.NodeProto{
		node("Relu", "n1", []string{"b"}, []string{"a"}),
		node("Relu", "n2", []string{"a"}, []string{"b"}),
	}}
	err := NewGraph(gp).TopoSort()
	if err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: %v", err)
	}
}

func TestReplaceAllUsesRespectsShadowing(t *testing.T) {
	gp := ifGraph()
	// The else branch now defines its own "a": it must not be renamed there.
	els := gp.Node[0].Attribute[1].G
	els.Input = []*onnxpb.ValueInfoProto{vi("a")}
	g := NewGraph(gp)
	n := g.ReplaceAllUses("a", "a2")
	if n != 1 || gp.Node[1].Input[0] != "a2" || els.Node[0].Input[0] != "a" {
		t.Errorf("ReplaceAllUses: %d rewrites, relu reads %q, else reads %q", n, gp.Node[1].Input[0], els.Node[0].Input[0])
	}
}

func TestConstantsToInitializers(t *testing.T) {
	m := &onnxpb.ModelProto{IrVersion: ptr(int64(3)), Graph: &onnxpb.GraphProto{
		Input:  []*onnxpb.ValueInfoProto{vi("x")},
		Output: []*onnxpb.ValueInfoProto{vi("y"), vi("k")},
		Node: []*onnxpb.NodeProto{
			node("Constant", "c1", nil, []string{"w"}, &onnxpb.AttributeProto{Name: ptr("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: Float32Tensor("", []int64{2}, []float32{1, 2})}),
			node("Constant", "c2", nil, []string{"s"}, &onnxpb.AttributeProto{Name: ptr("value_ints"), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: []int64{4, 5}}),
			node("Constant", "c3", nil, []string{"k"}, &onnxpb.AttributeProto{Name: ptr("value_float"), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: ptr(float32(3))}),
			node("Add", "add", []string{"x", "w"}, []string{"y"}),
		},
	}}
	g := ModelGraph(m)
	if n := ConstantsToInitializers(g); n != 2 {
		t.Fatalf("converted %d, want 2 (the graph-output constant stays)", n)
	}
	w := g.Constant("w")
	if v, err := TensorToFloat32(w); err != nil || !slices.Equal(v, []float32{1, 2}) || w.GetName() != "w" {
		t.Errorf("w = %v %v", v, err)
	}
	if v, err := TensorToInt64(g.Initializer("s")); err != nil || !slices.Equal(v, []int64{4, 5}) {
		t.Errorf("s = %v %v", v, err)
	}
	if !g.IsInput("w") {
		t.Error("IR 3 model: new initializer should be listed as an input")
	}
	if got := nodeNames(m.Graph); !slices.Equal(got, []string{"c3", "add"}) {
		t.Errorf("nodes left %v", got)
	}
}

func TestOpsets(t *testing.T) {
	m := &onnxpb.ModelProto{Graph: &onnxpb.GraphProto{}, OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: ptr(""), Version: ptr(int64(9))}}}
	g := ModelGraph(m)
	if g.Opset("ai.onnx") != 9 || g.Opset("com.microsoft") != 0 {
		t.Errorf("opsets %d %d", g.Opset(""), g.Opset("com.microsoft"))
	}
	g.SetOpset("", 14)
	g.SetOpset("com.microsoft", 1)
	if len(m.OpsetImport) != 2 || m.OpsetImport[0].GetVersion() != 14 || m.OpsetImport[1].GetDomain() != "com.microsoft" {
		t.Errorf("model opsets %v", m.OpsetImport)
	}
}

package tf

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/tf/tfpb"
)

// savedModelOf wraps a GraphDef in a SavedModel: a "train" meta graph first (so that the
// "serve" one must be picked, not the first), then the "serve" one with the signatures.
func savedModelOf(t *testing.T, g *tfpb.GraphDef, sigs map[string]*tfpb.SignatureDef) []byte {
	t.Helper()
	sm := &tfpb.SavedModel{SavedModelSchemaVersion: 1, MetaGraphs: []*tfpb.MetaGraphDef{
		{MetaInfoDef: &tfpb.MetaGraphDef_MetaInfoDef{Tags: []string{"train"}}, GraphDef: &tfpb.GraphDef{Node: []*tfpb.NodeDef{{Name: "v", Op: "VariableV2"}}}},
		{MetaInfoDef: &tfpb.MetaGraphDef_MetaInfoDef{Tags: []string{"serve"}}, GraphDef: g, SignatureDef: sigs},
	}}
	b, err := proto.Marshal(sm)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSavedModelConvertsLikeFrozenGraph(t *testing.T) {
	dir := fixture(t, "emotion")
	pb, err := os.ReadFile(filepath.Join(dir, "frozen.pb"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseGraphDef(pb)
	if err != nil {
		t.Fatal(err)
	}
	b := savedModelOf(t, g, map[string]*tfpb.SignatureDef{DefaultSignature: {
		Inputs:     map[string]*tfpb.TensorInfo{"image": {Name: "input_1:0", Dtype: tfpb.DataType_DT_FLOAT}},
		Outputs:    map[string]*tfpb.TensorInfo{"emotions": {Name: "Identity:0", Dtype: tfpb.DataType_DT_FLOAT}},
		MethodName: "tensorflow/serving/predict",
	}})
	sm, err := ParseSavedModel("emotion/saved_model.pb", b)
	if err != nil {
		t.Fatal(err)
	}
	sd, ok := sm.Signatures[DefaultSignature]
	if !ok || sd.Inputs["image"] != "input_1:0" || sd.Outputs["emotions"] != "Identity:0" || sd.MethodName != "tensorflow/serving/predict" {
		t.Fatalf("signatures %+v", sm.Signatures)
	}
	if !slices.Equal(sm.Tags, []string{"serve"}) {
		t.Errorf("picked the meta graph tagged %v, want [serve]", sm.Tags)
	}
	if got := sm.SignatureOutputs(); !slices.Equal(got, []string{"Identity:0"}) {
		t.Errorf("SignatureOutputs() = %v", got)
	}
	fromSaved, err := ConvertGraph(context.Background(), sm.Graph, Options{Outputs: sm.SignatureOutputs()})
	if err != nil {
		t.Fatal(err)
	}
	fromFrozen, err := Convert(context.Background(), pb, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The same ONNX model (initializers included) computes the same outputs.
	if !proto.Equal(fromSaved.Model, fromFrozen.Model) {
		t.Errorf("SavedModel conversion differs from the frozen.pb one: %d vs %d ONNX nodes", fromSaved.ONNXNodes, fromFrozen.ONNXNodes)
	}
}

func TestSavedModelRefused(t *testing.T) {
	placeholder := node("x", "Placeholder", nil, map[string]*tfpb.AttrValue{"dtype": typeAttr(tfpb.DataType_DT_FLOAT)})
	withVar := &tfpb.GraphDef{Node: []*tfpb.NodeDef{
		placeholder,
		node("w", "VariableV2", nil, map[string]*tfpb.AttrValue{"dtype": typeAttr(tfpb.DataType_DT_FLOAT)}),
		node("y", "Mul", []string{"x", "w"}, map[string]*tfpb.AttrValue{"T": typeAttr(tfpb.DataType_DT_FLOAT)}),
	}}
	plain := &tfpb.GraphDef{Node: []*tfpb.NodeDef{placeholder}}
	marshal := func(sm *tfpb.SavedModel) []byte {
		b, err := proto.Marshal(sm)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tagged := func(g *tfpb.GraphDef, tags ...string) *tfpb.MetaGraphDef {
		return &tfpb.MetaGraphDef{MetaInfoDef: &tfpb.MetaGraphDef_MetaInfoDef{Tags: tags}, GraphDef: g}
	}
	for _, c := range []struct {
		name string
		b    []byte
		want []string
	}{
		{"variables", savedModelOf(t, withVar, nil), []string{"SavedModel m/saved_model.pb holds variables: freeze it first", "w (VariableV2)"}},
		{"resource variables", marshal(&tfpb.SavedModel{MetaGraphs: []*tfpb.MetaGraphDef{tagged(&tfpb.GraphDef{Node: []*tfpb.NodeDef{
			placeholder, node("h", "VarHandleOp", nil, nil), node("r", "ReadVariableOp", []string{"h"}, nil)}})}}),
			[]string{"holds variables", "h (VarHandleOp)", "r (ReadVariableOp)"}},
		{"no serve tag", marshal(&tfpb.SavedModel{MetaGraphs: []*tfpb.MetaGraphDef{tagged(plain, "train"), tagged(plain, "eval")}}),
			[]string{`none is tagged "serve"`, `["train"]`, `["eval"]`}},
		{"no meta graphs", marshal(&tfpb.SavedModel{SavedModelSchemaVersion: 1}), []string{"has no meta graphs"}},
		{"signature names a missing node", savedModelOf(t, plain, map[string]*tfpb.SignatureDef{"s": {
			Outputs: map[string]*tfpb.TensorInfo{"out": {Name: "nope:0"}}}}),
			[]string{`signature "s" outputs["out"]`, `no node "nope"`}},
		{"not a protobuf", []byte("\xff\xff\xff"), []string{"decode SavedModel m/saved_model.pb"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseSavedModel("m/saved_model.pb", c.b)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// The only meta graph is used whatever its tags.
	sm, err := ParseSavedModel("m", marshal(&tfpb.SavedModel{MetaGraphs: []*tfpb.MetaGraphDef{tagged(plain, "custom")}}))
	if err != nil || len(sm.Graph.Node) != 1 || len(sm.Signatures) != 0 {
		t.Errorf("single untagged-for-serving meta graph: %v, %v", sm, err)
	}
}

package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/tf"
	"github.com/openeas/openeas/internal/tf/tfpb"
)

// writeSavedModel writes dir/saved_model.pb (the graph under the "serve" tag, with sigs) and
// an empty variables/, as TensorFlow lays a SavedModel out.
func writeSavedModel(t *testing.T, dir string, g *tfpb.GraphDef, sigs map[string]*tfpb.SignatureDef) {
	t.Helper()
	b, err := proto.Marshal(&tfpb.SavedModel{SavedModelSchemaVersion: 1, MetaGraphs: []*tfpb.MetaGraphDef{{
		MetaInfoDef: &tfpb.MetaGraphDef_MetaInfoDef{Tags: []string{"serve"}}, GraphDef: g, SignatureDef: sigs}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "variables"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, tf.SavedModelFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDeploySavedModel(t *testing.T) {
	pb, err := os.ReadFile("../../testdata/tf/emotion/frozen.pb")
	if err != nil {
		t.Fatal(err)
	}
	g, err := tf.ParseGraphDef(pb)
	if err != nil {
		t.Fatal(err)
	}
	model := t.TempDir()
	writeSavedModel(t, model, g, map[string]*tfpb.SignatureDef{tf.DefaultSignature: {
		Inputs: map[string]*tfpb.TensorInfo{"image": {Name: "input_1:0", Dtype: tfpb.DataType_DT_FLOAT,
			TensorShape: &tfpb.TensorShapeProto{Dim: []*tfpb.TensorShapeProto_Dim{{Size: -1}, {Size: 64}, {Size: 64}, {Size: 1}}}}},
		// No dtype declared: an input then takes its placeholder's.
		Outputs: map[string]*tfpb.TensorInfo{"emotions": {Name: "Identity:0", Dtype: tfpb.DataType_DT_FLOAT,
			TensorShape: &tfpb.TensorShapeProto{UnknownRank: true}}},
	}, "raw": {
		Inputs:  map[string]*tfpb.TensorInfo{"x": {Name: "input_1"}},
		Outputs: map[string]*tfpb.TensorInfo{"y": {Name: "Identity"}},
	}})
	// The same graph with a variable left in it.
	withVar := proto.Clone(g).(*tfpb.GraphDef)
	withVar.Node = append(withVar.Node, &tfpb.NodeDef{Name: "dense/kernel", Op: "VariableV2"})
	unfrozen := t.TempDir()
	writeSavedModel(t, unfrozen, withVar, nil)

	h := newHarness(t, "")
	ctx := context.Background()
	doc := fmt.Sprintf(`{"name":"sm","model_path":%q,"processor":"tensorflow_cpu_1.15"}`, model)
	if _, err := h.m.Create(ctx, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	s := h.wait("sm")
	if s.Status != api.StatusRunning {
		t.Fatalf("SavedModel service: %+v\n%s", s, h.events("sm"))
	}
	if ev := h.events("sm"); !strings.Contains(ev, "Converted TensorFlow GraphDef saved_model.pb to ONNX") {
		t.Errorf("events lack the conversion: %s", ev)
	}
	dir := h.sched.lastApply().BundleDir
	mb, err := os.ReadFile(filepath.Join(dir, bundle.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m bundle.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	if m.ModelEntry != "model.onnx" || m.TensorFlow == nil || m.TensorFlow.SourceEntry != tf.SavedModelFile ||
		len(m.TensorFlow.Inputs) != 1 || m.TensorFlow.Inputs[0].Name != "input_1:0" {
		t.Fatalf("manifest %s", mb)
	}
	// bundle.json is the one record of the signatures, with the dtypes and shapes declared.
	want := map[string]bundle.TFSignature{
		tf.DefaultSignature: {
			Inputs:  map[string]bundle.TFTensor{"image": {Name: "input_1:0", DType: "DT_FLOAT", Shape: []int64{-1, 64, 64, 1}}},
			Outputs: map[string]bundle.TFTensor{"emotions": {Name: "Identity:0", DType: "DT_FLOAT"}},
		},
		"raw": {
			Inputs:  map[string]bundle.TFTensor{"x": m.TensorFlow.Inputs[0]},
			Outputs: map[string]bundle.TFTensor{"y": {Name: "Identity:0"}},
		},
	}
	if !reflect.DeepEqual(m.TensorFlow.Signatures, want) {
		t.Errorf("bundle.json signatures:\n got %+v\nwant %+v", m.TensorFlow.Signatures, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "model", "tf_signatures.json")); err == nil {
		t.Error("the bundle still holds model/tf_signatures.json")
	}
	if _, err := os.Stat(filepath.Join(dir, "model", tf.SavedModelFile)); err == nil {
		t.Error("saved_model.pb still in the bundle next to the converted model")
	}

	doc = fmt.Sprintf(`{"name":"unfrozen","model_path":%q,"processor":"tensorflow_cpu_1.15"}`, unfrozen)
	if _, err := h.m.Create(ctx, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	s = h.wait("unfrozen")
	if s.Status != api.StatusFailed || !strings.Contains(s.Message, "SavedModel saved_model.pb holds variables: freeze it first") ||
		!strings.Contains(s.Message, "dense/kernel (VariableV2)") {
		t.Fatalf("unfrozen SavedModel: %+v", s)
	}
}

package e2e

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/easpb/tfpb"
	tfgraph "github.com/openeas/openeas/internal/tf/tfpb"
)

// TestTensorFlowSavedModel deploys a frozen SavedModel directory (the emotion graph of
// testdata/tf/emotion under a "serve" meta graph whose signatures use aliases unlike the
// tensor names) as tensorflow_cpu_1.15 through the real binaries, checks that bundle.json
// records the signatures, and predicts by alias: TF protobuf with signature_name and
// output_filter, and v2 JSON (serving_default's aliases), both matching TensorFlow.js. An
// unknown signature_name is a 400 naming the model's signatures.
func TestTensorFlowSavedModel(t *testing.T) {
	e := requireEnv(t)
	src := filepath.Join(e.repo, "testdata/tf/emotion")
	pb, err := os.ReadFile(filepath.Join(src, "frozen.pb"))
	if err != nil {
		t.Fatal(err)
	}
	var g tfgraph.GraphDef
	if err := proto.Unmarshal(pb, &g); err != nil {
		t.Fatal(err)
	}
	shape := func(dims ...int64) *tfgraph.TensorShapeProto {
		s := &tfgraph.TensorShapeProto{}
		for _, d := range dims {
			s.Dim = append(s.Dim, &tfgraph.TensorShapeProto_Dim{Size: d})
		}
		return s
	}
	sigs := map[string]*tfgraph.SignatureDef{
		"serving_default": {
			MethodName: "tensorflow/serving/predict",
			Inputs:     map[string]*tfgraph.TensorInfo{"face": {Name: "input_1:0", Dtype: tfgraph.DataType_DT_FLOAT, TensorShape: shape(-1, 64, 64, 1)}},
			Outputs:    map[string]*tfgraph.TensorInfo{"emotions": {Name: "Identity:0", Dtype: tfgraph.DataType_DT_FLOAT, TensorShape: shape(-1, 7)}},
		},
		"classify": {
			Inputs:  map[string]*tfgraph.TensorInfo{"image": {Name: "input_1:0", Dtype: tfgraph.DataType_DT_FLOAT}},
			Outputs: map[string]*tfgraph.TensorInfo{"scores": {Name: "Identity:0", Dtype: tfgraph.DataType_DT_FLOAT}},
		},
	}
	sm, err := proto.Marshal(&tfgraph.SavedModel{SavedModelSchemaVersion: 1, MetaGraphs: []*tfgraph.MetaGraphDef{{
		MetaInfoDef: &tfgraph.MetaGraphDef_MetaInfoDef{Tags: []string{"serve"}}, GraphDef: &g, SignatureDef: sigs}}})
	if err != nil {
		t.Fatal(err)
	}
	modelDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(modelDir, "variables"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(modelDir, "saved_model.pb"), sm, 0o644); err != nil {
		t.Fatal(err)
	}

	ref := loadTFRef(t, src)
	xs := ref.Inputs[0].float32s(t)
	want := ref.Outputs[0].float32s(t)

	d := startEasd(t, e, "")
	svcFile := writeJSON(t, filepath.Join(t.TempDir(), "service.json"), map[string]any{
		"name":       "tf_saved",
		"model_path": modelDir,
		"processor":  "tensorflow_cpu_1.15",
		"metadata":   map[string]any{"instance": 1, "cpu": 1, "memory": 2000},
	})
	if out, err := d.eascmd("create", svcFile); err != nil {
		t.Fatalf("eascmd create: %v\n%s", err, out)
	}
	svc := d.waitStatus("tf_saved", api.StatusRunning, 3*time.Minute)
	if ev := d.eventText("tf_saved"); !strings.Contains(ev, "Converted TensorFlow GraphDef saved_model.pb to ONNX") {
		t.Errorf("no conversion event:\n%s", ev)
	}

	// bundle.json is the record of the signatures; no side file.
	manifests, _ := filepath.Glob(filepath.Join(d.dataDir, "bundles", "*", bundle.ManifestFile))
	if len(manifests) != 1 {
		t.Fatalf("bundles in %s: %v, want one", d.dataDir, manifests)
	}
	mb, err := os.ReadFile(manifests[0])
	if err != nil {
		t.Fatal(err)
	}
	var m bundle.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	wantSigs := map[string]bundle.TFSignature{
		"serving_default": {MethodName: "tensorflow/serving/predict",
			Inputs:  map[string]bundle.TFTensor{"face": {Name: "input_1:0", DType: "DT_FLOAT", Shape: []int64{-1, 64, 64, 1}}},
			Outputs: map[string]bundle.TFTensor{"emotions": {Name: "Identity:0", DType: "DT_FLOAT", Shape: []int64{-1, 7}}}},
		"classify": {
			Inputs:  map[string]bundle.TFTensor{"image": {Name: "input_1:0", DType: "DT_FLOAT"}},
			Outputs: map[string]bundle.TFTensor{"scores": {Name: "Identity:0", DType: "DT_FLOAT"}}},
	}
	if m.TensorFlow == nil || !reflect.DeepEqual(m.TensorFlow.Signatures, wantSigs) {
		t.Errorf("bundle.json does not record the signatures:\n%s", mb)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(manifests[0]), "model", "tf_signatures.json")); err == nil {
		t.Error("the bundle holds model/tf_signatures.json besides bundle.json")
	}

	post := func(path string, body []byte) (int, []byte) {
		t.Helper()
		hr, _ := http.NewRequest("POST", d.url(path), bytes.NewReader(body))
		hr.Header.Set("Authorization", svc.AccessToken)
		code, out, err := do(hr)
		if err != nil {
			t.Fatal(err)
		}
		return code, out
	}
	tfRequest := func(signature, input string, filter ...string) []byte {
		b, err := proto.Marshal(&tfpb.PredictRequest{SignatureName: signature, OutputFilter: filter,
			Inputs: map[string]*tfpb.ArrayProto{input: {Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: &tfpb.ArrayShape{Dim: ref.Inputs[0].Shape}, FloatVal: xs}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// TF protobuf under each signature, by its aliases.
	for _, c := range []struct{ signature, input, output string }{
		{"serving_default", "face", "emotions"},
		{"", "face", "emotions"},
		{"classify", "image", "scores"},
	} {
		code, out := post("/api/predict/tf_saved", tfRequest(c.signature, c.input, c.output))
		if code != 200 {
			t.Fatalf("TF protobuf, signature %q: %d %s", c.signature, code, out)
		}
		var resp tfpb.PredictResponse
		if err := proto.Unmarshal(out, &resp); err != nil {
			t.Fatal(err)
		}
		if len(resp.Outputs) != 1 || resp.Outputs[c.output] == nil {
			t.Fatalf("TF protobuf, signature %q: outputs %v, want only %q", c.signature, resp.Outputs, c.output)
		}
		checkNormRelErr(t, "TF protobuf, signature "+c.signature, resp.Outputs[c.output].GetFloatVal(), want)
	}

	code, out := post("/api/predict/tf_saved", tfRequest("predict", "face"))
	if code != 400 || !strings.Contains(string(out), `unknown signature_name "predict"; the model's signatures are ["classify" "serving_default"]`) {
		t.Errorf("unknown signature_name: %d %s", code, out)
	}

	// v2 JSON by serving_default's aliases.
	v2, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{
		"name": "face", "datatype": "FP32", "shape": ref.Inputs[0].Shape, "data": xs}}})
	code, out = post("/api/predict/tf_saved/v2/models/tf_saved/infer", v2)
	if code != 200 {
		t.Fatalf("v2 by alias: %d %s", code, out)
	}
	var vr struct {
		Outputs []struct {
			Name string    `json:"name"`
			Data []float32 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(out, &vr); err != nil {
		t.Fatalf("v2 response %s: %v", out, err)
	}
	if len(vr.Outputs) != 1 || vr.Outputs[0].Name != "emotions" {
		t.Fatalf("v2 response outputs %s, want only emotions", out)
	}
	checkNormRelErr(t, "v2", vr.Outputs[0].Data, want)

	// v2 model metadata names serving_default's aliases, with the model's types and shapes.
	hr, _ := http.NewRequest("GET", d.url("/api/predict/tf_saved/v2/models/tf_saved"), nil)
	hr.Header.Set("Authorization", svc.AccessToken)
	code, out, err = do(hr)
	if err != nil {
		t.Fatal(err)
	}
	wantMeta := `"inputs":[{"name":"face","datatype":"FP32","shape":[-1,64,64,1]}],"outputs":[{"name":"emotions","datatype":"FP32","shape":[-1,7]}]`
	if code != 200 || !strings.Contains(string(out), wantMeta) {
		t.Errorf("v2 metadata: %d %s, want %s", code, out, wantMeta)
	}
}

// checkNormRelErr checks got against want to a norm-wise relative error ≤ 1e-4 (max |Δ| / max |want|).
func checkNormRelErr(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return
	}
	maxAbs, maxDiff := 0.0, 0.0
	for i := range got {
		maxAbs = math.Max(maxAbs, math.Abs(float64(want[i])))
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
	}
	if maxDiff > 1e-4*maxAbs {
		t.Errorf("%s: max difference %.3g from tfjs (max |ref| %.3g)", what, maxDiff, maxAbs)
	}
}

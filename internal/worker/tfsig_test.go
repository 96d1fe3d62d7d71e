package worker

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/easpb/tfpb"
)

// A converted SavedModel's bundle: signature_name picks a signature, aliases name tensors. The
// signatures come from bundle.json, or from model/tf_signatures.json in a bundle sealed before
// bundle.json recorded them.
func TestTFSignaturesServed(t *testing.T) {
	sigs := map[string]bundle.TFSignature{
		"serving_default": {Inputs: map[string]bundle.TFTensor{"image": {Name: "x:0", DType: "DT_FLOAT", Shape: []int64{-1, 2}}},
			Outputs: map[string]bundle.TFTensor{"probs": {Name: "y:0", DType: "DT_FLOAT"}}},
		"raw": {Inputs: map[string]bundle.TFTensor{"x": {Name: "x:0"}}, Outputs: map[string]bundle.TFTensor{"y": {Name: "y:0"}}},
	}
	legacy := `{"serving_default":{"inputs":{"image":"x:0"},"outputs":{"probs":"y:0"}},"raw":{"inputs":{"x":"x:0"},"outputs":{"y":"y:0"}}}`
	for _, layout := range []string{"bundle.json", "legacy tf_signatures.json"} {
		t.Run(layout, func(t *testing.T) {
			tfm := &bundle.TFModel{Processor: "tensorflow_cpu_1.15", SourceEntry: "saved_model.pb"}
			files := map[string]string{}
			if layout == "bundle.json" {
				tfm.Signatures = sigs
			} else {
				files[filepath.Join("model", legacyTFSignaturesFile)] = legacy
			}
			mb, _ := json.Marshal(bundle.Manifest{Schema: 1, Processor: "onnxruntime_cpu", ModelEntry: "sub/model.onnx", TensorFlow: tfm})
			files[bundle.ManifestFile] = string(mb)
			testTFSignaturesServed(t, files)
		})
	}
}

func testTFSignaturesServed(t *testing.T, files map[string]string) {
	dir := makeBundle(t, "onnxruntime_cpu")
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := newFakeProc()
	var path string
	s := New(Options{BundleDir: dir, Name: "svc", Openers: openerFor(p, &path)})
	if _, err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	body := func(signature, input string) string {
		b, err := proto.Marshal(&tfpb.PredictRequest{SignatureName: signature, Inputs: map[string]*tfpb.ArrayProto{
			input: {Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: &tfpb.ArrayShape{Dim: []int64{1, 2}}, FloatVal: []float32{1, 2}}}})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, c := range []struct {
		name, signature, input string
		code                   int
		key, errText           string
	}{
		{"default signature by alias", "", "image", 200, "probs", ""},
		{"named signature", "raw", "x", 200, "y", ""},
		{"tensor name under the default signature", "", "x:0", 200, "probs", ""},
		{"unknown signature", "predict", "image", 400, "", `unknown signature_name "predict"; the model's signatures are ["raw" "serving_default"]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, _ := do(t, "POST", ts.URL+"/predict", "", body(c.signature, c.input))
			if code != c.code {
				t.Fatalf("status %d, want %d: %q", code, c.code, out)
			}
			if c.code != 200 {
				if !strings.Contains(out, c.errText) {
					t.Errorf("body %q does not name %s", out, c.errText)
				}
				return
			}
			var resp tfpb.PredictResponse
			if err := proto.Unmarshal([]byte(out), &resp); err != nil {
				t.Fatal(err)
			}
			if got := resp.Outputs[c.key].GetFloatVal(); len(resp.Outputs) != 1 || !slices.Equal(got, []float32{2, 4}) {
				t.Errorf("response outputs %v, want only %q = [2 4]", resp.Outputs, c.key)
			}
		})
	}
	// JSON and v2 requests take serving_default's aliases; outputs come back keyed by alias.
	for _, c := range []struct {
		name, path, body, want string
	}{
		{"json by alias", "/predict", `{"inputs":{"image":[[1,2]]}}`, `{"outputs":{"probs":[[2,4]]}}`},
		{"json by model name", "/predict", `{"inputs":{"x":[[1,2]]},"outputs":["probs"]}`, `{"outputs":{"probs":[[2,4]]}}`},
		{"v2 by alias", "/predict/v2/models/svc/infer", `{"inputs":[{"name":"image","datatype":"FP32","shape":[1,2],"data":[1,2]}]}`,
			`{"model_name":"svc","outputs":[{"name":"probs","datatype":"FP32","shape":[1,2],"data":[2,4]}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, _ := do(t, "POST", ts.URL+c.path, "application/json", c.body)
			if code != 200 || out != c.want {
				t.Errorf("%d %s, want 200 %s", code, out, c.want)
			}
		})
	}
}

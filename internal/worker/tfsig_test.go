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
	"github.com/openeas/openeas/internal/codec"
	"github.com/openeas/openeas/internal/easpb/tfpb"
)

// A converted SavedModel's bundle: signature_name picks a signature, aliases name tensors.
func TestTFSignaturesServed(t *testing.T) {
	dir := makeBundle(t, "onnxruntime_cpu")
	mb, _ := json.Marshal(bundle.Manifest{Schema: 1, Processor: "onnxruntime_cpu", ModelEntry: "sub/model.onnx",
		TensorFlow: &bundle.TFModel{Processor: "tensorflow_cpu_1.15", SourceEntry: "saved_model.pb"}})
	sigs := `{"serving_default":{"inputs":{"image":"x:0"},"outputs":{"probs":"y:0"}},"raw":{"inputs":{"x":"x:0"},"outputs":{"y":"y:0"}}}`
	for name, b := range map[string]string{bundle.ManifestFile: string(mb), filepath.Join("model", codec.TFSignaturesFile): sigs} {
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
}

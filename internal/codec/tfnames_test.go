package codec

import (
	"net/http"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/easpb/tfpb"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// TF graphs converted to ONNX keep TF names without ":0"; TF clients may send either form.
func TestTFNamesWithOutputSuffix(t *testing.T) {
	arr := &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(2), FloatVal: []float32{1, 2}}
	for _, tc := range []struct {
		name, input, filter, want string
	}{
		{"plain", "a", "p", ""},
		{"tf suffix", "a:0", "p:0", ""},
		{"other output index", "a:1", "", `input "a:1": unknown input; the model's inputs are [a b]`},
		{"unknown output", "a", "z:0", `unknown output "z:0"; the model's outputs are [p q]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := map[string]*tfpb.ArrayProto{tc.input: arr, "b": {Dtype: tfpb.ArrayDataType_DT_INT64, ArrayShape: shapeOf(1), Int64Val: []int64{3}}}
			pr := &tfpb.PredictRequest{Inputs: in}
			if tc.filter != "" {
				pr.OutputFilter = []string{tc.filter}
			}
			body, err := proto.Marshal(pr)
			if err != nil {
				t.Fatal(err)
			}
			sig := processor.Signature{
				Inputs:  []tensor.Info{{Name: "a", DType: tensor.Float, Shape: []int64{-1}}, {Name: "b", DType: tensor.Int64, Shape: []int64{-1}}},
				Outputs: twoSig.Outputs,
			}
			req, err := Decode(FamilyTensorFlow, nil, body, sig)
			if tc.want != "" {
				wantInputError(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.Inputs["a"] == nil || len(req.Inputs) != 2 {
				t.Fatalf("inputs keyed %v, want the model's names a and b", keys(req.Inputs))
			}
			if len(req.Outputs) != 1 || req.Outputs[0] != "p" {
				t.Fatalf("outputs %v, want [p]", req.Outputs)
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// JSON and v2 requests take the same TF names: "a:0" is input a, keyed by the model's name;
// naming one input both ways is refused.
func TestTFNamesInJSONAndV2(t *testing.T) {
	sig := processor.Signature{
		Inputs:  []tensor.Info{{Name: "a", DType: tensor.Float, Shape: []int64{-1}}},
		Outputs: []tensor.Info{{Name: "p", DType: tensor.Float, Shape: []int64{-1}}},
	}
	jsonH := http.Header{"Content-Type": {"application/json"}}
	for _, tc := range []struct {
		name, body string
		v2         bool
		want       string // "" = a decoded under "a"
	}{
		{"json suffix", `{"inputs":{"a:0":[1,2]}}`, false, ""},
		{"v2 suffix", `{"inputs":[{"name":"a:0","datatype":"FP32","shape":[2],"data":[1,2]}]}`, true, ""},
		{"json both ways", `{"inputs":{"a":[1],"a:0":[2]}}`, false, `input "a:0": given twice`},
		{"v2 both ways", `{"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1]},{"name":"a:0","datatype":"FP32","shape":[1],"data":[2]}]}`, true, `input "a:0": given twice`},
		{"v2 other index", `{"inputs":[{"name":"a:1","datatype":"FP32","shape":[1],"data":[1]}]}`, true, `input "a:1": unknown input; the model's inputs are [a]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req *Request
			var err error
			if tc.v2 {
				req, err = DecodeV2Infer(jsonH, []byte(tc.body), sig)
			} else {
				req, err = Decode(FamilyTensorFlow, jsonH, []byte(tc.body), sig)
			}
			if tc.want != "" {
				wantInputError(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			equalTensor(t, "input a", req.Inputs["a"], &tensor.Tensor{DType: tensor.Float, Shape: []int64{2}, Data: f32s(1, 2)})
			if len(req.Inputs) != 1 {
				t.Errorf("inputs keyed %v, want [a]", keys(req.Inputs))
			}
		})
	}
}

package codec

import (
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

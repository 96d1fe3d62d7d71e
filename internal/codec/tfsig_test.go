package codec

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/easpb/tfpb"
	"github.com/openeas/openeas/internal/tensor"
)

var testSigs = TFSignatures{
	TFDefaultSignature: {Inputs: map[string]string{"image": "a:0", "count": "b:0"}, Outputs: map[string]string{"scores": "p:0", "ids": "q:0"}},
	"only_p":           {Inputs: map[string]string{"x": "a:0"}, Outputs: map[string]string{"probs": "p:0"}},
}

func TestTFSignatureSelection(t *testing.T) {
	a := &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(1, 2), FloatVal: []float32{1, 2}}
	b := &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_INT64, ArrayShape: shapeOf(1), Int64Val: []int64{3}}
	noDefault := TFSignatures{"only_p": testSigs["only_p"]}
	for _, tc := range []struct {
		name      string
		sigs      TFSignatures
		signature string
		inputs    map[string]*tfpb.ArrayProto
		filter    []string
		outputs   []string // model output names
		keys      []string // response keys; nil: the output names
		err       string
	}{
		{name: "default signature, aliases", sigs: testSigs, inputs: map[string]*tfpb.ArrayProto{"image": a, "count": b},
			outputs: []string{"q", "p"}, keys: []string{"ids", "scores"}},
		{name: "named signature, tensor names", sigs: testSigs, signature: "only_p", inputs: map[string]*tfpb.ArrayProto{"a:0": a, "b": b},
			outputs: []string{"p"}, keys: []string{"probs"}},
		{name: "output_filter alias", sigs: testSigs, inputs: map[string]*tfpb.ArrayProto{"image": a, "count": b}, filter: []string{"scores"},
			outputs: []string{"p"}, keys: []string{"scores"}},
		{name: "output_filter tensor name", sigs: testSigs, inputs: map[string]*tfpb.ArrayProto{"image": a, "b": b}, filter: []string{"q:0"},
			outputs: []string{"q"}, keys: []string{"q:0"}},
		{name: "unknown signature", sigs: testSigs, signature: "predict", inputs: map[string]*tfpb.ArrayProto{"image": a},
			err: `unknown signature_name "predict"; the model's signatures are ["only_p" "serving_default"]`},
		{name: "unknown input alias", sigs: testSigs, signature: "only_p", inputs: map[string]*tfpb.ArrayProto{"image": a},
			err: `input "image": unknown input; signature "only_p"'s inputs are ["x"]`},
		{name: "unknown output alias", sigs: testSigs, inputs: map[string]*tfpb.ArrayProto{"image": a}, filter: []string{"probs"},
			err: `unknown output "probs"; signature "serving_default"'s outputs are ["ids" "scores"]`},
		{name: "no serving_default: the graph's names as before", sigs: noDefault, inputs: map[string]*tfpb.ArrayProto{"a": a, "b": b}},
		{name: "no signatures: signature_name ignored", signature: "anything", inputs: map[string]*tfpb.ArrayProto{"a": a, "b": b}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := proto.Marshal(&tfpb.PredictRequest{SignatureName: tc.signature, Inputs: tc.inputs, OutputFilter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			req, err := DecodeSigned(FamilyTensorFlow, nil, body, twoSig, tc.sigs)
			if tc.err != "" {
				wantInputError(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Sorted(slices.Values(keys(req.Inputs))); !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("inputs keyed %v, want the model's names [a b]", got)
			}
			if !slices.Equal(req.Outputs, tc.outputs) || !slices.Equal(req.OutputKeys, tc.keys) {
				t.Errorf("outputs %v keyed %v, want %v keyed %v", req.Outputs, req.OutputKeys, tc.outputs, tc.keys)
			}
		})
	}
}

// The response names outputs by the signature's aliases.
func TestTFSignatureResponseKeys(t *testing.T) {
	body, err := proto.Marshal(&tfpb.PredictRequest{Inputs: map[string]*tfpb.ArrayProto{
		"image": {Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(1, 2), FloatVal: []float32{1, 2}},
		"count": {Dtype: tfpb.ArrayDataType_DT_INT64, ArrayShape: shapeOf(1), Int64Val: []int64{3}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	req, err := DecodeSigned(FamilyTensorFlow, nil, body, twoSig, testSigs)
	if err != nil {
		t.Fatal(err)
	}
	outs := map[string]*tensor.Tensor{
		"p": {DType: tensor.Float, Shape: []int64{1, 2}, Data: f32s(0.25, 0.75)},
		"q": {DType: tensor.Int64, Shape: []int64{1}, Data: i64s(7)},
	}
	b, _, err := Encode(req, outs, twoSig)
	if err != nil {
		t.Fatal(err)
	}
	var resp tfpb.PredictResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(slices.Values(keys(resp.Outputs))); !slices.Equal(got, []string{"ids", "scores"}) {
		t.Fatalf("response outputs keyed %v, want [ids scores]", got)
	}
	if got := resp.Outputs["scores"].GetFloatVal(); !slices.Equal(got, []float32{0.25, 0.75}) {
		t.Errorf("scores = %v", got)
	}
	if got := resp.Outputs["ids"].GetInt64Val(); !slices.Equal(got, []int64{7}) {
		t.Errorf("ids = %v", got)
	}
}

package codec

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
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

// JSON and v2 requests (no signature_name) may use the serving_default signature's aliases,
// and their responses key outputs as a TF protobuf request without signature_name would.
func TestTFSignatureAliasesJSONAndV2(t *testing.T) {
	noDefault := TFSignatures{"only_p": testSigs["only_p"]}
	// in builds a request body in format f: inputs (name → "f" float [1,2] or "i" int64 [1]) and
	// the outputs asked for.
	in := func(f Format, outputs []string, names ...string) string {
		var b strings.Builder
		if f == FormatJSON {
			b.WriteString(`{"inputs":{`)
			for i, n := range names {
				if i > 0 {
					b.WriteString(",")
				}
				if n[0] == '#' {
					fmt.Fprintf(&b, `%q:[3]`, n[1:])
				} else {
					fmt.Fprintf(&b, `%q:[[1,2]]`, n)
				}
			}
			b.WriteString("}")
			if outputs != nil {
				ob, _ := json.Marshal(outputs)
				fmt.Fprintf(&b, `,"outputs":%s`, ob)
			}
			b.WriteString("}")
			return b.String()
		}
		b.WriteString(`{"inputs":[`)
		for i, n := range names {
			if i > 0 {
				b.WriteString(",")
			}
			if n[0] == '#' {
				fmt.Fprintf(&b, `{"name":%q,"datatype":"INT64","shape":[1],"data":[3]}`, n[1:])
			} else {
				fmt.Fprintf(&b, `{"name":%q,"datatype":"FP32","shape":[1,2],"data":[1,2]}`, n)
			}
		}
		b.WriteString("]")
		if outputs != nil {
			b.WriteString(`,"outputs":[`)
			for i, o := range outputs {
				if i > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, `{"name":%q}`, o)
			}
			b.WriteString("]")
		}
		b.WriteString("}")
		return b.String()
	}
	for _, tc := range []struct {
		name    string
		sigs    TFSignatures
		inputs  []string // "#name": the int64 input
		asked   []string // outputs asked for
		outputs []string // model output names decoded
		keys    []string // response keys; nil: the output names
		err     string
	}{
		{name: "aliases, signature's outputs by alias", sigs: testSigs, inputs: []string{"image", "#count"},
			outputs: []string{"q", "p"}, keys: []string{"ids", "scores"}},
		{name: "model names, signature's outputs by alias", sigs: testSigs, inputs: []string{"a", "#b"},
			outputs: []string{"q", "p"}, keys: []string{"ids", "scores"}},
		{name: "output asked by alias", sigs: testSigs, inputs: []string{"image", "#b"}, asked: []string{"scores"},
			outputs: []string{"p"}, keys: []string{"scores"}},
		{name: "output asked by model name", sigs: testSigs, inputs: []string{"image", "#count"}, asked: []string{"q"},
			outputs: []string{"q"}, keys: []string{"q"}},
		{name: "output asked by alias and by name: answered once", sigs: testSigs, inputs: []string{"image", "#count"}, asked: []string{"scores", "p"},
			outputs: []string{"p"}, keys: []string{"scores"}},
		{name: "input by alias and by name", sigs: testSigs, inputs: []string{"image", "a", "#count"},
			err: `input "a": given twice, as "a" and as "image" (signature "serving_default"'s aliases name tensors)`},
		{name: "unknown input lists aliases and names", sigs: testSigs, inputs: []string{"picture"},
			err: `input "picture": unknown input; the model's inputs are [count image a b]`},
		{name: "unknown output", sigs: testSigs, inputs: []string{"image"}, asked: []string{"probs"},
			err: `unknown output "probs"; the model's outputs are [ids scores p q]`},
		{name: "no serving_default: model names only", sigs: noDefault, inputs: []string{"a", "#b"}},
		{name: "no serving_default: aliases unknown", sigs: noDefault, inputs: []string{"x"},
			err: `input "x": unknown input; the model's inputs are [a b]`},
		{name: "no signatures", inputs: []string{"a", "#b"}, asked: []string{"p"}, outputs: []string{"p"}},
	} {
		for _, f := range []Format{FormatJSON, FormatV2} {
			t.Run(tc.name+"/"+f.String(), func(t *testing.T) {
				body := []byte(in(f, tc.asked, tc.inputs...))
				var req *Request
				var err error
				if f == FormatJSON {
					req, err = DecodeSigned(FamilyTensorFlow, nil, body, twoSig, tc.sigs)
				} else {
					req, err = DecodeV2InferSigned(nil, body, twoSig, tc.sigs)
				}
				if tc.err != "" {
					wantInputError(t, err, tc.err)
					return
				}
				if err != nil {
					t.Fatalf("%s: %v", body, err)
				}
				want := []string{"a", "b"}[:len(tc.inputs)]
				if got := slices.Sorted(slices.Values(keys(req.Inputs))); !slices.Equal(got, want) {
					t.Errorf("inputs keyed %v, want the model's names %v", got, want)
				}
				if !slices.Equal(req.Outputs, tc.outputs) || !slices.Equal(req.OutputKeys, tc.keys) {
					t.Errorf("outputs %v keyed %v, want %v keyed %v", req.Outputs, req.OutputKeys, tc.outputs, tc.keys)
				}
			})
		}
	}
}

// The JSON and v2 responses name outputs by alias, with the values of the tensors they name.
func TestTFSignatureAliasResponses(t *testing.T) {
	outs := map[string]*tensor.Tensor{
		"p": {DType: tensor.Float, Shape: []int64{1, 2}, Data: f32s(0.25, 0.75)},
		"q": {DType: tensor.Int64, Shape: []int64{1}, Data: i64s(7)},
	}
	req, err := DecodeSigned(FamilyTensorFlow, nil, []byte(`{"inputs":{"image":[[1,2]],"count":[3]}}`), twoSig, testSigs)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := Encode(req, outs, twoSig)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"outputs":{"ids":[7],"scores":[[0.25,0.75]]}}`; string(b) != want {
		t.Errorf("JSON response %s, want %s", b, want)
	}
	req, err = DecodeV2InferSigned(nil, []byte(`{"inputs":[{"name":"image","datatype":"FP32","shape":[1,2],"data":[1,2]}],"outputs":[{"name":"scores"}]}`), twoSig, testSigs)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err = EncodeV2Infer(req, "svc", outs, twoSig)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"model_name":"svc","outputs":[{"name":"scores","datatype":"FP32","shape":[1,2],"data":[0.25,0.75]}]}`; string(b) != want {
		t.Errorf("v2 response %s, want %s", b, want)
	}
}

func TestTFSignaturesDescribed(t *testing.T) {
	partial := TFSignatures{TFDefaultSignature: {Inputs: map[string]string{"image": "a:0", "gone": "pruned:0"}, Outputs: map[string]string{"scores": "p"}}}
	for _, tc := range []struct {
		name string
		sigs TFSignatures
		want string // the metadata's inputs and outputs
	}{
		{"aliases sorted, types and shapes from the model", testSigs,
			`"inputs":[{"name":"count","datatype":"INT64","shape":[-1]},{"name":"image","datatype":"FP32","shape":[-1,2]}],"outputs":[{"name":"ids","datatype":"INT64","shape":[-1]},{"name":"scores","datatype":"FP32","shape":[-1,2]}]`},
		{"tensors no alias names keep their names; aliases of missing tensors are left out", partial,
			`"inputs":[{"name":"image","datatype":"FP32","shape":[-1,2]},{"name":"b","datatype":"INT64","shape":[-1]}],"outputs":[{"name":"scores","datatype":"FP32","shape":[-1,2]},{"name":"q","datatype":"INT64","shape":[-1]}]`},
		{"no serving_default: the model's names", TFSignatures{"only_p": testSigs["only_p"]},
			`"inputs":[{"name":"a","datatype":"FP32","shape":[-1,2]},{"name":"b","datatype":"INT64","shape":[-1]}],"outputs":[{"name":"p","datatype":"FP32","shape":[-1,2]},{"name":"q","datatype":"INT64","shape":[-1]}]`},
		{"a frozen graph (no signatures): the model's names", nil,
			`"inputs":[{"name":"a","datatype":"FP32","shape":[-1,2]},{"name":"b","datatype":"INT64","shape":[-1]}],"outputs":[{"name":"p","datatype":"FP32","shape":[-1,2]},{"name":"q","datatype":"INT64","shape":[-1]}]`},
	} {
		got := string(V2ModelMetadata("m", "tensorflow_savedmodel", tc.sigs.Described(twoSig)))
		if want := `{"name":"m","platform":"tensorflow_savedmodel",` + tc.want + `}`; got != want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, want)
		}
	}
}

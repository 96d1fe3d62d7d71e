package codec

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// binaryBody joins a JSON header and binary tensor data the way Triton clients do.
func binaryBody(jsonPart string, bins ...[]byte) ([]byte, http.Header) {
	body := []byte(jsonPart)
	for _, b := range bins {
		body = append(body, b...)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/octet-stream")
	h.Set(HeaderV2JSONLength, strconv.Itoa(len(jsonPart)))
	return body, h
}

func bytesElems(ss ...string) []byte {
	var b []byte
	for _, s := range ss {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func TestV2JSON(t *testing.T) {
	// "data" before "name" and "datatype", nested data, INT32 data for an INT64 input.
	body := `{"id": "req-1", "inputs": [
		{"data": [[1, 2]], "name": "a", "shape": [1, 2], "datatype": "FP32"},
		{"name": "b", "shape": [2], "datatype": "INT32", "data": [7, -8], "parameters": {"content_type": "x"}}
	], "outputs": [{"name": "q"}], "extension_field": {"ignored": [1]}}`
	req, err := DecodeV2Infer(jsonHeader, []byte(body), twoSig)
	if err != nil {
		t.Fatal(err)
	}
	equalTensor(t, "a", req.Inputs["a"], &tensor.Tensor{DType: tensor.Float, Shape: []int64{1, 2}, Data: f32s(1, 2)})
	equalTensor(t, "b", req.Inputs["b"], &tensor.Tensor{DType: tensor.Int64, Shape: []int64{2}, Data: i64s(7, -8)})
	if req.Format != FormatV2 || req.V2.ID != "req-1" || len(req.Outputs) != 1 || req.Outputs[0] != "q" {
		t.Fatalf("request %+v, v2 %+v", req, req.V2)
	}
	out, h, err := EncodeV2Infer(req, "ocr", map[string]*tensor.Tensor{"q": {DType: tensor.Int64, Shape: []int64{2, 1}, Data: i64s(3, 4)}}, twoSig)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model_name":"ocr","id":"req-1","outputs":[{"name":"q","datatype":"INT64","shape":[2,1],"data":[3,4]}]}`
	if string(out) != want || h.Get("Content-Type") != "application/json" || h.Get(HeaderV2JSONLength) != "" {
		t.Fatalf("response %s %v\nwant     %s", out, h, want)
	}
}

func TestV2Binary(t *testing.T) {
	sig := processor.Signature{
		Inputs: []tensor.Info{
			{Name: "img", DType: tensor.Float16, Shape: []int64{-1, 2}},
			{Name: "text", DType: tensor.String, Shape: []int64{-1}},
			{Name: "mask", DType: tensor.Bool, Shape: []int64{-1}},
			{Name: "ids", DType: tensor.Int64, Shape: []int64{-1}},
		},
		Outputs: []tensor.Info{
			{Name: "score", DType: tensor.Float16, Shape: []int64{-1}},
			{Name: "label", DType: tensor.String, Shape: []int64{-1}},
			{Name: "flag", DType: tensor.Bool, Shape: []int64{-1}},
		},
	}
	jsonPart := `{"inputs":[
		{"name":"img","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}},
		{"name":"text","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":13}},
		{"name":"mask","shape":[3],"datatype":"BOOL","parameters":{"binary_data_size":3}},
		{"name":"ids","shape":[1],"datatype":"INT64","data":[5]}
	],"parameters":{"binary_data_output":true},
	"outputs":[{"name":"score"},{"name":"label","parameters":{"binary_data":false}},{"name":"flag"}]}`
	body, h := binaryBody(jsonPart, f32s(0.5, -1), bytesElems("hello", ""), []byte{1, 0, 7})
	// text is 4+5 + 4+0 = 13 bytes.
	req, err := DecodeV2Infer(h, body, sig)
	if err != nil {
		t.Fatal(err)
	}
	equalTensor(t, "img", req.Inputs["img"], &tensor.Tensor{DType: tensor.Float16, Shape: []int64{1, 2}, Data: f16s(0.5, -1)})
	equalTensor(t, "text", req.Inputs["text"], &tensor.Tensor{DType: tensor.String, Shape: []int64{2}, Strings: []string{"hello", ""}})
	equalTensor(t, "mask", req.Inputs["mask"], &tensor.Tensor{DType: tensor.Bool, Shape: []int64{3}, Data: []byte{1, 0, 1}})
	equalTensor(t, "ids", req.Inputs["ids"], &tensor.Tensor{DType: tensor.Int64, Shape: []int64{1}, Data: i64s(5)})
	if body[len(body)-1] != 7 {
		t.Fatal("bool normalisation wrote into the request body")
	}
	if !req.V2.BinaryOutput || req.V2.OutputBinary["label"] || len(req.V2.OutputBinary) != 1 {
		t.Fatalf("v2 meta %+v", req.V2)
	}

	outs := map[string]*tensor.Tensor{
		"score": {DType: tensor.Float16, Shape: []int64{2}, Data: f16s(0.25, 2)},
		"label": {DType: tensor.String, Shape: []int64{1}, Strings: []string{"cat"}},
		"flag":  {DType: tensor.Bool, Shape: []int64{2}, Data: []byte{0, 1}},
	}
	out, rh, err := EncodeV2Infer(req, "m", outs, sig)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(rh.Get(HeaderV2JSONLength))
	if err != nil || rh.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("headers %v", rh)
	}
	wantJSON := `{"model_name":"m","outputs":[` +
		`{"name":"score","datatype":"FP16","shape":[2],"parameters":{"binary_data_size":4}},` +
		`{"name":"label","datatype":"BYTES","shape":[1],"data":["cat"]},` +
		`{"name":"flag","datatype":"BOOL","shape":[2],"parameters":{"binary_data_size":2}}]}`
	if string(out[:n]) != wantJSON {
		t.Fatalf("json part %s\nwant      %s", out[:n], wantJSON)
	}
	if !json.Valid(out[:n]) {
		t.Fatal("json part is not valid JSON")
	}
	if wantBin := append(f16s(0.25, 2), 0, 1); !bytes.Equal(out[n:], wantBin) {
		t.Fatalf("binary part %x, want %x", out[n:], wantBin)
	}

	// The response reads back through the decoder (a client of ours would do this).
	back, bh := binaryBody(`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":7}}]}`, bytesElems("cat"))
	if r2, err := DecodeV2Infer(bh, back, sig); err != nil || r2.Inputs["text"].Strings[0] != "cat" {
		t.Fatalf("BYTES binary back: %v", err)
	}
}

func TestV2SageMakerContentType(t *testing.T) {
	jsonPart := `{"inputs":[{"name":"b","shape":[1],"datatype":"INT64","parameters":{"binary_data_size":8}}]}`
	body := append([]byte(jsonPart), i64s(11)...)
	h := http.Header{"Content-Type": {"application/vnd.sagemaker-triton.binary+json;json-header-size=" + strconv.Itoa(len(jsonPart))}}
	req, err := DecodeV2Infer(h, body, twoSig)
	if err != nil {
		t.Fatal(err)
	}
	equalTensor(t, "b", req.Inputs["b"], &tensor.Tensor{DType: tensor.Int64, Shape: []int64{1}, Data: i64s(11)})
}

func TestV2Errors(t *testing.T) {
	in := func(s string) string { return `{"inputs":[` + s + `]}` }
	tests := []struct {
		name   string
		body   []byte
		header http.Header
		want   string
	}{
		{name: "shape and data disagree", body: []byte(in(`{"name":"a","shape":[1,2],"datatype":"FP32","data":[1,2,3]}`)),
			want: `input "a": shape [1 2] needs 2 values, data has 3`},
		{name: "datatype that does not convert", body: []byte(in(`{"name":"a","shape":[1,2],"datatype":"FP64","data":[1,2]}`)),
			want: `input "a": datatype FP64, expected FP32`},
		{name: "unknown datatype", body: []byte(in(`{"name":"a","shape":[1,2],"datatype":"FP8","data":[1,2]}`)),
			want: `input "a": datatype "FP8" is not one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BF16, BYTES`},
		{name: "no name", body: []byte(in(`{"shape":[1],"datatype":"INT64","data":[1]}`)),
			want: `inputs[0] has no "name"`},
		{name: "no shape", body: []byte(in(`{"name":"b","datatype":"INT64","data":[1]}`)),
			want: `input "b": no "shape"`},
		{name: "no datatype", body: []byte(in(`{"name":"b","shape":[1],"data":[1]}`)),
			want: `input "b": no "datatype"`},
		{name: "negative dimension", body: []byte(in(`{"name":"b","shape":[-1],"datatype":"INT64","data":[1]}`)),
			want: `inputs[0].shape[0] is -1; dimensions must be >= 0`},
		{name: "no data", body: []byte(in(`{"name":"b","shape":[1],"datatype":"INT64"}`)),
			want: `input "b": has neither "data" nor parameters.binary_data_size`},
		{name: "value out of range", body: []byte(in(`{"name":"b","shape":[1],"datatype":"INT64","data":[1e30]}`)),
			want: `input "b": at [0]: value 1e30 is not an integer (int64)`},
		{name: "unknown input", body: []byte(in(`{"name":"zz","shape":[1],"datatype":"INT64","data":[1]}`)),
			want: `input "zz": unknown input; the model's inputs are [a b]`},
		{name: "unknown output", body: []byte(`{"inputs":[],"outputs":[{"name":"nope"}]}`),
			want: `unknown output "nope"; the model's outputs are [p q]`},
		{name: "classification", body: []byte(`{"inputs":[],"outputs":[{"name":"p","parameters":{"classification":3}}]}`),
			want: `outputs[0].parameters.classification: the classification extension is not supported`},
		{name: "binary_data_output not a bool", body: []byte(`{"inputs":[],"parameters":{"binary_data_output":1}}`),
			want: `parameters.binary_data_output must be true or false, found a number`},
		{name: "inputs not objects", body: []byte(`{"inputs":[1]}`),
			want: `inputs[0] must be an object, found a number`},
		{name: "inputs list closed early", body: []byte(`{"inputs":[}`),
			want: `inputs[0] must be an object, found '}'`},
		{name: "syntax", body: []byte(`{"inputs":[{"name" "a"}]}`),
			want: `invalid JSON at byte 20: expected ':', found a string`},
	}
	// binary-data cases
	bin := func(jsonPart string, data []byte) ([]byte, http.Header) { return binaryBody(jsonPart, data) }
	b1, h1 := bin(in(`{"name":"a","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":16}}`), f32s(1, 2))
	b2, h2 := bin(in(`{"name":"a","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":4}}`), f32s(1, 2))
	b3, h3 := bin(in(`{"name":"a","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8},"data":[1,2]}`), f32s(1, 2))
	b4, h4 := bin(in(`{"name":"b","shape":[1],"datatype":"INT64","data":[1]}`), []byte{1, 2, 3, 4})
	b5 := []byte(`{"inputs":[]}`)
	h5 := http.Header{HeaderV2JSONLength: {"99"}}
	tests = append(tests, []struct {
		name   string
		body   []byte
		header http.Header
		want   string
	}{
		{"binary size beyond the body", b1, h1, `input "a": binary_data_size 16, but only 8 bytes of binary data remain`},
		{"binary size disagrees with shape", b2, h2, `input "a": shape [1 2] of FP32 needs 8 bytes of binary data, binary_data_size is 4`},
		{"binary and JSON data", b3, h3, `input "a": has both "data" and parameters.binary_data_size`},
		{"binary data nobody claims", b4, h4, `4 bytes of binary data left over after the inputs that declare binary_data_size`},
		{"header length beyond the body", b5, h5, `header Inference-Header-Content-Length: "99" is not a length within the body's 13 bytes`},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = jsonHeader
			}
			_, err := DecodeV2Infer(h, tt.body, twoSig)
			wantInputError(t, err, tt.want)
		})
	}
}

func TestV2ModelMetadata(t *testing.T) {
	sig := processor.Signature{
		Inputs:  []tensor.Info{{Name: "x", DType: tensor.Float, Shape: []int64{-1, 3, 224, 224}}, {Name: "s", DType: tensor.String}},
		Outputs: []tensor.Info{{Name: "y", DType: tensor.BFloat16, Shape: []int64{-1, 1000}}},
	}
	got := string(V2ModelMetadata("resnet", "onnxruntime_onnx", sig))
	want := `{"name":"resnet","platform":"onnxruntime_onnx",` +
		`"inputs":[{"name":"x","datatype":"FP32","shape":[-1,3,224,224]},{"name":"s","datatype":"BYTES","shape":[]}],` +
		`"outputs":[{"name":"y","datatype":"BF16","shape":[-1,1000]}]}`
	if got != want {
		t.Fatalf("metadata\n got %s\nwant %s", got, want)
	}
}

package codec

import (
	"net/http"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/easpb/tfpb"
	"github.com/openeas/openeas/internal/easpb/torchpb"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tfReq(inputs map[string]*tfpb.ArrayProto, outputs ...string) *tfpb.PredictRequest {
	return &tfpb.PredictRequest{Inputs: inputs, OutputFilter: outputs}
}

func TestProtobufErrors(t *testing.T) {
	okA := &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(1, 2), FloatVal: []float32{1, 2}}
	tests := []struct {
		name   string
		family Family
		header http.Header
		sig    processor.Signature
		body   func(t *testing.T) []byte
		want   string
	}{
		{
			name: "unknown input", family: FamilyTensorFlow, sig: twoSig,
			body: func(t *testing.T) []byte { return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"c": okA})) },
			want: `input "c": unknown input; the model's inputs are [a b]`,
		},
		{
			name: "value count disagrees with shape", family: FamilyTensorFlow, sig: twoSig,
			body: func(t *testing.T) []byte {
				return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"a": {Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(1, 2), FloatVal: []float32{1, 2, 3}}}))
			},
			want: `input "a": array_shape [1 2] needs 2 values, float_val has 3`,
		},
		{
			name: "no values", family: FamilyTensorFlow, sig: twoSig,
			body: func(t *testing.T) []byte {
				return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"b": {Dtype: tfpb.ArrayDataType_DT_INT64, ArrayShape: shapeOf(2)}}))
			},
			want: `input "b": array_shape [2] needs 2 values, the request has none`,
		},
		{
			name: "float values for an int64 input", family: FamilyTensorFlow, sig: twoSig,
			body: func(t *testing.T) []byte {
				return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"b": {Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(1), FloatVal: []float32{1}}}))
			},
			want: `input "b": dtype float32 (float_val), expected int64`,
		},
		{
			name: "double values for a float32 input", family: FamilyTensorFlow, sig: twoSig,
			body: func(t *testing.T) []byte {
				return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"a": {Dtype: tfpb.ArrayDataType_DT_DOUBLE, ArrayShape: shapeOf(1, 2), DoubleVal: []float64{1, 2}}}))
			},
			want: `input "a": dtype float64 (double_val), expected float32`,
		},
		{
			name: "string values for a float32 input", family: FamilyTensorFlow, sig: twoSig,
			body: func(t *testing.T) []byte {
				return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"a": {Dtype: tfpb.ArrayDataType_DT_STRING, ArrayShape: shapeOf(1), StringVal: [][]byte{[]byte("1")}}}))
			},
			want: `input "a": dtype string (string_val), expected float32`,
		},
		{
			name: "bool values for an int64 input", family: FamilyTensorFlow, sig: twoSig,
			body: func(t *testing.T) []byte {
				return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"b": {Dtype: tfpb.ArrayDataType_DT_BOOL, ArrayShape: shapeOf(1), BoolVal: []bool{true}}}))
			},
			want: `input "b": dtype bool (bool_val), expected int64`,
		},
		{
			name: "dtype and value field disagree", family: FamilyTensorFlow, sig: twoSig,
			body: func(t *testing.T) []byte {
				return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"a": {Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(1, 2), IntVal: []int32{1, 2}}}))
			},
			want: `input "a": dtype DT_FLOAT carries its values in float_val, but int_val is set`,
		},
		{
			name: "two value fields", family: FamilyTensorFlow, sig: twoSig,
			body: func(t *testing.T) []byte {
				return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"a": {ArrayShape: shapeOf(1, 2), FloatVal: []float32{1, 2}, DoubleVal: []float64{1, 2}}}))
			},
			want: `input "a": values in both float_val and double_val; expected one field`,
		},
		{
			name: "unsupported dtype", family: FamilyTensorFlow, sig: twoSig,
			body: func(t *testing.T) []byte {
				return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"a": {Dtype: tfpb.ArrayDataType_DT_COMPLEX64, ArrayShape: shapeOf(1, 2), FloatVal: []float32{1, 2}}}))
			},
			want: `input "a": dtype DT_COMPLEX64 is not supported`,
		},
		{
			name: "negative dimension", family: FamilyTensorFlow, sig: twoSig,
			body: func(t *testing.T) []byte {
				return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"a": {Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(-1, 2), FloatVal: []float32{1, 2}}}))
			},
			want: `input "a": array_shape.dim[0] is -1; dimensions must be >= 0`,
		},
		{
			name: "shape that overflows", family: FamilyTensorFlow, sig: twoSig,
			body: func(t *testing.T) []byte {
				return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"a": {Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(1<<32, 1<<32), FloatVal: []float32{1, 2}}}))
			},
			want: `input "a": array_shape [4294967296 4294967296] has more than 2147483647 elements`,
		},
		{
			name: "empty tensor of vast extent", family: FamilyTensorFlow, sig: twoSig,
			body: func(t *testing.T) []byte {
				return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"a": {Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(1<<30, 0)}}))
			},
			want: `input "a": array_shape [1073741824 0]: an empty tensor may span at most 16777216 positions`,
		},
		{
			name: "unknown output", family: FamilyTensorFlow, sig: twoSig,
			body: func(t *testing.T) []byte {
				return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"a": okA}, "p", "r"))
			},
			want: `unknown output "r"; the model's outputs are [p q]`,
		},
		{
			name: "int_val out of uint8 range", family: FamilyTensorFlow, sig: sigOf(tensor.Uint8, 2),
			body: func(t *testing.T) []byte {
				return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"x": {Dtype: tfpb.ArrayDataType_DT_UINT8, ArrayShape: shapeOf(2), IntVal: []int32{7, 300}}}))
			},
			want: `input "x": int_val[1]: value 300 does not fit uint8`,
		},
		{
			name: "int_val not exact in float32", family: FamilyTensorFlow, sig: sigOf(tensor.Float, 1),
			body: func(t *testing.T) []byte {
				return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"x": {Dtype: tfpb.ArrayDataType_DT_INT32, ArrayShape: shapeOf(1), IntVal: []int32{16777217}}}))
			},
			want: `input "x": int_val[0]: value 16777217 is not exact in float32`,
		},
		{
			name: "int64_val out of int32 range", family: FamilyTensorFlow, sig: sigOf(tensor.Int32, 1),
			body: func(t *testing.T) []byte {
				return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"x": {Dtype: tfpb.ArrayDataType_DT_INT64, ArrayShape: shapeOf(1), Int64Val: []int64{1 << 40}}}))
			},
			want: `input "x": int64_val[0]: value 1099511627776 does not fit int32`,
		},
		{
			name: "int_val 2 for a bool input", family: FamilyPyTorch, sig: sigOf(tensor.Bool, 1),
			body: func(t *testing.T) []byte {
				return mustMarshal(t, &torchpb.PredictRequest{Inputs: []*torchpb.ArrayProto{{Dtype: torchpb.ArrayDataType_DT_BOOL, ArrayShape: &torchpb.ArrayShape{Dim: []int64{1}}, IntVal: []int32{2}}}})
			},
			want: `input "x": inputs[0]: int_val[0]: value 2 is not a bool (0 or 1)`,
		},
		{
			name: "truncated body", family: FamilyTensorFlow, sig: twoSig,
			body: func(t *testing.T) []byte { return []byte{0x12, 0x05, 0x0a} },
			want: `tensorflow PredictRequest: invalid protobuf: inputs: unexpected EOF`,
		},
		{
			name: "field with a wire type it never uses", family: FamilyTensorFlow, sig: twoSig,
			body: func(t *testing.T) []byte { return []byte{0x10, 0x01} },
			want: `tensorflow PredictRequest: invalid protobuf: field 2 has wire type 0, which it never uses`,
		},
		{
			name: "packed float_val cut mid-value", family: FamilyTensorFlow, sig: twoSig,
			// inputs entry {key "a", value {float_val: 3 bytes}}
			body: func(t *testing.T) []byte { return []byte{0x12, 0x0a, 0x0a, 0x01, 'a', 0x12, 0x05, 0x1a, 0x03, 0, 0, 0} },
			want: `tensorflow PredictRequest: invalid protobuf: inputs[0]: float_val: packed length 3 is not a multiple of 4`,
		},
		{
			name: "too many positional inputs", family: FamilyPyTorch, sig: twoSig,
			body: func(t *testing.T) []byte {
				a := toTorch(okA)
				return mustMarshal(t, &torchpb.PredictRequest{Inputs: []*torchpb.ArrayProto{a, a, a}})
			},
			want: `the request has 3 positional inputs; the model takes 2 [a b]`,
		},
		{
			name: "positional input of the wrong dtype", family: FamilyPyTorch, sig: twoSig,
			body: func(t *testing.T) []byte {
				a := toTorch(okA)
				return mustMarshal(t, &torchpb.PredictRequest{Inputs: []*torchpb.ArrayProto{a, a}})
			},
			want: `input "b": inputs[1]: dtype float32 (float_val), expected int64`,
		},
		{
			name: "output_filter out of range", family: FamilyPyTorch, sig: twoSig,
			body: func(t *testing.T) []byte {
				return mustMarshal(t, &torchpb.PredictRequest{Inputs: []*torchpb.ArrayProto{toTorch(okA)}, OutputFilter: []int32{1, 5}})
			},
			want: `output_filter[1] = 5 is out of range; the model has 2 outputs [p q]`,
		},
		{
			name: "input both positional and named", family: FamilyPyTorch, sig: twoSig,
			body: func(t *testing.T) []byte {
				a := toTorch(okA)
				return mustMarshal(t, &torchpb.PredictRequest{Inputs: []*torchpb.ArrayProto{a}, MapInputs: map[string]*torchpb.ArrayProto{"a": a}})
			},
			want: `input "a": given both in inputs (by position) and in map_inputs`,
		},
		{
			name: "unknown map input", family: FamilyPyTorch, sig: twoSig,
			body: func(t *testing.T) []byte {
				return mustMarshal(t, &torchpb.PredictRequest{MapInputs: map[string]*torchpb.ArrayProto{"zz": toTorch(okA)}})
			},
			want: `input "zz": unknown input; the model's inputs are [a b]`,
		},
		{
			name: "onnx: neither protobuf", family: FamilyONNX, sig: twoSig,
			body: func(t *testing.T) []byte { return []byte{0x0a, 0xff} },
			want: `pytorch PredictRequest: invalid protobuf: inputs: unexpected EOF`,
		},
		{
			name: "onnx: tensorflow request naming unknown inputs", family: FamilyONNX, sig: twoSig,
			body: func(t *testing.T) []byte { return mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"c": okA})) },
			want: `input "c": unknown input; the model's inputs are [a b]`,
		},
		{
			name: "unknown format override", family: FamilyTensorFlow, sig: twoSig,
			header: http.Header{"X-Eas-Request-Format": {"xml"}},
			body:   func(t *testing.T) []byte { return nil },
			want:   `header X-EAS-Request-Format: unknown format "xml"; expected tensorflow, pytorch or json`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.family, tt.header, tt.body(t), tt.sig)
			wantInputError(t, err, tt.want)
		})
	}
}

func TestDetect(t *testing.T) {
	tfBody := mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"b": {Dtype: tfpb.ArrayDataType_DT_INT64, ArrayShape: shapeOf(1), Int64Val: []int64{4}}}))
	torchBody := mustMarshal(t, &torchpb.PredictRequest{MapInputs: map[string]*torchpb.ArrayProto{"b": {Dtype: torchpb.ArrayDataType_DT_INT64, ArrayShape: &torchpb.ArrayShape{Dim: []int64{1}}, Int64Val: []int64{4}}}})
	jsonBody := []byte(`{"inputs":{"b":[4]}}`)
	tests := []struct {
		name   string
		family Family
		header http.Header
		body   []byte
		want   Format
	}{
		{"tensorflow family", FamilyTensorFlow, nil, tfBody, FormatTFProto},
		{"pytorch family", FamilyPyTorch, nil, torchBody, FormatTorchProto},
		{"onnx reads tensorflow", FamilyONNX, nil, tfBody, FormatTFProto},
		{"onnx reads pytorch", FamilyONNX, nil, torchBody, FormatTorchProto},
		{"json by content type", FamilyTensorFlow, http.Header{"Content-Type": {"application/json; charset=utf-8"}}, []byte(` {"inputs":{"b":[4]}}`), FormatJSON},
		{"json by first byte", FamilyPyTorch, http.Header{"Content-Type": {"application/octet-stream"}}, jsonBody, FormatJSON},
		{"override to pytorch", FamilyTensorFlow, http.Header{"X-Eas-Request-Format": {"PyTorch"}}, torchBody, FormatTorchProto},
		{"override to tensorflow", FamilyPyTorch, http.Header{"X-Eas-Request-Format": {"tensorflow"}}, tfBody, FormatTFProto},
		{"override to json", FamilyPyTorch, http.Header{"X-Eas-Request-Format": {"json"}}, []byte("\n" + string(jsonBody)), FormatJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Decode(tt.family, tt.header, tt.body, twoSig)
			if err != nil {
				t.Fatal(err)
			}
			if req.Format != tt.want {
				t.Fatalf("format %v, want %v", req.Format, tt.want)
			}
			equalTensor(t, "b", req.Inputs["b"], &tensor.Tensor{DType: tensor.Int64, Shape: []int64{1}, Data: i64s(4)})
		})
	}
}

func TestFamilyOf(t *testing.T) {
	for name, want := range map[string]Family{
		"tensorflow_cpu_1.15": FamilyTensorFlow, "TensorFlow_gpu": FamilyTensorFlow,
		"pytorch_cpu_1.10": FamilyPyTorch, "pytorch_gpu_1.10": FamilyPyTorch,
		"onnx": FamilyONNX, "onnxruntime_cpu": FamilyONNX, "": FamilyONNX,
	} {
		if got := FamilyOf(name); got != want {
			t.Errorf("FamilyOf(%q) = %v, want %v", name, got, want)
		}
	}
}

// Unpacked repeated fields and split packed chunks are valid protobuf; old clients send them.
func TestProtobufUnpackedAndSplitFields(t *testing.T) {
	// ArrayProto for "a": dtype DT_FLOAT, shape dims unpacked (1, then 2), float_val as one
	// unpacked fixed32 (1.0) followed by a packed chunk (2.0).
	arr := []byte{
		0x08, 0x01,
		0x12, 0x04, 0x08, 0x01, 0x08, 0x02, // array_shape {dim: 1, dim: 2} unpacked
		0x1d, 0x00, 0x00, 0x80, 0x3f, // float_val fixed32 1.0
		0x1a, 0x04, 0x00, 0x00, 0x00, 0x40, // float_val packed [2.0]
	}
	entry := append([]byte{0x0a, 0x01, 'a', 0x12, byte(len(arr))}, arr...)
	body := append([]byte{0x12, byte(len(entry))}, entry...)
	// An unknown field (number 9, varint) must be skipped.
	body = append(body, 0x48, 0x05)
	var gen tfpb.PredictRequest
	if err := proto.Unmarshal(body, &gen); err != nil {
		t.Fatalf("the hand-made body is not valid protobuf: %v", err)
	}
	req, err := Decode(FamilyTensorFlow, nil, body, twoSig)
	if err != nil {
		t.Fatal(err)
	}
	equalTensor(t, "a", req.Inputs["a"], &tensor.Tensor{DType: tensor.Float, Shape: []int64{1, 2}, Data: f32s(1, 2)})
	if got := gen.Inputs["a"].FloatVal; len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("generated code reads %v", got)
	}
}

// Decoded float data aliases the body; it must never be written through.
func TestDecodeDoesNotModifyBody(t *testing.T) {
	body := mustMarshal(t, tfReq(map[string]*tfpb.ArrayProto{"x": {Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(2), FloatVal: []float32{1, 2}}}))
	orig := string(body)
	if _, err := Decode(FamilyTensorFlow, nil, body, sigOf(tensor.Float16, 2)); err != nil {
		t.Fatal(err)
	}
	if string(body) != orig {
		t.Fatal("Decode modified the body")
	}
}

func TestEncodeErrors(t *testing.T) {
	sig := sigOf(tensor.Float, 2)
	if _, _, err := Encode(&Request{Format: FormatTFProto}, map[string]*tensor.Tensor{}, sig); err == nil || err.Error() != `codec: output "y" missing from the processor's result` {
		t.Fatalf("missing output: %v", err)
	}
	bad := &tensor.Tensor{DType: tensor.Float, Shape: []int64{2}, Data: f32s(1)}
	if _, _, err := Encode(&Request{Format: FormatTorchProto}, map[string]*tensor.Tensor{"y": bad}, sig); err == nil || processor.IsInputError(err) {
		t.Fatalf("short output data: %v", err)
	}
	huge := &tensor.Tensor{DType: tensor.Uint64, Shape: []int64{1}, Data: i64s(-1)}
	if _, _, err := Encode(&Request{Format: FormatTFProto}, map[string]*tensor.Tensor{"y": huge}, sigOf(tensor.Uint64, 1)); err == nil ||
		err.Error() != `codec: output "y": value at index 0 exceeds int64, the widest EAS integer` {
		t.Fatalf("uint64 overflow: %v", err)
	}
}

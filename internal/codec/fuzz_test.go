package codec

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/easpb/tfpb"
	"github.com/openeas/openeas/internal/easpb/torchpb"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

var fuzzSig = processor.Signature{
	Inputs: []tensor.Info{
		{Name: "a", DType: tensor.Float, Shape: []int64{-1, 2}},
		{Name: "b", DType: tensor.Int64, Shape: []int64{-1}},
		{Name: "s", DType: tensor.String, Shape: []int64{-1}},
		{Name: "m", DType: tensor.Bool, Shape: []int64{-1}},
		{Name: "h", DType: tensor.Float16, Shape: []int64{-1}},
		{Name: "u", DType: tensor.Uint8, Shape: []int64{-1}},
	},
	Outputs: []tensor.Info{{Name: "p", DType: tensor.Float}, {Name: "q", DType: tensor.Int64}},
}

// FuzzDecode feeds arbitrary bytes to every decoder. Whatever the bytes, decoding must not
// panic, must fail only with an InputError, and must yield tensors whose data agrees with
// their shape. `go test` runs the seeds; `go test -fuzz=FuzzDecode ./internal/codec` explores.
func FuzzDecode(f *testing.F) {
	seeds := [][]byte{
		nil,
		{0xff},
		[]byte(`{"inputs": {"a": [[1, 2]], "b": [3], "s": ["x"], "m": [true], "h": [0.5], "u": [255]}, "outputs": ["p"]}`),
		[]byte(`{"inputs":[{"name":"a","shape":[1,2],"datatype":"FP32","data":[1,2]},{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":5}}],"parameters":{"binary_data_output":true}}` + "\x01\x00\x00\x00z"),
		[]byte(`{"inputs": {"a": [[1, 2], [3]]}}`),
		[]byte(`{"inputs": {"a": ` + strings.Repeat("[", 70) + `}}`),
	}
	for _, m := range []proto.Message{
		&tfpb.PredictRequest{SignatureName: "serving_default", OutputFilter: []string{"q"}, Inputs: map[string]*tfpb.ArrayProto{
			"a": {Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: &tfpb.ArrayShape{Dim: []int64{1, 2}}, FloatVal: []float32{1, 2}},
			"s": {Dtype: tfpb.ArrayDataType_DT_STRING, ArrayShape: &tfpb.ArrayShape{Dim: []int64{1}}, StringVal: [][]byte{[]byte("x")}},
			"m": {Dtype: tfpb.ArrayDataType_DT_BOOL, ArrayShape: &tfpb.ArrayShape{Dim: []int64{2}}, BoolVal: []bool{true, false}},
		}},
		&torchpb.PredictRequest{
			Inputs:       []*torchpb.ArrayProto{{Dtype: torchpb.ArrayDataType_DT_FLOAT, ArrayShape: &torchpb.ArrayShape{Dim: []int64{1, 2}}, FloatVal: []float32{1, 2}}},
			OutputFilter: []int32{1},
			MapInputs: map[string]*torchpb.ArrayProto{
				"b": {Dtype: torchpb.ArrayDataType_DT_INT64, ArrayShape: &torchpb.ArrayShape{Dim: []int64{1}}, Int64Val: []int64{-5}},
				"u": {Dtype: torchpb.ArrayDataType_DT_UINT8, ArrayShape: &torchpb.ArrayShape{Dim: []int64{1}}, IntVal: []int32{9}},
			},
		},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	for i, s := range seeds {
		f.Add(s, uint16(i*37))
	}
	f.Fuzz(func(t *testing.T, body []byte, jsonLen uint16) {
		check := func(what string, req *Request, err error) {
			if err != nil {
				if !processor.IsInputError(err) {
					t.Fatalf("%s: error %T %v is not an InputError", what, err, err)
				}
				return
			}
			// What decodes must encode, in every format, as outputs of the same names.
			outs := map[string]*tensor.Tensor{}
			sig := processor.Signature{}
			for name, tt := range req.Inputs {
				if err := tt.Validate(); err != nil {
					t.Fatalf("%s: input %q decoded inconsistent: %v", what, name, err)
				}
				outs[name] = tt
				sig.Outputs = append(sig.Outputs, tensor.Info{Name: name, DType: tt.DType})
			}
			for _, format := range []Format{FormatTFProto, FormatTorchProto, FormatJSON} {
				if _, _, err := Encode(&Request{Format: format, TorchMapOutputs: true}, outs, sig); err != nil {
					t.Fatalf("%s: encode as %v: %v", what, format, err)
				}
			}
			if _, _, err := EncodeV2Infer(&Request{Format: FormatV2, V2: req.V2}, "m", outs, sig); err != nil {
				t.Fatalf("%s: encode as v2: %v", what, err)
			}
		}
		for _, fam := range []Family{FamilyTensorFlow, FamilyPyTorch, FamilyONNX} {
			req, err := Decode(fam, http.Header{"Content-Type": {"application/octet-stream"}}, body, fuzzSig)
			check(fam.String(), req, err)
		}
		req, err := Decode(FamilyONNX, jsonHeader, body, fuzzSig)
		check("json", req, err)
		req, err = DecodeV2Infer(jsonHeader, body, fuzzSig)
		check("v2", req, err)
		h := http.Header{HeaderV2JSONLength: {strconv.Itoa(int(jsonLen) % (len(body) + 1))}}
		req, err = DecodeV2Infer(h, body, fuzzSig)
		check("v2 binary", req, err)
	})
}

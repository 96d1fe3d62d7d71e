package codec

import (
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/easpb/torchpb"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// TestUndeclaredDType: an input whose dtype the model does not declare (tensor.Invalid, a
// TorchScript input without a signature file) takes each request's own dtype; JSON numbers,
// which carry none, become float32. CheckInputs then accepts any dtype for it.
func TestUndeclaredDType(t *testing.T) {
	sig := sigOf(tensor.Invalid, -1, 3)
	torchBody := func(a *torchpb.ArrayProto) []byte {
		b, err := proto.Marshal(&torchpb.PredictRequest{Inputs: []*torchpb.ArrayProto{a}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	shape := &torchpb.ArrayShape{Dim: []int64{1, 3}}
	for _, tc := range []struct {
		name   string
		family Family
		header http.Header
		body   []byte
		want   *tensor.Tensor
	}{
		{"torch protobuf int64", FamilyPyTorch, nil,
			torchBody(&torchpb.ArrayProto{Dtype: torchpb.ArrayDataType_DT_INT64, ArrayShape: shape, Int64Val: []int64{101, 2023, 102}}),
			&tensor.Tensor{DType: tensor.Int64, Shape: []int64{1, 3}, Data: i64s(101, 2023, 102)}},
		{"torch protobuf int32 by dtype", FamilyPyTorch, nil,
			torchBody(&torchpb.ArrayProto{Dtype: torchpb.ArrayDataType_DT_INT32, ArrayShape: shape, IntVal: []int32{1, -2, 3}}),
			&tensor.Tensor{DType: tensor.Int32, Shape: []int64{1, 3}, Data: i32s(1, -2, 3)}},
		{"torch protobuf float without dtype", FamilyPyTorch, nil,
			torchBody(&torchpb.ArrayProto{ArrayShape: shape, FloatVal: []float32{0.5, 1, 2}}),
			&tensor.Tensor{DType: tensor.Float, Shape: []int64{1, 3}, Data: f32s(0.5, 1, 2)}},
		{"v2 INT64", FamilyPyTorch, http.Header{"Content-Type": {"application/json"}},
			[]byte(`{"inputs":[{"name":"x","datatype":"INT64","shape":[1,3],"data":[7,8,9]}]}`),
			&tensor.Tensor{DType: tensor.Int64, Shape: []int64{1, 3}, Data: i64s(7, 8, 9)}},
		{"plain JSON numbers", FamilyPyTorch, http.Header{"Content-Type": {"application/json"}},
			[]byte(`{"inputs":{"x":[[7,8,9]]}}`),
			&tensor.Tensor{DType: tensor.Float, Shape: []int64{1, 3}, Data: f32s(7, 8, 9)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.header
			if h == nil {
				h = http.Header{"Content-Type": {"application/octet-stream"}}
			}
			var req *Request
			var err error
			if tc.name == "v2 INT64" {
				req, err = DecodeV2Infer(h, tc.body, sig)
			} else {
				req, err = Decode(tc.family, h, tc.body, sig)
			}
			if err != nil {
				t.Fatal(err)
			}
			equalTensor(t, "input x", req.Inputs["x"], tc.want)
			if err := processor.CheckInputs(sig, req.Inputs); err != nil {
				t.Errorf("CheckInputs refused a %s input the model does not type: %v", req.Inputs["x"].DType, err)
			}
		})
	}
	// v2 metadata says so rather than naming a dtype the model never declared.
	if md := string(V2ModelMetadata("m", "pytorch_libtorch", sig)); !strings.Contains(md, `"name":"x","datatype":"ANY"`) {
		t.Errorf("v2 metadata of an undeclared input: %s", md)
	}
	// The shape is still checked, and a missing input says what is expected.
	err := processor.CheckInputs(sig, map[string]*tensor.Tensor{"x": {DType: tensor.Int64, Shape: []int64{1, 4}, Data: i64s(1, 2, 3, 4)}})
	wantInputError(t, err, `input "x": shape [1 4], expected [?,3]`)
	err = processor.CheckInputs(sig, map[string]*tensor.Tensor{})
	wantInputError(t, err, `input "x": missing; the model expects a tensor of [?,3]`)
}

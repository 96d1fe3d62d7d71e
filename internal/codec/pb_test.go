package codec

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/easpb/tfpb"
	"github.com/openeas/openeas/internal/easpb/torchpb"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

func shapeOf(dims ...int64) *tfpb.ArrayShape { return &tfpb.ArrayShape{Dim: dims} }

// pbCase is one dtype through both protobufs: what a client sends for input x, the tensor
// the model gets, and the ArrayProto that the same tensor becomes as output y.
type pbCase struct {
	name  string
	info  tensor.Info
	send  *tfpb.ArrayProto
	want  *tensor.Tensor
	reply *tfpb.ArrayProto // nil: same as send
}

var pbCases = []pbCase{
	{
		name: "float32",
		info: tensor.Info{DType: tensor.Float, Shape: []int64{-1, 3}},
		send: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(2, 3), FloatVal: []float32{1, -2.5, 3, 0, 1e-30, 7}},
		want: &tensor.Tensor{DType: tensor.Float, Shape: []int64{2, 3}, Data: f32s(1, -2.5, 3, 0, 1e-30, 7)},
	},
	{
		name:  "float16 from DT_HALF float_val",
		info:  tensor.Info{DType: tensor.Float16, Shape: []int64{3}},
		send:  &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_HALF, ArrayShape: shapeOf(3), FloatVal: []float32{0.5, -2, 65504}},
		want:  &tensor.Tensor{DType: tensor.Float16, Shape: []int64{3}, Data: f16s(0.5, -2, 65504)},
		reply: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_HALF, ArrayShape: shapeOf(3), FloatVal: []float32{0.5, -2, 65504}},
	},
	{
		name:  "float16 from DT_FLOAT float_val rounds",
		info:  tensor.Info{DType: tensor.Float16, Shape: []int64{2}},
		send:  &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(2), FloatVal: []float32{0.1, 1}},
		want:  &tensor.Tensor{DType: tensor.Float16, Shape: []int64{2}, Data: f16s(0.1, 1)},
		reply: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_HALF, ArrayShape: shapeOf(2), FloatVal: []float32{0.0999755859375, 1}},
	},
	{
		name: "bfloat16",
		info: tensor.Info{DType: tensor.BFloat16, Shape: []int64{2}},
		send: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_BFLOAT16, ArrayShape: shapeOf(2), FloatVal: []float32{1.5, -3}},
		want: &tensor.Tensor{DType: tensor.BFloat16, Shape: []int64{2}, Data: bf16s(1.5, -3)},
	},
	{
		name: "double",
		info: tensor.Info{DType: tensor.Double, Shape: []int64{2}},
		send: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_DOUBLE, ArrayShape: shapeOf(2), DoubleVal: []float64{0.1, -1e300}},
		want: &tensor.Tensor{DType: tensor.Double, Shape: []int64{2}, Data: f64s(0.1, -1e300)},
	},
	{
		name:  "double from float_val widens",
		info:  tensor.Info{DType: tensor.Double, Shape: []int64{1}},
		send:  &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(1), FloatVal: []float32{0.5}},
		want:  &tensor.Tensor{DType: tensor.Double, Shape: []int64{1}, Data: f64s(0.5)},
		reply: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_DOUBLE, ArrayShape: shapeOf(1), DoubleVal: []float64{0.5}},
	},
	{
		name: "int32 with negatives",
		info: tensor.Info{DType: tensor.Int32, Shape: []int64{3}},
		send: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_INT32, ArrayShape: shapeOf(3), IntVal: []int32{-1, 0, 2147483647}},
		want: &tensor.Tensor{DType: tensor.Int32, Shape: []int64{3}, Data: i32s(-1, 0, 2147483647)},
	},
	{
		name: "int16",
		info: tensor.Info{DType: tensor.Int16, Shape: []int64{2}},
		send: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_INT16, ArrayShape: shapeOf(2), IntVal: []int32{-32768, 32767}},
		want: &tensor.Tensor{DType: tensor.Int16, Shape: []int64{2}, Data: i16s(-32768, 32767)},
	},
	{
		name: "int8",
		info: tensor.Info{DType: tensor.Int8, Shape: []int64{2}},
		send: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_INT8, ArrayShape: shapeOf(2), IntVal: []int32{-128, 127}},
		want: &tensor.Tensor{DType: tensor.Int8, Shape: []int64{2}, Data: []byte{0x80, 0x7f}},
	},
	{
		name: "uint8 image",
		info: tensor.Info{DType: tensor.Uint8, Shape: []int64{1, 2, 2}},
		send: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_UINT8, ArrayShape: shapeOf(1, 2, 2), IntVal: []int32{0, 1, 254, 255}},
		want: &tensor.Tensor{DType: tensor.Uint8, Shape: []int64{1, 2, 2}, Data: []byte{0, 1, 254, 255}},
	},
	{
		name: "int64",
		info: tensor.Info{DType: tensor.Int64, Shape: []int64{-1}},
		send: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_INT64, ArrayShape: shapeOf(3), Int64Val: []int64{-9223372036854775808, 0, 9223372036854775807}},
		want: &tensor.Tensor{DType: tensor.Int64, Shape: []int64{3}, Data: i64s(-9223372036854775808, 0, 9223372036854775807)},
	},
	{
		name:  "int64 from int_val",
		info:  tensor.Info{DType: tensor.Int64, Shape: []int64{-1}},
		send:  &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_INT32, ArrayShape: shapeOf(2), IntVal: []int32{101, -7}},
		want:  &tensor.Tensor{DType: tensor.Int64, Shape: []int64{2}, Data: i64s(101, -7)},
		reply: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_INT64, ArrayShape: shapeOf(2), Int64Val: []int64{101, -7}},
	},
	{
		name:  "float32 from exact int_val",
		info:  tensor.Info{DType: tensor.Float, Shape: []int64{2}},
		send:  &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_INT32, ArrayShape: shapeOf(2), IntVal: []int32{16777216, -3}},
		want:  &tensor.Tensor{DType: tensor.Float, Shape: []int64{2}, Data: f32s(16777216, -3)},
		reply: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(2), FloatVal: []float32{16777216, -3}},
	},
	{
		name: "bool",
		info: tensor.Info{DType: tensor.Bool, Shape: []int64{3}},
		send: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_BOOL, ArrayShape: shapeOf(3), BoolVal: []bool{true, false, true}},
		want: &tensor.Tensor{DType: tensor.Bool, Shape: []int64{3}, Data: []byte{1, 0, 1}},
	},
	{
		name: "string",
		info: tensor.Info{DType: tensor.String, Shape: []int64{-1}},
		send: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_STRING, ArrayShape: shapeOf(3), StringVal: [][]byte{[]byte("héllo"), {}, {0xff, 0}}},
		want: &tensor.Tensor{DType: tensor.String, Shape: []int64{3}, Strings: []string{"héllo", "", "\xff\x00"}},
	},
	{
		name: "float32 scalar",
		info: tensor.Info{DType: tensor.Float, Shape: []int64{}},
		send: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(), FloatVal: []float32{42}},
		want: &tensor.Tensor{DType: tensor.Float, Data: f32s(42)},
	},
	{
		name: "int64 scalar without array_shape",
		info: tensor.Info{DType: tensor.Int64, Shape: []int64{}},
		send: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_INT64, Int64Val: []int64{5}},
		want: &tensor.Tensor{DType: tensor.Int64, Data: i64s(5)},
		// The response always carries array_shape (empty for a scalar).
		reply: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_INT64, ArrayShape: shapeOf(), Int64Val: []int64{5}},
	},
	{
		name: "empty float32",
		info: tensor.Info{DType: tensor.Float, Shape: []int64{-1, 4}},
		send: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(0, 4)},
		want: &tensor.Tensor{DType: tensor.Float, Shape: []int64{0, 4}, Data: []byte{}},
	},
	{
		name: "string scalar",
		info: tensor.Info{DType: tensor.String, Shape: []int64{}},
		send: &tfpb.ArrayProto{Dtype: tfpb.ArrayDataType_DT_STRING, ArrayShape: shapeOf(), StringVal: [][]byte{[]byte("one")}},
		want: &tensor.Tensor{DType: tensor.String, Strings: []string{"one"}},
	},
}

func caseSig(c pbCase) processor.Signature {
	in, out := c.info, c.info
	in.Name, out.Name = "x", "y"
	return processor.Signature{Inputs: []tensor.Info{in}, Outputs: []tensor.Info{out}}
}

func TestTFRoundTrip(t *testing.T) {
	for _, c := range pbCases {
		t.Run(c.name, func(t *testing.T) {
			sig := caseSig(c)
			body, err := proto.Marshal(&tfpb.PredictRequest{SignatureName: "serving_default", Inputs: map[string]*tfpb.ArrayProto{"x": c.send}})
			if err != nil {
				t.Fatal(err)
			}
			for _, fam := range []Family{FamilyTensorFlow, FamilyONNX} {
				req, err := Decode(fam, nil, body, sig)
				if err != nil {
					t.Fatalf("%v: Decode: %v", fam, err)
				}
				if req.Format != FormatTFProto || req.Outputs != nil {
					t.Fatalf("%v: format %v outputs %v", fam, req.Format, req.Outputs)
				}
				equalTensor(t, "input x", req.Inputs["x"], c.want)
				if err := processor.CheckInputs(sig, req.Inputs); err != nil {
					t.Fatalf("decoded input fails CheckInputs: %v", err)
				}
			}

			out, ct, err := Encode(&Request{Format: FormatTFProto}, map[string]*tensor.Tensor{"y": c.want}, sig)
			if err != nil {
				t.Fatal(err)
			}
			if ct != "application/octet-stream" {
				t.Fatalf("content type %q", ct)
			}
			var resp tfpb.PredictResponse
			if err := proto.Unmarshal(out, &resp); err != nil {
				t.Fatalf("generated code cannot read the response: %v", err)
			}
			want := c.reply
			if want == nil {
				want = c.send
			}
			if got := resp.Outputs["y"]; !proto.Equal(got, want) || len(resp.Outputs) != 1 {
				t.Fatalf("response\n got %v\nwant y: %v", &resp, want)
			}
		})
	}
}

func toTorch(a *tfpb.ArrayProto) *torchpb.ArrayProto {
	t := &torchpb.ArrayProto{
		Dtype: torchpb.ArrayDataType(a.Dtype), FloatVal: a.FloatVal, DoubleVal: a.DoubleVal,
		IntVal: a.IntVal, StringVal: a.StringVal, Int64Val: a.Int64Val,
	}
	if a.ArrayShape != nil {
		t.ArrayShape = &torchpb.ArrayShape{Dim: a.ArrayShape.Dim}
	}
	for _, b := range a.BoolVal { // the PyTorch ArrayProto carries bools in int_val
		v := int32(0)
		if b {
			v = 1
		}
		t.IntVal = append(t.IntVal, v)
	}
	return t
}

func TestTorchRoundTrip(t *testing.T) {
	for _, c := range pbCases {
		t.Run(c.name, func(t *testing.T) {
			sig := caseSig(c)
			send := toTorch(c.send)
			want := c.reply
			if want == nil {
				want = c.send
			}
			reply := toTorch(want)
			for _, named := range []bool{false, true} {
				msg := &torchpb.PredictRequest{Inputs: []*torchpb.ArrayProto{send}}
				if named {
					msg = &torchpb.PredictRequest{MapInputs: map[string]*torchpb.ArrayProto{"x": send}, OutputFilter: []int32{0}}
				}
				body, err := proto.Marshal(msg)
				if err != nil {
					t.Fatal(err)
				}
				var req *Request
				for _, fam := range []Family{FamilyPyTorch, FamilyONNX} {
					req, err = Decode(fam, http.Header{"Content-Type": {"application/octet-stream"}}, body, sig)
					if err != nil {
						t.Fatalf("%v named=%v: Decode: %v", fam, named, err)
					}
					if req.Format != FormatTorchProto || req.TorchMapOutputs != named {
						t.Fatalf("%v named=%v: format %v, map outputs %v", fam, named, req.Format, req.TorchMapOutputs)
					}
					equalTensor(t, "input x", req.Inputs["x"], c.want)
				}
				if named && (len(req.Outputs) != 1 || req.Outputs[0] != "y") {
					t.Fatalf("output_filter [0] gave outputs %v", req.Outputs)
				}
				out, _, err := Encode(req, map[string]*tensor.Tensor{"y": c.want}, sig)
				if err != nil {
					t.Fatal(err)
				}
				var resp torchpb.PredictResponse
				if err := proto.Unmarshal(out, &resp); err != nil {
					t.Fatalf("generated code cannot read the response: %v", err)
				}
				if len(resp.Outputs) != 1 || !proto.Equal(resp.Outputs[0], reply) {
					t.Fatalf("response\n got %v\nwant outputs[0]: %v", &resp, reply)
				}
				if named != (len(resp.MapOutputs) == 1) || named && !proto.Equal(resp.MapOutputs["y"], reply) {
					t.Fatalf("named=%v: map_outputs %v", named, resp.MapOutputs)
				}
			}
		})
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The golden bodies are written from the field numbers in EAS.md §4 alone, so they prove
// wire compatibility independently of the generated code.
const goldenTFRequest = `
0a 0f 73657276696e675f64656661756c74   signature_name = 1: "serving_default"
12 17                                  inputs = 2: map entry, 23 bytes
   0a 01 78                              key = 1: "x"
   12 12                                 value = 2: ArrayProto, 18 bytes
      08 01                                dtype = 1: DT_FLOAT
      12 04 0a 02 01 02                    array_shape = 2: {dim = 1: packed [1, 2]}
      1a 08 0000803f 00000040              float_val = 3: packed [1.0, 2.0]
1a 01 79                               output_filter = 3: "y"
`

const goldenTFResponse = `
0a 16                                  outputs = 1: map entry, 22 bytes
   0a 01 79                              key: "y"
   12 11                                 value: ArrayProto, 17 bytes
      08 01                                dtype: DT_FLOAT
      12 03 0a 01 02                       array_shape: {dim: [2]}
      1a 08 0000003f 000080bf              float_val: [0.5, -1.0]
`

const goldenTorchRequest = `
0a 14                                  inputs = 1: ArrayProto, 20 bytes
   08 09                                 dtype = 1: DT_INT64
   12 03 0a 01 02                        array_shape = 2: {dim: [2]}
   3a 0b 03 ffffffffffffffffff01         int64_val = 7: packed [3, -1]
12 01 00                               output_filter = 2: packed [0]
a0 06 01                               debug_level = 100: 1
`

const goldenTorchResponse = `
0a 11                                  outputs = 1: ArrayProto, 17 bytes
   08 01                                 dtype: DT_FLOAT
   12 03 0a 01 02                        array_shape: {dim: [2]}
   1a 08 0000003f 000080bf               float_val: [0.5, -1.0]
`

func TestGoldenWire(t *testing.T) {
	// Each listing line is hex, then three or more spaces, then a comment.
	trim := func(s string) []byte {
		var out []byte
		for _, line := range strings.Split(s, "\n") {
			line = strings.TrimSpace(line)
			if i := strings.Index(line, "   "); i >= 0 {
				line = line[:i]
			}
			out = append(out, unhex(t, line)...)
		}
		return out
	}
	sig := processor.Signature{
		Inputs:  []tensor.Info{{Name: "x", DType: tensor.Float, Shape: []int64{1, 2}}},
		Outputs: []tensor.Info{{Name: "y", DType: tensor.Float, Shape: []int64{2}}},
	}
	y := &tensor.Tensor{DType: tensor.Float, Shape: []int64{2}, Data: f32s(0.5, -1)}

	t.Run("tensorflow request", func(t *testing.T) {
		body := trim(goldenTFRequest)
		req, err := Decode(FamilyTensorFlow, nil, body, sig)
		if err != nil {
			t.Fatal(err)
		}
		equalTensor(t, "x", req.Inputs["x"], &tensor.Tensor{DType: tensor.Float, Shape: []int64{1, 2}, Data: f32s(1, 2)})
		if len(req.Outputs) != 1 || req.Outputs[0] != "y" {
			t.Fatalf("outputs %v", req.Outputs)
		}
		gen, err := proto.MarshalOptions{Deterministic: true}.Marshal(&tfpb.PredictRequest{
			SignatureName: "serving_default",
			Inputs:        map[string]*tfpb.ArrayProto{"x": {Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: shapeOf(1, 2), FloatVal: []float32{1, 2}}},
			OutputFilter:  []string{"y"},
		})
		if err != nil || !bytes.Equal(gen, body) {
			t.Fatalf("generated code writes %x, golden is %x (%v)", gen, body, err)
		}
	})
	t.Run("tensorflow response", func(t *testing.T) {
		out, _, err := Encode(&Request{Format: FormatTFProto}, map[string]*tensor.Tensor{"y": y}, sig)
		if err != nil {
			t.Fatal(err)
		}
		if want := trim(goldenTFResponse); !bytes.Equal(out, want) {
			t.Fatalf("response\n got %x\nwant %x", out, want)
		}
	})
	t.Run("pytorch request", func(t *testing.T) {
		body := trim(goldenTorchRequest)
		sig := processor.Signature{
			Inputs:  []tensor.Info{{Name: "ids", DType: tensor.Int64, Shape: []int64{-1}}},
			Outputs: []tensor.Info{{Name: "y", DType: tensor.Float}, {Name: "z", DType: tensor.Float}},
		}
		req, err := Decode(FamilyPyTorch, nil, body, sig)
		if err != nil {
			t.Fatal(err)
		}
		equalTensor(t, "ids", req.Inputs["ids"], &tensor.Tensor{DType: tensor.Int64, Shape: []int64{2}, Data: i64s(3, -1)})
		if len(req.Outputs) != 1 || req.Outputs[0] != "y" || req.TorchMapOutputs {
			t.Fatalf("outputs %v, map outputs %v", req.Outputs, req.TorchMapOutputs)
		}
		gen, err := proto.Marshal(&torchpb.PredictRequest{
			Inputs:       []*torchpb.ArrayProto{{Dtype: torchpb.ArrayDataType_DT_INT64, ArrayShape: &torchpb.ArrayShape{Dim: []int64{2}}, Int64Val: []int64{3, -1}}},
			OutputFilter: []int32{0},
			DebugLevel:   1,
		})
		if err != nil || !bytes.Equal(gen, body) {
			t.Fatalf("generated code writes %x, golden is %x (%v)", gen, body, err)
		}
	})
	t.Run("pytorch response", func(t *testing.T) {
		out, _, err := Encode(&Request{Format: FormatTorchProto}, map[string]*tensor.Tensor{"y": y}, sig)
		if err != nil {
			t.Fatal(err)
		}
		if want := trim(goldenTorchResponse); !bytes.Equal(out, want) {
			t.Fatalf("response\n got %x\nwant %x", out, want)
		}
	})
}

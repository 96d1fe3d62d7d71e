package codec

import (
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/easpb/tfpb"
	"github.com/openeas/openeas/internal/easpb/torchpb"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// The benchmarks decode a 1×3×224×224 float32 request and encode a same-sized response,
// the image-model case the gateway+worker overhead budget is set for.

var benchSig = processor.Signature{
	Inputs:  []tensor.Info{{Name: "x", DType: tensor.Float, Shape: []int64{-1, 3, 224, 224}}},
	Outputs: []tensor.Info{{Name: "y", DType: tensor.Float, Shape: []int64{-1, 3, 224, 224}}},
}

func benchValues() []float32 {
	r := rand.New(rand.NewPCG(1, 2))
	v := make([]float32, 3*224*224)
	for i := range v {
		v[i] = r.Float32()*2 - 1
	}
	return v
}

func benchTensor(v []float32) *tensor.Tensor {
	return &tensor.Tensor{DType: tensor.Float, Shape: []int64{1, 3, 224, 224}, Data: f32s(v...)}
}

func runBench(b *testing.B, body []byte, decode func([]byte) (*Request, error), encode func(*Request, map[string]*tensor.Tensor) error) {
	b.Helper()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req, err := decode(body)
		if err != nil {
			b.Fatal(err)
		}
		// The model's output is as big as its input: encode the input back.
		if err := encode(req, map[string]*tensor.Tensor{"y": req.Inputs["x"]}); err != nil {
			b.Fatal(err)
		}
	}
}

func encodeWith(req *Request, outs map[string]*tensor.Tensor) error {
	_, _, err := Encode(req, outs, benchSig)
	return err
}

func BenchmarkTFProto(b *testing.B) {
	v := benchValues()
	body, _ := proto.Marshal(&tfpb.PredictRequest{Inputs: map[string]*tfpb.ArrayProto{
		"x": {Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: &tfpb.ArrayShape{Dim: []int64{1, 3, 224, 224}}, FloatVal: v},
	}})
	runBench(b, body, func(body []byte) (*Request, error) { return Decode(FamilyTensorFlow, nil, body, benchSig) }, encodeWith)
}

func BenchmarkTorchProto(b *testing.B) {
	v := benchValues()
	body, _ := proto.Marshal(&torchpb.PredictRequest{Inputs: []*torchpb.ArrayProto{
		{Dtype: torchpb.ArrayDataType_DT_FLOAT, ArrayShape: &torchpb.ArrayShape{Dim: []int64{1, 3, 224, 224}}, FloatVal: v},
	}})
	runBench(b, body, func(body []byte) (*Request, error) { return Decode(FamilyPyTorch, nil, body, benchSig) }, encodeWith)
}

// BenchmarkONNXProtoDetect is the ONNX family's cost of telling the two protobufs apart.
func BenchmarkONNXProtoDetect(b *testing.B) {
	v := benchValues()
	body, _ := proto.Marshal(&torchpb.PredictRequest{Inputs: []*torchpb.ArrayProto{
		{Dtype: torchpb.ArrayDataType_DT_FLOAT, ArrayShape: &torchpb.ArrayShape{Dim: []int64{1, 3, 224, 224}}, FloatVal: v},
	}})
	runBench(b, body, func(body []byte) (*Request, error) { return Decode(FamilyONNX, nil, body, benchSig) }, encodeWith)
}

// BenchmarkGeneratedTFProto is the same work through the generated types, for comparison.
func BenchmarkGeneratedTFProto(b *testing.B) {
	v := benchValues()
	body, _ := proto.Marshal(&tfpb.PredictRequest{Inputs: map[string]*tfpb.ArrayProto{
		"x": {Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: &tfpb.ArrayShape{Dim: []int64{1, 3, 224, 224}}, FloatVal: v},
	}})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var req tfpb.PredictRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			b.Fatal(err)
		}
		x := req.Inputs["x"]
		t := &tensor.Tensor{DType: tensor.Float, Shape: x.ArrayShape.Dim, Data: f32s(x.FloatVal...)}
		vals := make([]float32, len(t.Data)/4)
		for i := range vals {
			vals[i] = float32(readFloat(tensor.Float, t.Data, i))
		}
		resp := &tfpb.PredictResponse{Outputs: map[string]*tfpb.ArrayProto{
			"y": {Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: &tfpb.ArrayShape{Dim: t.Shape}, FloatVal: vals},
		}}
		if _, err := proto.Marshal(resp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJSON(b *testing.B) {
	body, _, err := Encode(&Request{Format: FormatJSON}, map[string]*tensor.Tensor{"y": benchTensor(benchValues())}, benchSig)
	if err != nil {
		b.Fatal(err)
	}
	body = append([]byte(`{"inputs":{"x"`), body[len(`{"outputs":{"y"`):]...)
	runBench(b, body, func(body []byte) (*Request, error) { return Decode(FamilyONNX, jsonHeader, body, benchSig) }, encodeWith)
}

func BenchmarkV2JSON(b *testing.B) {
	t := benchTensor(benchValues())
	body := []byte(`{"inputs":[{"name":"x","shape":[1,3,224,224],"datatype":"FP32","data":`)
	body = appendFlat(body, t)
	body = append(body, "}]}"...)
	runBench(b, body, func(body []byte) (*Request, error) { return DecodeV2Infer(jsonHeader, body, benchSig) },
		func(req *Request, outs map[string]*tensor.Tensor) error {
			_, _, err := EncodeV2Infer(req, "m", outs, benchSig)
			return err
		})
}

func BenchmarkV2Binary(b *testing.B) {
	t := benchTensor(benchValues())
	body, h := binaryBody(`{"inputs":[{"name":"x","shape":[1,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":602112}}],"parameters":{"binary_data_output":true}}`, t.Data)
	runBench(b, body, func(body []byte) (*Request, error) { return DecodeV2Infer(h, body, benchSig) },
		func(req *Request, outs map[string]*tensor.Tensor) error {
			_, _, err := EncodeV2Infer(req, "m", outs, benchSig)
			return err
		})
}

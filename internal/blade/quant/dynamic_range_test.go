package quant

import (
	"testing"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
)

// TestDynamicWeightRangeFitsTheCPU: on x86 CPUs without VNNI the int8 weights must stay within
// 7 bits, else ORT's u8·s8 kernels saturate; elsewhere they use the full 8 bits.
func TestDynamicWeightRangeFitsTheCPU(t *testing.T) {
	w := []float32{1, -0.5, 0.25, -1, 0.75, 0.1}
	g := &onnxpb.GraphProto{
		Name:        ptrS("g"),
		Input:       []*onnxpb.ValueInfoProto{{Name: ptrS("x")}},
		Output:      []*onnxpb.ValueInfoProto{{Name: ptrS("y")}},
		Initializer: []*onnxpb.TensorProto{onnx.Float32Tensor("w", []int64{3, 2}, w)},
		Node:        []*onnxpb.NodeProto{{Name: ptrS("mm"), OpType: ptrS("MatMul"), Input: []string{"x", "w"}, Output: []string{"y"}}},
	}
	m := &onnxpb.ModelProto{Graph: g, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: ptrI(13)}}}
	out, done, err := Dynamic(m, DynamicConfig{PerChannel: true})
	if err != nil || len(done) != 1 {
		t.Fatalf("Dynamic: %v, %v", done, err)
	}
	want := 127
	if NeedsReducedRange() {
		want = 63
	}
	peak := 0
	for _, init := range out.GetGraph().GetInitializer() {
		if init.GetDataType() != int32(onnxpb.TensorProto_INT8) {
			continue
		}
		for _, b := range init.GetRawData() {
			peak = max(peak, abs(int(int8(b))))
		}
	}
	if peak != want {
		t.Errorf("largest |int8 weight| = %d, want %d (NeedsReducedRange = %v)", peak, want, NeedsReducedRange())
	}
}

func ptrS(s string) *string { return &s }
func ptrI(v int64) *int64   { return &v }
func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

package quant

import (
	"math"
	"testing"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
)

// tinyModel is y = Gemm(x, W, b, transB=1) followed by MatMul(y, V).
func tinyModel() *onnxpb.ModelProto {
	ir, v := int64(8), int64(13)
	w := []float32{1, -2, 3, 0.5, 0.25, -0.125} // 2×3 (transB: N=2, K=3)
	vv := []float32{1, 2, 3, 4}                 // 2×2
	g := &onnxpb.GraphProto{
		Node: []*onnxpb.NodeProto{
			node("Gemm", "", "", []string{"x", "W", "b"}, []string{"y"}, intAttr("transB", 1)),
			node("MatMul", "", "", []string{"y", "V"}, []string{"z"}),
		},
		Initializer: []*onnxpb.TensorProto{
			onnx.Float32Tensor("W", []int64{2, 3}, w),
			onnx.Float32Tensor("b", []int64{2}, []float32{0.5, -0.5}),
			onnx.Float32Tensor("V", []int64{2, 2}, vv),
		},
	}
	z := "z"
	g.Output = []*onnxpb.ValueInfoProto{{Name: &z}}
	return &onnxpb.ModelProto{IrVersion: &ir, Graph: g, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: &v}}}
}

func TestDynamicRewritesAndSkips(t *testing.T) {
	m := NameNodes(tinyModel())
	targets := DynamicTargets(m, true)
	if len(targets) != 2 || targets[0].Op != "Gemm" || targets[1].Op != "MatMul" {
		t.Fatalf("targets = %+v", targets)
	}
	out, done, err := Dynamic(m, DynamicConfig{PerChannel: true, Skip: map[string]bool{targets[1].Node: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 1 || done[0] != targets[0].Node {
		t.Fatalf("done = %v", done)
	}
	ops := map[string]int{}
	for _, n := range out.GetGraph().GetNode() {
		ops[n.GetDomain()+"."+n.GetOpType()]++
	}
	if ops["com.microsoft.DynamicQuantizeMatMul"] != 1 || ops[".MatMul"] != 1 || ops[".Gemm"] != 0 {
		t.Fatalf("ops after rewrite = %v", ops)
	}
	if onnx.ModelGraph(out).Opset(MSDomain) != 1 {
		t.Errorf("com.microsoft opset not imported")
	}
	// The original is untouched.
	if m.GetGraph().GetNode()[0].GetOpType() != "Gemm" {
		t.Errorf("Dynamic modified its input")
	}
}

func TestQuantizeSymmetricPerChannel(t *testing.T) {
	// 2 rows × 2 cols; column 1 is 100× smaller: per-channel keeps it exact-ish.
	w := []float32{1, 0.01, -0.5, -0.005}
	_, perT, relT := quantizeSymmetric(w, 2, 2, false)
	q, perC, relC := quantizeSymmetric(w, 2, 2, true)
	if len(perT) != 1 || len(perC) != 2 {
		t.Fatalf("scale counts %d, %d", len(perT), len(perC))
	}
	if !(relC < relT) {
		t.Errorf("per-channel error %g not below per-tensor %g", relC, relT)
	}
	if q[0] != 127 || q[1] != 127 || q[2] != -64 {
		t.Errorf("q = %v", q)
	}
}

func TestCorrectBias(t *testing.T) {
	w := []float32{0.3, 0.7} // K=2, C=1
	q, s, _ := quantizeSymmetric(w, 2, 1, true)
	got := correctBias([]float32{1}, w, q, s, []float64{2, -1}, 2, 1)
	want := 1 + 2*(0.3-float64(q[0])*float64(s[0])) - (0.7 - float64(q[1])*float64(s[0]))
	if math.Abs(float64(got[0])-want) > 1e-6 {
		t.Fatalf("bias = %v, want %v", got[0], want)
	}
}

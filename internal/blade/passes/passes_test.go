package passes

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"github.com/openeas/openeas/internal/ort"
	"github.com/openeas/openeas/internal/tensor"
)

func node(op string, in, out []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{Name: ptr(out[0] + "_node"), OpType: ptr(op), Input: in, Output: out, Attribute: attrs}
}

func fattr(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: ptr(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: ptr(v)}
}

func floatVI(name string, dims ...int64) *onnxpb.ValueInfoProto {
	t := onnx.TensorValueInfo(&onnxpb.TensorProto{Name: ptr(name), DataType: ptr(int32(1)), Dims: dims})
	return t
}

// activationModel: x[2,8] → Identity → GELU (erf form) → HardSigmoid·Mul →
// Reshape by a folded shape (Shape → Gather → Unsqueeze → Concat) → Dropout → y.
func activationModel() *onnxpb.ModelProto {
	c := func(name string, v float32) *onnxpb.TensorProto { return onnx.Float32Tensor(name, nil, []float32{v}) }
	g := &onnxpb.GraphProto{
		Name:   ptr("act"),
		Input:  []*onnxpb.ValueInfoProto{floatVI("x", 2, 8)},
		Output: []*onnxpb.ValueInfoProto{floatVI("y", 2, 2, 4)},
		Initializer: []*onnxpb.TensorProto{c("sqrt2", float32(math.Sqrt2)), c("one", 1), c("half", 0.5),
			onnx.Int64Tensor("zero", nil, []int64{0}), onnx.Int64Tensor("tail", []int64{2}, []int64{2, 4}), onnx.Int64Tensor("ax0", []int64{1}, []int64{0})},
		Node: []*onnxpb.NodeProto{
			// Out of order on purpose: Run sorts first.
			node("Dropout", []string{"r"}, []string{"y"}),
			node("Identity", []string{"x"}, []string{"xi"}),
			node("Div", []string{"xi", "sqrt2"}, []string{"d"}),
			node("Erf", []string{"d"}, []string{"e"}),
			node("Add", []string{"e", "one"}, []string{"a"}),
			node("Mul", []string{"xi", "a"}, []string{"m"}),
			node("Mul", []string{"m", "half"}, []string{"gl"}),
			node("HardSigmoid", []string{"gl"}, []string{"hs"}, fattr("alpha", 1.0/6), fattr("beta", 0.5)),
			node("Mul", []string{"gl", "hs"}, []string{"sw"}),
			node("Shape", []string{"x"}, []string{"shp"}),
			node("Gather", []string{"shp", "zero"}, []string{"b"}),
			node("Unsqueeze", []string{"b", "ax0"}, []string{"b1"}),
			node("Concat", []string{"b1", "tail"}, []string{"newshape"}, &onnxpb.AttributeProto{Name: ptr("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: ptr(int64(0))}),
			node("Reshape", []string{"sw", "newshape"}, []string{"r"}),
		},
	}
	return &onnxpb.ModelProto{IrVersion: ptr(int64(8)), Graph: g, ProducerName: ptr("passes_test"),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: ptr(""), Version: ptr(int64(14))}}}
}

func opTypes(m *onnxpb.ModelProto) []string {
	var s []string
	for _, n := range m.Graph.Node {
		s = append(s, n.GetOpType())
	}
	return s
}

func digest(t *testing.T, m *onnxpb.ModelProto) string {
	b, err := onnx.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))[:16]
}

func TestActivationPasses(t *testing.T) {
	dir := t.TempDir()
	orig := activationModel()
	origPath := filepath.Join(dir, "orig.onnx")
	if err := onnx.Save(orig, origPath, 0); err != nil {
		t.Fatal(err)
	}
	m := activationModel()
	counts, err := Run(onnx.ModelGraph(m), Lossless())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"RemoveIdentity": 2, "FoldConstants": 4, "FuseGelu": 1, "FuseHardSwish": 1, "FuseConvBatchNorm": 0}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("%s made %d changes, want %d (all: %v)", k, counts[k], v, counts)
		}
	}
	if got := opTypes(m); !slices.Equal(got, []string{"Gelu", "HardSwish", "Reshape"}) {
		t.Errorf("ops after passes %v", got)
	}
	// Determinism: the same input gives the same bytes.
	m2 := activationModel()
	if _, err := Run(onnx.ModelGraph(m2), Lossless()); err != nil {
		t.Fatal(err)
	}
	if digest(t, m) != digest(t, m2) {
		t.Error("two runs gave different models")
	}
	optPath := filepath.Join(dir, "opt.onnx")
	if err := onnx.Save(m, optPath, 0); err != nil {
		t.Fatal(err)
	}
	x := randomTensor([]int64{2, 8}, 1)
	compareORT(t, origPath, optPath, map[string]*tensor.Tensor{"x": x})
}

func TestConvBNOnPaddleClassifier(t *testing.T) {
	path := "../../../.cache/models/ocr-1.4.2/ch_ppocr_mobile_v2.0_cls_infer.onnx"
	if _, err := os.Stat(path); err != nil {
		t.Skip("PaddleOCR models not fetched (scripts/fetch-deps.sh)")
	}
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	before := 0
	for _, n := range m.Graph.Node {
		if n.GetOpType() == "BatchNormalization" {
			before++
		}
	}
	counts, err := Run(onnx.ModelGraph(m), Lossless())
	if err != nil {
		t.Fatal(err)
	}
	if counts["FuseConvBatchNorm"] != before || before != 35 {
		t.Errorf("folded %d of %d BatchNormalization nodes (want all 35)", counts["FuseConvBatchNorm"], before)
	}
	for _, n := range m.Graph.Node {
		if n.GetOpType() == "BatchNormalization" {
			t.Errorf("BatchNormalization %q left", n.GetName())
		}
	}
	dir := t.TempDir()
	opt := filepath.Join(dir, "opt.onnx")
	if err := onnx.Save(m, opt, 0); err != nil {
		t.Fatal(err)
	}
	compareORT(t, path, opt, map[string]*tensor.Tensor{"x": randomTensor([]int64{1, 3, 48, 192}, 2)})
}

func randomTensor(shape []int64, seed uint64) *tensor.Tensor {
	r := rand.New(rand.NewPCG(seed, 7))
	n := tensor.NumElements(shape)
	b := make([]byte, 4*n)
	for i := int64(0); i < n; i++ {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(r.NormFloat64())))
	}
	return &tensor.Tensor{DType: tensor.Float, Shape: shape, Data: b}
}

// compareORT runs both models on ONNX Runtime and requires every output to
// agree within 1e-5 relative (L2) error.
func compareORT(t *testing.T, a, b string, feed map[string]*tensor.Tensor) {
	t.Helper()
	lib := os.Getenv("OPENEAS_ORT_LIB")
	if lib == "" {
		t.Log("OPENEAS_ORT_LIB unset: skipping the ONNX Runtime equality check")
		return
	}
	if err := ort.Init(lib); err != nil {
		t.Fatal(err)
	}
	run := func(path string) map[string]*tensor.Tensor {
		s, err := ort.NewSession(path, ort.SessionOptions{})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer s.Close()
		out, err := s.Run(context.Background(), feed, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return out
	}
	ra, rb := run(a), run(b)
	for name, ta := range ra {
		tb, ok := rb[name]
		if !ok || !slices.Equal(ta.Shape, tb.Shape) {
			t.Fatalf("output %s: missing or shape differs", name)
		}
		var num, den float64
		for i := 0; i+4 <= len(ta.Data); i += 4 {
			va := float64(math.Float32frombits(binary.LittleEndian.Uint32(ta.Data[i:])))
			vb := float64(math.Float32frombits(binary.LittleEndian.Uint32(tb.Data[i:])))
			num += (va - vb) * (va - vb)
			den += va * va
		}
		if rel := math.Sqrt(num / math.Max(den, 1e-30)); rel > 1e-5 {
			t.Errorf("output %s: relative error %.3g > 1e-5", name, rel)
		} else {
			t.Logf("output %s: relative error %.3g", name, rel)
		}
	}
}

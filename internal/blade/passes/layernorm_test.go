package passes

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"github.com/openeas/openeas/internal/tensor"
)

// layerNormModel is the split-up LayerNorm a PyTorch/Paddle export writes over the last axis
// of x[2,4,8], at the given opset, with the weights in Constant nodes for opset < 11.
func layerNormModel(opset int64) *onnxpb.ModelProto {
	gamma := make([]float32, 8)
	beta := make([]float32, 8)
	for i := range gamma {
		gamma[i], beta[i] = 0.5+float32(i)/8, float32(i)/16-0.25
	}
	axes := &onnxpb.AttributeProto{Name: ptr("axes"), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: []int64{-1}}
	g := &onnxpb.GraphProto{
		Name:   ptr("ln"),
		Input:  []*onnxpb.ValueInfoProto{floatVI("x", 2, 4, 8)},
		Output: []*onnxpb.ValueInfoProto{floatVI("y", 2, 4, 8)},
		Initializer: []*onnxpb.TensorProto{onnx.Float32Tensor("two", nil, []float32{2}), onnx.Float32Tensor("eps", nil, []float32{1e-5}),
			onnx.Float32Tensor("gamma", []int64{8}, gamma), onnx.Float32Tensor("beta", []int64{8}, beta)},
		Node: []*onnxpb.NodeProto{
			node("ReduceMean", []string{"x"}, []string{"mean"}, axes),
			node("Sub", []string{"x", "mean"}, []string{"d"}),
			node("Pow", []string{"d", "two"}, []string{"sq"}),
			node("ReduceMean", []string{"sq"}, []string{"var"}, axes),
			node("Add", []string{"var", "eps"}, []string{"ve"}),
			node("Sqrt", []string{"ve"}, []string{"std"}),
			node("Div", []string{"d", "std"}, []string{"n"}),
			node("Mul", []string{"n", "gamma"}, []string{"scaled"}),
			node("Add", []string{"scaled", "beta"}, []string{"y"}),
		},
	}
	return &onnxpb.ModelProto{IrVersion: ptr(int64(8)), Graph: g, ProducerName: ptr("passes_test"),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: ptr(""), Version: ptr(opset)}}}
}

func TestFuseLayerNorm(t *testing.T) {
	for _, opset := range []int64{9, 13, 17} {
		m := layerNormModel(opset)
		n, err := FuseLayerNorm{}.Apply(onnx.ModelGraph(m))
		if err != nil || n != 1 {
			t.Fatalf("opset %d: fused %d, err %v; want 1", opset, n, err)
		}
		// Golden: one node reading x, gamma, beta with the exporter's epsilon, last axis.
		if len(m.Graph.Node) != 1 {
			t.Fatalf("opset %d: %d nodes left: %v", opset, len(m.Graph.Node), opTypes(m))
		}
		ln := m.Graph.Node[0]
		if ln.GetOpType() != "LayerNormalization" || ln.GetDomain() != "" || !slices.Equal(ln.Input, []string{"x", "gamma", "beta"}) ||
			!slices.Equal(ln.Output, []string{"y"}) || onnx.AttrInt(ln, "axis", 0) != -1 || onnx.AttrFloat(ln, "epsilon", 0) != 1e-5 {
			t.Errorf("opset %d: fused node %v", opset, ln)
		}
		dir := t.TempDir()
		a, b := filepath.Join(dir, "a.onnx"), filepath.Join(dir, "b.onnx")
		if err := onnx.Save(layerNormModel(opset), a, 0); err != nil {
			t.Fatal(err)
		}
		if err := onnx.Save(m, b, 0); err != nil {
			t.Fatal(err)
		}
		compareORT(t, a, b, map[string]*tensor.Tensor{"x": randomTensor([]int64{2, 4, 8}, uint64(opset))})
	}
}

func TestFuseLayerNormLeavesLookalikes(t *testing.T) {
	cases := map[string]func(m *onnxpb.ModelProto){
		"mean over axis 1": func(m *onnxpb.ModelProto) {
			m.Graph.Node[0].Attribute[0].Ints = []int64{1}
		},
		"power 3": func(m *onnxpb.ModelProto) {
			m.Graph.Initializer[0] = onnx.Float32Tensor("two", nil, []float32{3})
		},
		"centered value also an output": func(m *onnxpb.ModelProto) {
			m.Graph.Output = append(m.Graph.Output, floatVI("d", 2, 4, 8))
		},
		"scalar gamma": func(m *onnxpb.ModelProto) {
			m.Graph.Initializer[2] = onnx.Float32Tensor("gamma", nil, []float32{2})
		},
	}
	for name, edit := range cases {
		m := layerNormModel(13)
		edit(m)
		if n, err := (FuseLayerNorm{}).Apply(onnx.ModelGraph(m)); err != nil || n != 0 {
			t.Errorf("%s: fused %d (err %v), want 0", name, n, err)
		}
	}
}

// TestPaddleOCRPasses runs the lossless passes over the PaddleOCR classifier and recognizer:
// the spelled-out hard-swish and LayerNorm are fused (which needs the opset-9 graphs upgraded
// to 14) and ONNX Runtime gives the same outputs.
func TestPaddleOCRPasses(t *testing.T) {
	for _, tc := range []struct {
		file           string
		shape          []int64
		hardSwish, lns int
	}{
		{"ch_ppocr_mobile_v2.0_cls_infer.onnx", []int64{1, 3, 48, 192}, 18, 0},
		{"ch_PP-OCRv4_rec_infer.onnx", []int64{1, 3, 48, 320}, 28, 5},
	} {
		path := "../../../.cache/models/ocr-1.4.2/" + tc.file
		if _, err := os.Stat(path); err != nil {
			t.Skip("PaddleOCR models not fetched (scripts/fetch-deps.sh)")
		}
		m, err := onnx.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		counts, err := Run(onnx.ModelGraph(m), Lossless())
		if err != nil {
			t.Fatal(err)
		}
		if counts["FuseHardSwish"] != tc.hardSwish || counts["FuseLayerNorm"] != tc.lns {
			t.Errorf("%s: counts %v, want %d HardSwish and %d LayerNorm fusions", tc.file, counts, tc.hardSwish, tc.lns)
		}
		if v := onnx.ModelGraph(m).Opset(""); v != 14 {
			t.Errorf("%s: opset %d after the passes, want 14", tc.file, v)
		}
		opt := filepath.Join(t.TempDir(), "opt.onnx")
		if err := onnx.Save(m, opt, 0); err != nil {
			t.Fatal(err)
		}
		compareORT(t, path, opt, map[string]*tensor.Tensor{"x": randomTensor(tc.shape, 3)})
	}
}

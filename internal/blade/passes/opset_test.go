package passes

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"github.com/openeas/openeas/internal/tensor"
)

func TestUpgradeOpsetRefusesUnknownOps(t *testing.T) {
	m := layerNormModel(9)
	m.Graph.Node = append(m.Graph.Node, node("Upsample", []string{"y"}, []string{"z"}))
	before := digest(t, m)
	err := UpgradeOpset(onnx.ModelGraph(m), 13)
	if err == nil || !strings.Contains(err.Error(), "Upsample") {
		t.Fatalf("err = %v, want a refusal naming Upsample", err)
	}
	if digest(t, m) != before {
		t.Error("a refused upgrade changed the model")
	}
}

func TestUpgradeOpsetConverts(t *testing.T) {
	iattr := func(name string, v ...int64) *onnxpb.AttributeProto {
		return &onnxpb.AttributeProto{Name: ptr(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
	}
	m := layerNormModel(9)
	m.Graph.Node = append(m.Graph.Node,
		node("Clip", []string{"y"}, []string{"c"}, fattr("min", 0), fattr("max", 6)),
		node("Slice", []string{"c"}, []string{"s"}, iattr("starts", 1), iattr("ends", 3), iattr("axes", 1)),
		node("Softmax", []string{"s"}, []string{"sm"}, &onnxpb.AttributeProto{Name: ptr("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: ptr(int64(1))}),
	)
	m.Graph.Output = []*onnxpb.ValueInfoProto{floatVI("sm")}
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.onnx")
	if err := onnx.Save(m, orig, 0); err != nil {
		t.Fatal(err)
	}
	g := onnx.ModelGraph(m)
	if err := UpgradeOpset(g, 13); err != nil {
		t.Fatal(err)
	}
	if g.Opset("") != 13 {
		t.Fatalf("opset %d", g.Opset(""))
	}
	for _, n := range m.Graph.Node {
		switch n.GetOpType() {
		case "Clip", "Slice":
			if len(n.Attribute) != 0 || len(n.Input) < 3 {
				t.Errorf("%s not converted to inputs: %v", n.GetOpType(), n)
			}
		case "Softmax":
			if onnx.AttrInt(n, "axis", 0) != -1 || g.Producer(n.Input[0]).GetOpType() != "Flatten" {
				t.Errorf("old-style Softmax(axis=1) of unknown rank not wrapped in Flatten/Reshape: %v", n)
			}
		}
	}
	up := filepath.Join(dir, "up.onnx")
	if err := onnx.Save(m, up, 0); err != nil {
		t.Fatal(err)
	}
	compareORT(t, orig, up, map[string]*tensor.Tensor{"x": randomTensor([]int64{2, 4, 8}, 5)})
}

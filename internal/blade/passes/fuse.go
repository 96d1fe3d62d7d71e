package passes

import (
	"math"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }

// FuseGelu replaces the exact (Erf) GELU exporters write,
// Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5), with com.microsoft Gelu.
type FuseGelu struct{}

func (FuseGelu) Name() string { return "FuseGelu" }

func (FuseGelu) Apply(g *onnx.Graph) (int, error) {
	changed := 0
	for _, erf := range append([]*onnxpb.NodeProto{}, g.Proto.GetNode()...) {
		if !isOp(erf, "Erf") {
			continue
		}
		div := g.Producer(erf.Input[0])
		if div == nil || soleConsumer(g, div.Output[0]) != erf {
			continue
		}
		var x string
		switch {
		case isOp(div, "Div"):
			if v, ok := scalarF(g, div.Input[1]); ok && near(v, math.Sqrt2) {
				x = div.Input[0]
			}
		case isOp(div, "Mul"):
			for i := 0; i < 2; i++ {
				if v, ok := scalarF(g, div.Input[1-i]); ok && near(v, 1/math.Sqrt2) {
					x = div.Input[i]
				}
			}
		}
		if x == "" {
			continue
		}
		add := soleConsumer(g, erf.Output[0])
		if !isOp(add, "Add") {
			continue
		}
		if v, ok := scalarF(g, other(add, erf.Output[0])); !ok || v != 1 {
			continue
		}
		m1 := soleConsumer(g, add.Output[0])
		if !isOp(m1, "Mul") {
			continue
		}
		// Either Mul(x, ·) then Mul(·, 0.5), or Mul(·, 0.5) then Mul(x, ·).
		var last *onnxpb.NodeProto
		nodes := []*onnxpb.NodeProto{div, erf, add, m1}
		if other(m1, add.Output[0]) == x {
			m2 := soleConsumer(g, m1.Output[0])
			if !isOp(m2, "Mul") {
				continue
			}
			if v, ok := scalarF(g, other(m2, m1.Output[0])); !ok || v != 0.5 {
				continue
			}
			last = m2
		} else if v, ok := scalarF(g, other(m1, add.Output[0])); ok && v == 0.5 {
			m2 := soleConsumer(g, m1.Output[0])
			if !isOp(m2, "Mul") || other(m2, m1.Output[0]) != x {
				continue
			}
			last = m2
		} else {
			continue
		}
		nodes = append(nodes, last)
		gelu := &onnxpb.NodeProto{
			Name:   ptr(g.UniqueName(erf.GetName() + "_gelu")),
			OpType: ptr("Gelu"), Domain: ptr("com.microsoft"),
			Input: []string{x}, Output: []string{last.Output[0]},
		}
		g.InsertNodeAfter(last, gelu)
		g.RemoveNodes(nodes...)
		changed++
	}
	if changed > 0 && g.Opset("com.microsoft") == 0 {
		g.SetOpset("com.microsoft", 1)
	}
	if changed > 0 {
		if err := g.TopoSort(); err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// FuseHardSwish replaces Mul(x, HardSigmoid(x, alpha=1/6, beta=0.5)) with
// HardSwish(x). HardSwish exists from opset 14; older graphs are skipped,
// because raising their opset could change the meaning of other ops.
type FuseHardSwish struct{}

func (FuseHardSwish) Name() string { return "FuseHardSwish" }

func (FuseHardSwish) Apply(g *onnx.Graph) (int, error) {
	if g.Opset("") < 14 {
		return 0, nil
	}
	changed := 0
	for _, hs := range append([]*onnxpb.NodeProto{}, g.Proto.GetNode()...) {
		if !isOp(hs, "HardSigmoid") || !near(float64(onnx.AttrFloat(hs, "alpha", 0.2)), 1.0/6) || onnx.AttrFloat(hs, "beta", 0.5) != 0.5 {
			continue
		}
		x := hs.Input[0]
		mul := soleConsumer(g, hs.Output[0])
		if !isOp(mul, "Mul") || other(mul, hs.Output[0]) != x {
			continue
		}
		n := &onnxpb.NodeProto{Name: ptr(g.UniqueName(hs.GetName() + "_hardswish")), OpType: ptr("HardSwish"), Input: []string{x}, Output: []string{mul.Output[0]}}
		g.InsertNodeAfter(mul, n)
		g.RemoveNodes(hs, mul)
		changed++
	}
	return changed, nil
}

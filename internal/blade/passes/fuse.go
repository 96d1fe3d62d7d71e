package passes

import (
	"math"
	"slices"

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

// FuseHardSwish replaces the two ways exporters spell hard-swish with HardSwish(x):
// Mul(x, HardSigmoid(x, alpha=1/6, beta=0.5)) and Paddle's x·Clip(x+3, 0, 6)/6 (the final
// scaling as Div by 6 or Mul by 1/6). HardSwish exists from opset 14: older graphs are
// upgraded first when every op keeps its meaning there (see UpgradeOpset), else left alone.
type FuseHardSwish struct{}

func (FuseHardSwish) Name() string { return "FuseHardSwish" }

func (FuseHardSwish) Apply(g *onnx.Graph) (int, error) {
	if len(hardSwishMatches(g)) == 0 {
		return 0, nil
	}
	if g.Opset("") < 14 {
		if err := UpgradeOpset(g, 14); err != nil {
			return 0, nil // not an error: the graph just keeps its spelled-out form
		}
	}
	changed := 0
	for _, mt := range hardSwishMatches(g) {
		n := &onnxpb.NodeProto{Name: ptr(g.UniqueName(mt.nodes[0].GetName() + "_hardswish")), OpType: ptr("HardSwish"), Input: []string{mt.x}, Output: []string{mt.out}}
		g.InsertNodeAfter(mt.nodes[len(mt.nodes)-1], n)
		g.RemoveNodes(mt.nodes...)
		changed++
	}
	if changed > 0 {
		if err := g.TopoSort(); err != nil {
			return changed, err
		}
	}
	return changed, nil
}

type hardSwishMatch struct {
	x, out string
	nodes  []*onnxpb.NodeProto // last one produces out
}

// hardSwishMatches finds the hard-swish spellings, without changing the graph.
func hardSwishMatches(g *onnx.Graph) []hardSwishMatch {
	var out []hardSwishMatch
	used := map[*onnxpb.NodeProto]bool{}
	for _, n := range g.Proto.GetNode() {
		var mt *hardSwishMatch
		switch {
		case isOp(n, "HardSigmoid"):
			mt = matchHardSigmoidMul(g, n)
		case isOp(n, "Clip"):
			mt = matchClipHardSwish(g, n)
		}
		if mt == nil || slices.ContainsFunc(mt.nodes, func(n *onnxpb.NodeProto) bool { return used[n] }) {
			continue
		}
		for _, m := range mt.nodes {
			used[m] = true
		}
		out = append(out, *mt)
	}
	return out
}

func matchHardSigmoidMul(g *onnx.Graph, hs *onnxpb.NodeProto) *hardSwishMatch {
	if !near(float64(onnx.AttrFloat(hs, "alpha", 0.2)), 1.0/6) || onnx.AttrFloat(hs, "beta", 0.5) != 0.5 {
		return nil
	}
	x := hs.Input[0]
	mul := soleConsumer(g, hs.Output[0])
	if !isOp(mul, "Mul") || other(mul, hs.Output[0]) != x {
		return nil
	}
	return &hardSwishMatch{x: x, out: mul.Output[0], nodes: []*onnxpb.NodeProto{hs, mul}}
}

// clipBounds returns a Clip's constant bounds in either form (attributes before opset 11,
// inputs after).
func clipBounds(g *onnx.Graph, n *onnxpb.NodeProto) (lo, hi float64, ok bool) {
	lo, hi = math.Inf(-1), math.Inf(1)
	if g.Opset("") < 11 {
		return float64(onnx.AttrFloat(n, "min", float32(lo))), float64(onnx.AttrFloat(n, "max", float32(hi))), true
	}
	if len(n.Input) > 1 && n.Input[1] != "" {
		if lo, ok = scalarF(g, n.Input[1]); !ok {
			return 0, 0, false
		}
	}
	if len(n.Input) > 2 && n.Input[2] != "" {
		if hi, ok = scalarF(g, n.Input[2]); !ok {
			return 0, 0, false
		}
	}
	return lo, hi, true
}

// matchClipHardSwish matches Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6) and its Mul-by-1/6 and
// operand-order variants.
func matchClipHardSwish(g *onnx.Graph, clip *onnxpb.NodeProto) *hardSwishMatch {
	if lo, hi, ok := clipBounds(g, clip); !ok || lo != 0 || hi != 6 {
		return nil
	}
	add := g.Producer(clip.Input[0])
	if !isOp(add, "Add") || soleConsumer(g, add.Output[0]) != clip {
		return nil
	}
	var x string
	for i := 0; i < 2; i++ {
		if v, ok := scalarF(g, add.Input[1-i]); ok && v == 3 {
			x = add.Input[i]
		}
	}
	if x == "" {
		return nil
	}
	mul := soleConsumer(g, clip.Output[0])
	if !isOp(mul, "Mul") || other(mul, clip.Output[0]) != x {
		return nil
	}
	last := soleConsumer(g, mul.Output[0])
	switch {
	case isOp(last, "Div") && last.Input[0] == mul.Output[0]:
		if v, ok := scalarF(g, last.Input[1]); !ok || v != 6 {
			return nil
		}
	case isOp(last, "Mul"):
		if v, ok := scalarF(g, other(last, mul.Output[0])); !ok || !near(v, 1.0/6) {
			return nil
		}
	default:
		return nil
	}
	return &hardSwishMatch{x: x, out: last.Output[0], nodes: []*onnxpb.NodeProto{add, clip, mul, last}}
}

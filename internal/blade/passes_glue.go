package blade

import "github.com/openeas/openeas/internal/blade/onnx"

// graphPass is a lossless rewrite (the passes package's Pass contract).
type graphPass interface {
	Name() string
	Apply(*onnx.Graph) (int, error)
}

type funcPass struct {
	name string
	fn   func(*onnx.Graph) (int, error)
}

func (p funcPass) Name() string                     { return p.name }
func (p funcPass) Apply(g *onnx.Graph) (int, error) { return p.fn(g) }

// losslessPasses lists the graph passes o1 applies, in order.
func losslessPasses() []graphPass {
	return []graphPass{
		funcPass{"RemoveDeadNodes", func(g *onnx.Graph) (int, error) { return g.RemoveDeadNodes(), nil }},
		funcPass{"RemoveUnusedInitializers", func(g *onnx.Graph) (int, error) { return g.RemoveUnusedInitializers(), nil }},
	}
}

package blade

import (
	"fmt"
	"maps"
	"slices"

	"github.com/openeas/openeas/internal/blade/onnx"
	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"github.com/openeas/openeas/internal/blade/passes"
)

// applyPasses runs the lossless graph passes in place and returns "Name(count)" for each
// pass that changed something.
func applyPasses(m *onnxpb.ModelProto) ([]string, error) {
	g := onnx.ModelGraph(m)
	counts, err := passes.Run(g, passes.Lossless())
	if err != nil {
		return nil, err
	}
	g.RemoveUnusedInitializers()
	var applied []string
	for _, name := range slices.Sorted(maps.Keys(counts)) {
		if counts[name] > 0 {
			applied = append(applied, fmt.Sprintf("%s(%d)", name, counts[name]))
		}
	}
	return applied, nil
}

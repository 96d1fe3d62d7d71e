package blade

import (
	"fmt"
	"path/filepath"

	"github.com/openeas/openeas/internal/blade/auxdata"
	"github.com/openeas/openeas/internal/tensor"
)

// loadSamples reads the test data, or synthesizes inputs when there is none.
func (op *optimizer) loadSamples() ([]Sample, error) {
	o := op.o
	if o.TestData != "" {
		op.dataSrc = "test_data"
		return readAux(o.TestData, op.sig, "test_data")
	}
	op.dataSrc = "synthetic"
	shapes, ranges, err := parseSets(o.InputShapes, o.InputRanges)
	if err != nil {
		return nil, err
	}
	n := o.Samples
	if len(shapes) > n {
		n = len(shapes)
	}
	samples, notes, err := synthesize(op.sig, shapes, ranges, n)
	if err != nil {
		return nil, fmt.Errorf("blade: synthesize inputs: %w", err)
	}
	op.notes = append(op.notes, "verified on synthetic inputs made from the model's signature (no test_data given)")
	for _, n := range notes {
		op.notes = append(op.notes, n+" (give input_shapes for real shapes)")
	}
	return samples, nil
}

// readAux reads an auxiliary data file and binds it to the signature.
func readAux(path string, sig []tensor.Info, what string) ([]Sample, error) {
	ds, err := auxdata.Read(path)
	if err != nil {
		return nil, fmt.Errorf("blade: %s %s: %w", what, filepath.Base(path), err)
	}
	feeds, err := ds.Bind(sig)
	if err != nil {
		return nil, fmt.Errorf("blade: %s %s: %w", what, filepath.Base(path), err)
	}
	if len(feeds) == 0 {
		return nil, fmt.Errorf("blade: %s %s holds no samples", what, filepath.Base(path))
	}
	return feeds, nil
}

func parseSets(shapeSets, rangeSets [][]string) ([][]int64Shape, [][]Range, error) {
	shapes := make([][]int64Shape, len(shapeSets))
	for i, set := range shapeSets {
		for _, s := range set {
			v, err := ParseShape(s)
			if err != nil {
				return nil, nil, fmt.Errorf("blade: input_shapes[%d]: %w", i, err)
			}
			shapes[i] = append(shapes[i], v)
		}
	}
	ranges := make([][]Range, len(rangeSets))
	for i, set := range rangeSets {
		for _, s := range set {
			v, err := ParseRange(s)
			if err != nil {
				return nil, nil, fmt.Errorf("blade: input_ranges[%d]: %w", i, err)
			}
			ranges[i] = append(ranges[i], v)
		}
	}
	return shapes, ranges, nil
}

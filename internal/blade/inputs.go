package blade

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/openeas/openeas/internal/tensor"
)

// Sample is one feed: a tensor per input name.
type Sample = map[string]*tensor.Tensor

// defaultDynamicDim is the size synthesized for a dynamic non-leading dimension when no
// input_shapes say otherwise; leading (batch) dimensions get 1.
const defaultDynamicDim = 64

// synthesize makes n samples for sig. Each sample takes its shapes from input_shapes set
// i%len(sets) (dynamic dims filled as above when absent) and its values uniformly from the
// matching input_ranges set (default [0,1] for floats, [0,2) for integers). The random source
// is seeded, so the same options give the same inputs.
func synthesize(sig []tensor.Info, shapes [][]int64Shape, ranges [][]Range, n int) ([]Sample, []string, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	var notes []string
	samples := make([]Sample, n)
	for s := range n {
		sample := Sample{}
		for k, in := range sig {
			var shape []int64
			if len(shapes) > 0 {
				shape = shapes[s%len(shapes)][k]
				if !in.Accepts(shape) {
					return nil, nil, fmt.Errorf("input_shapes[%d][%d]: shape %v does not fit input %s %s", s%len(shapes), k, shape, in.Name, tensor.ShapeString(in.Shape))
				}
			} else {
				shape = make([]int64, len(in.Shape))
				for d, v := range in.Shape {
					switch {
					case v >= 0:
						shape[d] = v
					case d == 0:
						shape[d] = 1
					default:
						shape[d] = defaultDynamicDim
					}
				}
				if s == 0 && slicesContainNeg(in.Shape) {
					notes = append(notes, fmt.Sprintf("input %s %s synthesized as %v", in.Name, tensor.ShapeString(in.Shape), shape))
				}
			}
			r, hasRange := Range{}, false
			if len(ranges) > 0 {
				r, hasRange = ranges[s%len(ranges)][k], true
			}
			t, err := randomTensor(rng, in.DType, shape, r, hasRange)
			if err != nil {
				return nil, nil, fmt.Errorf("input %s: %w", in.Name, err)
			}
			sample[in.Name] = t
		}
		samples[s] = sample
	}
	return samples, notes, nil
}

// int64Shape is a parsed shape; a named type keeps synthesize's signature readable.
type int64Shape = []int64

func slicesContainNeg(s []int64) bool {
	for _, v := range s {
		if v < 0 {
			return true
		}
	}
	return false
}

func randomTensor(rng *rand.Rand, dt tensor.DType, shape []int64, r Range, hasRange bool) (*tensor.Tensor, error) {
	n := tensor.NumElements(shape)
	if n > 1<<28 {
		return nil, fmt.Errorf("shape %v is too large to synthesize (%d elements)", shape, n)
	}
	t := &tensor.Tensor{DType: dt, Shape: shape}
	le := binary.LittleEndian
	isFloat := dt == tensor.Float || dt == tensor.Double || dt == tensor.Float16 || dt == tensor.BFloat16
	if !hasRange {
		r = Range{0, 1}
		if !isFloat {
			r = Range{0, 1} // integers: 0 or 1, valid for masks, ids and indices alike
		}
	}
	val := func() float64 {
		if isFloat {
			return r.Lo + rng.Float64()*(r.Hi-r.Lo)
		}
		lo, hi := math.Ceil(r.Lo), math.Floor(r.Hi)
		if hi < lo {
			return lo
		}
		return lo + float64(rng.IntN(int(hi-lo)+1))
	}
	switch dt {
	case tensor.String:
		t.Strings = make([]string, n)
		for i := range t.Strings {
			t.Strings[i] = strings.Repeat("a", 1+rng.IntN(8))
		}
		return t, nil
	case tensor.Bool:
		t.Data = make([]byte, n)
		for i := range t.Data {
			t.Data[i] = byte(rng.IntN(2))
		}
		return t, nil
	}
	size := dt.Size()
	if size == 0 {
		return nil, fmt.Errorf("cannot synthesize dtype %s", dt)
	}
	t.Data = make([]byte, int(n)*size)
	for i := range int(n) {
		v := val()
		b := t.Data[i*size:]
		switch dt {
		case tensor.Float:
			le.PutUint32(b, math.Float32bits(float32(v)))
		case tensor.Double:
			le.PutUint64(b, math.Float64bits(v))
		case tensor.Float16:
			le.PutUint16(b, tensor.Float32ToFloat16(float32(v)))
		case tensor.BFloat16:
			le.PutUint16(b, uint16(math.Float32bits(float32(v))>>16))
		case tensor.Int8, tensor.Uint8:
			b[0] = byte(int64(v))
		case tensor.Int16, tensor.Uint16:
			le.PutUint16(b, uint16(int64(v)))
		case tensor.Int32, tensor.Uint32:
			le.PutUint32(b, uint32(int64(v)))
		case tensor.Int64, tensor.Uint64:
			le.PutUint64(b, uint64(int64(v)))
		default:
			return nil, fmt.Errorf("cannot synthesize dtype %s", dt)
		}
	}
	return t, nil
}

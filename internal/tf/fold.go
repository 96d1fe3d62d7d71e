package tf

import (
	"math"
	"slices"

	"github.com/openeas/openeas/internal/tensor"
	"github.com/openeas/openeas/internal/tf/tfpb"
)

// Constant folding for the small integer computations frozen graphs carry (shapes, axes,
// slice bounds): results that later ops need as attributes. Float results are rounded to
// float32 as TF computes them.

const maxFold = 1 << 16 // elements; larger computations are left to the runtime

func roundTo(dt tfpb.DataType, x float64) float64 {
	switch dt {
	case tfpb.DataType_DT_FLOAT:
		return float64(float32(x))
	case tfpb.DataType_DT_HALF:
		return float64(tensor.Float16ToFloat32(tensor.Float32ToFloat16(float32(x))))
	case tfpb.DataType_DT_DOUBLE:
		return x
	case tfpb.DataType_DT_BOOL:
		return b2f(x != 0)
	}
	return math.Trunc(x)
}

func castValues(v []float64, to tfpb.DataType) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		switch to {
		case tfpb.DataType_DT_INT32:
			out[i] = float64(int32(x))
		case tfpb.DataType_DT_UINT8:
			out[i] = float64(uint8(int64(x)))
		default:
			out[i] = roundTo(to, x)
		}
	}
	return out
}

func foldUnary(op string, x *constant) (*constant, bool) {
	if len(x.v) > maxFold {
		return nil, false
	}
	f := map[string]func(float64) float64{
		"Neg": func(a float64) float64 { return -a }, "Floor": math.Floor, "Ceil": math.Ceil,
		"Abs": math.Abs, "Sqrt": math.Sqrt, "Exp": math.Exp, "Log": math.Log,
	}[op]
	if f == nil {
		return nil, false
	}
	out := &constant{dtype: x.dtype, shape: x.shape, v: make([]float64, len(x.v))}
	for i, a := range x.v {
		out.v[i] = roundTo(x.dtype, f(a))
	}
	return out, true
}

// broadcastIndex maps an output index to input indices for NumPy broadcasting of two shapes.
func broadcastShape(a, b []int64) ([]int64, bool) {
	r := max(len(a), len(b))
	out := make([]int64, r)
	for i := 0; i < r; i++ {
		da, db := int64(1), int64(1)
		if j := i - (r - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (r - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db || db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, false
		}
	}
	return out, true
}

func bcastIndex(o int64, out, in []int64) int64 {
	os, is := strides(out), strides(in)
	off := len(out) - len(in)
	idx := int64(0)
	for i := range out {
		d := (o / os[i]) % out[i]
		if j := i - off; j >= 0 && in[j] != 1 {
			idx += d * is[j]
		}
	}
	return idx
}

func foldBinary(op string, a, b *constant) (*constant, bool) {
	shape, ok := broadcastShape(a.shape, b.shape)
	if !ok || numel(shape) > maxFold {
		return nil, false
	}
	isInt := !isFloat(a.dtype)
	var f func(x, y float64) float64
	switch op {
	case "Add", "AddV2":
		f = func(x, y float64) float64 { return x + y }
	case "Sub":
		f = func(x, y float64) float64 { return x - y }
	case "Mul":
		f = func(x, y float64) float64 { return x * y }
	case "RealDiv", "Div":
		if isInt {
			f = func(x, y float64) float64 { return math.Trunc(x / y) }
		} else {
			f = func(x, y float64) float64 { return x / y }
		}
	case "FloorDiv":
		f = func(x, y float64) float64 { return math.Floor(x / y) }
	case "Maximum":
		f = math.Max
	case "Minimum":
		f = math.Min
	default:
		return nil, false
	}
	out := &constant{dtype: a.dtype, shape: shape, v: make([]float64, numel(shape))}
	for i := range out.v {
		x, y := a.v[bcastIndex(int64(i), shape, a.shape)], b.v[bcastIndex(int64(i), shape, b.shape)]
		if isInt && (op == "FloorDiv" || op == "RealDiv" || op == "Div") && y == 0 {
			return nil, false
		}
		out.v[i] = roundTo(a.dtype, f(x, y))
	}
	return out, true
}

func foldReshape(x *constant, shape []int64) (*constant, bool) {
	shape = slices.Clone(shape)
	n, unknown := int64(1), -1
	for i, d := range shape {
		switch {
		case d == -1 && unknown < 0:
			unknown = i
		case d < 0:
			return nil, false
		default:
			n *= d
		}
	}
	total := int64(len(x.v))
	if unknown >= 0 {
		if n == 0 || total%n != 0 {
			return nil, false
		}
		shape[unknown] = total / n
	} else if n != total {
		return nil, false
	}
	return x.reshape(shape), true
}

// foldConcat concatenates constants along axis.
func foldConcat(vs []*value, axis int) (*constant, bool) {
	first := vs[0].c
	if axis < 0 || axis >= len(first.shape) {
		return nil, false
	}
	shape := slices.Clone(first.shape)
	shape[axis] = 0
	for _, v := range vs {
		if len(v.c.shape) != len(shape) {
			return nil, false
		}
		shape[axis] += v.c.shape[axis]
	}
	if numel(shape) > maxFold {
		return nil, false
	}
	outer := numel(shape[:axis])
	out := &constant{dtype: first.dtype, shape: shape}
	for o := int64(0); o < outer; o++ {
		for _, v := range vs {
			chunk := numel(v.c.shape[axis:])
			out.v = append(out.v, v.c.v[o*chunk:(o+1)*chunk]...)
		}
	}
	return out, true
}

// foldSlice1D slices a 1-D constant (one axis at most), shrinking to a scalar if asked.
func foldSlice1D(x *constant, starts, ends, steps []int64, shrink bool) (*constant, bool) {
	n := int64(len(x.v))
	if len(starts) == 0 {
		return x, true
	}
	b, e, s := starts[0], ends[0], steps[0]
	if s == 0 {
		return nil, false
	}
	clamp := func(i int64, lo, hi int64) int64 {
		if i < 0 {
			i += n
		}
		return min(max(i, lo), hi)
	}
	var v []float64
	if s > 0 {
		b, e = clamp(b, 0, n), clamp(min(e, n), 0, n)
		for i := b; i < e; i += s {
			v = append(v, x.v[i])
		}
	} else {
		if b == math.MaxInt64 {
			b = n - 1
		}
		b = clamp(b, -1, n-1)
		if e == math.MinInt64 {
			e = -1
		} else {
			e = clamp(e, -1, n-1)
		}
		for i := b; i > e; i += s {
			v = append(v, x.v[i])
		}
	}
	if shrink {
		if len(v) != 1 {
			return nil, false
		}
		return &constant{dtype: x.dtype, shape: []int64{}, v: v}, true
	}
	return &constant{dtype: x.dtype, shape: []int64{int64(len(v))}, v: v}, true
}

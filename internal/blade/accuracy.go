package blade

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/openeas/openeas/internal/blade/report"
	"github.com/openeas/openeas/internal/tensor"
)

// outputCompare accumulates the worst figures of one output over all samples.
type outputCompare struct {
	name        string
	classScores bool
	maxRel      float64
	minCos      float64
	agree, rows int
	err         string // a structural mismatch (dtype, shape, missing output)
}

func newOutputCompare(name string, classScores bool) *outputCompare {
	return &outputCompare{name: name, classScores: classScores, minCos: 1}
}

// add compares one sample's candidate output with its reference.
func (c *outputCompare) add(got, ref *tensor.Tensor) {
	if c.err != "" {
		return
	}
	if got == nil {
		c.err = "output missing"
		return
	}
	if got.DType != ref.DType || !slices.Equal(got.Shape, ref.Shape) {
		c.err = fmt.Sprintf("%s%v, reference %s%v", got.DType, got.Shape, ref.DType, ref.Shape)
		return
	}
	if ref.DType == tensor.String {
		if !slices.Equal(got.Strings, ref.Strings) {
			c.maxRel, c.minCos = math.Inf(1), 0
		}
		return
	}
	a, okA := floats(got)
	b, okB := floats(ref)
	if !okA || !okB {
		c.err = fmt.Sprintf("cannot compare dtype %s", ref.DType)
		return
	}
	var diff, nb, na, dot float64
	for i := range a {
		if math.IsNaN(a[i]) != math.IsNaN(b[i]) {
			diff = math.Inf(1)
			continue
		}
		if math.IsNaN(b[i]) || (math.IsInf(b[i], 0) && a[i] == b[i]) {
			continue
		}
		d := a[i] - b[i]
		diff += d * d
		na += a[i] * a[i]
		nb += b[i] * b[i]
		dot += a[i] * b[i]
	}
	rel := 0.0
	switch {
	case nb > 0:
		rel = math.Sqrt(diff) / math.Sqrt(nb)
	case diff > 0:
		rel = math.Inf(1)
	}
	cos := 1.0
	if na > 0 && nb > 0 {
		cos = dot / math.Sqrt(na*nb)
	} else if na != nb {
		cos = 0
	}
	c.maxRel = max(c.maxRel, rel)
	c.minCos = min(c.minCos, cos)
	if c.classScores && len(ref.Shape) > 0 {
		n := int(ref.Shape[len(ref.Shape)-1])
		for off := 0; n > 1 && off+n <= len(b); off += n {
			c.rows++
			if sameTop1(a[off:off+n], b[off:off+n]) {
				c.agree++
			}
		}
	}
}

// sameTop1 reports whether the candidate's argmax is also a top score of the reference row
// (ties in the reference within 1e-6 relative count as agreement).
func sameTop1(got, ref []float64) bool {
	ga, ra := argmax(got), argmax(ref)
	if ga == ra {
		return true
	}
	return ref[ra]-ref[ga] <= 1e-6*math.Max(math.Abs(ref[ra]), 1e-30)
}

func argmax(v []float64) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

func (c *outputCompare) result() report.OutputAccuracy {
	r := report.OutputAccuracy{Output: c.name, MaxRelativeError: c.maxRel, MinCosine: c.minCos, Top1Agreement: -1}
	if c.err != "" {
		r.MaxRelativeError, r.MinCosine = math.Inf(1), 0
	}
	if c.rows > 0 {
		r.Top1Agreement = float64(c.agree) / float64(c.rows)
	}
	return r
}

// within reports whether the accumulated figures fit the budget for this level, and why not.
func (c *outputCompare) within(level string, b AccuracyBudget) (bool, string) {
	if c.err != "" {
		return false, fmt.Sprintf("output %s: %s", c.name, c.err)
	}
	if level == LevelO1 {
		if c.maxRel > b.MaxRelativeError || math.IsNaN(c.maxRel) {
			return false, fmt.Sprintf("output %s: relative error %.2e > %.0e", c.name, c.maxRel, b.MaxRelativeError)
		}
	} else if c.minCos < b.MinCosine || math.IsNaN(c.minCos) {
		return false, fmt.Sprintf("output %s: cosine %.5f < %.4f", c.name, c.minCos, b.MinCosine)
	}
	if c.rows > 0 {
		if agree := float64(c.agree) / float64(c.rows); agree < b.MinTop1Agreement {
			return false, fmt.Sprintf("output %s: top-1 agreement %.2f%% < %.2f%%", c.name, 100*agree, 100*b.MinTop1Agreement)
		}
	}
	return true, ""
}

// floats widens a numeric tensor to float64 values.
func floats(t *tensor.Tensor) ([]float64, bool) {
	n := len(t.Data) / max(t.DType.Size(), 1)
	out := make([]float64, n)
	d := t.Data
	le := binary.LittleEndian
	switch t.DType {
	case tensor.Float:
		for i := range out {
			out[i] = float64(math.Float32frombits(le.Uint32(d[4*i:])))
		}
	case tensor.Double:
		for i := range out {
			out[i] = math.Float64frombits(le.Uint64(d[8*i:]))
		}
	case tensor.Float16:
		for i := range out {
			out[i] = float64(tensor.Float16ToFloat32(le.Uint16(d[2*i:])))
		}
	case tensor.BFloat16:
		for i := range out {
			out[i] = float64(math.Float32frombits(uint32(le.Uint16(d[2*i:])) << 16))
		}
	case tensor.Int8:
		for i := range out {
			out[i] = float64(int8(d[i]))
		}
	case tensor.Uint8, tensor.Bool:
		for i := range out {
			out[i] = float64(d[i])
		}
	case tensor.Int16:
		for i := range out {
			out[i] = float64(int16(le.Uint16(d[2*i:])))
		}
	case tensor.Uint16:
		for i := range out {
			out[i] = float64(le.Uint16(d[2*i:]))
		}
	case tensor.Int32:
		for i := range out {
			out[i] = float64(int32(le.Uint32(d[4*i:])))
		}
	case tensor.Uint32:
		for i := range out {
			out[i] = float64(le.Uint32(d[4*i:]))
		}
	case tensor.Int64:
		for i := range out {
			out[i] = float64(int64(le.Uint64(d[8*i:])))
		}
	case tensor.Uint64:
		for i := range out {
			out[i] = float64(le.Uint64(d[8*i:]))
		}
	default:
		return nil, false
	}
	return out, true
}

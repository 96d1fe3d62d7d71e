package blade

import (
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
	a, okA := got.Float64s()
	b, okB := ref.Float64s()
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

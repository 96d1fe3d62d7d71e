package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/openeas/openeas/internal/tensor"
)

// Range is a closed interval of activation values.
type Range struct{ Lo, Hi float64 }

// Union widens r to cover o.
func (r Range) Union(o Range) Range { return Range{math.Min(r.Lo, o.Lo), math.Max(r.Hi, o.Hi)} }

// histBins is the resolution of the percentile histograms.
const histBins = 2048

// tensorStats is what calibration keeps for one activation.
type tensorStats struct {
	lo, hi  float64
	chanSum []float64 // per channel (axis 1 of rank ≥ 3, last axis of rank 2): sum of values
	chanN   int64     // values per channel seen
	hist    []int64   // over [histLo, histHi], filled in the second pass
	histLo  float64
	histHi  float64
	seen    bool
}

// Collector accumulates activation statistics over calibration samples: min/max in a first
// pass (Add), and, for percentile ranges, a histogram over that min/max in a second pass
// (AddHistogram). Values that are not float32 are ignored.
type Collector struct {
	stats map[string]*tensorStats
}

// NewCollector returns an empty collector.
func NewCollector() *Collector { return &Collector{stats: map[string]*tensorStats{}} }

func float32s(t *tensor.Tensor) ([]float32, bool) {
	if t == nil || t.DType != tensor.Float {
		return nil, false
	}
	n := len(t.Data) / 4
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, true
}

// channelAxis is the axis whose per-channel means bias correction needs: 1 for NCHW-like
// tensors (Conv inputs), the last one for [rows, features] and [batch, seq, features].
func channelAxis(shape []int64) int {
	switch {
	case len(shape) >= 4:
		return 1
	case len(shape) >= 1:
		return len(shape) - 1
	}
	return -1
}

// Add records one sample's value of an activation (min, max and per-channel sums).
func (c *Collector) Add(name string, t *tensor.Tensor) {
	v, ok := float32s(t)
	if !ok || len(v) == 0 {
		return
	}
	s := c.stats[name]
	if s == nil {
		s = &tensorStats{lo: math.Inf(1), hi: math.Inf(-1)}
		c.stats[name] = s
	}
	s.seen = true
	for _, x := range v {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		s.lo = math.Min(s.lo, f)
		s.hi = math.Max(s.hi, f)
	}
	ax := channelAxis(t.Shape)
	if ax < 0 {
		return
	}
	ch := int(t.Shape[ax])
	inner := 1
	for _, d := range t.Shape[ax+1:] {
		inner *= int(d)
	}
	if ch == 0 || inner == 0 {
		return
	}
	if s.chanSum == nil {
		s.chanSum = make([]float64, ch)
	}
	if len(s.chanSum) != ch {
		return // the channel count varies between samples: no means for this tensor
	}
	for i, x := range v {
		s.chanSum[(i/inner)%ch] += float64(x)
	}
	s.chanN += int64(len(v) / ch)
}

// AddHistogram records one sample's values into the histogram over the min/max range found by
// Add. Call it only after every sample went through Add.
func (c *Collector) AddHistogram(name string, t *tensor.Tensor) {
	s := c.stats[name]
	v, ok := float32s(t)
	if s == nil || !ok || !(s.hi > s.lo) {
		return
	}
	if s.hist == nil {
		s.hist, s.histLo, s.histHi = make([]int64, histBins), s.lo, s.hi
	}
	w := (s.histHi - s.histLo) / histBins
	for _, x := range v {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		b := int((f - s.histLo) / w)
		s.hist[min(max(b, 0), histBins-1)]++
	}
}

// Names lists the activations seen, sorted.
func (c *Collector) Names() []string {
	var out []string
	for n, s := range c.stats {
		if s.seen {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Range returns an activation's calibrated range: min/max, or, when percentile is in (0, 100)
// and histograms were collected, the interval that cuts (100 − percentile)/2 percent of the
// values off each tail.
func (c *Collector) Range(name string, percentile float64) (Range, bool) {
	s := c.stats[name]
	if s == nil || !s.seen || math.IsInf(s.lo, 0) {
		return Range{}, false
	}
	r := Range{s.lo, s.hi}
	if percentile <= 0 || percentile >= 100 || s.hist == nil {
		return r, true
	}
	var total int64
	for _, n := range s.hist {
		total += n
	}
	cut := int64(float64(total) * (100 - percentile) / 200)
	w := (s.histHi - s.histLo) / histBins
	lo, hi := 0, histBins-1
	for acc := s.hist[0]; acc <= cut && lo < histBins-1; acc += s.hist[lo] {
		lo++
	}
	for acc := s.hist[histBins-1]; acc <= cut && hi > 0; acc += s.hist[hi] {
		hi--
	}
	if lo > hi {
		return r, true
	}
	return Range{math.Max(s.lo, s.histLo+float64(lo)*w), math.Min(s.hi, s.histLo+float64(hi+1)*w)}, true
}

// ChannelMeans returns an activation's per-channel means (see channelAxis), or nil.
func (c *Collector) ChannelMeans(name string) []float64 {
	s := c.stats[name]
	if s == nil || s.chanN == 0 {
		return nil
	}
	out := make([]float64, len(s.chanSum))
	for i, v := range s.chanSum {
		out[i] = v / float64(s.chanN)
	}
	return out
}

// Calibration is what the static quantizer needs from calibration: a range per activation and
// the per-channel means used by bias correction.
type Calibration struct {
	Ranges map[string]Range
	Means  map[string][]float64
}

// Calibration turns the collected statistics into ranges (see Range) and means; seed ranges
// (graph inputs with user-given bounds) are merged in by union.
func (c *Collector) Calibration(percentile float64, seed map[string]Range) (*Calibration, error) {
	if percentile < 0 || percentile > 100 {
		return nil, fmt.Errorf("quant: percentile %g: expected a value in (0, 100], or 0 for min/max", percentile)
	}
	cal := &Calibration{Ranges: map[string]Range{}, Means: map[string][]float64{}}
	for _, n := range c.Names() {
		if r, ok := c.Range(n, percentile); ok {
			cal.Ranges[n] = r
		}
		if m := c.ChannelMeans(n); m != nil {
			cal.Means[n] = m
		}
	}
	for n, r := range seed {
		if have, ok := cal.Ranges[n]; ok {
			r = r.Union(have)
		}
		cal.Ranges[n] = r
	}
	return cal, nil
}

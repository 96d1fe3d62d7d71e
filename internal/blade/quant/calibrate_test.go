package quant

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"

	"github.com/openeas/openeas/internal/tensor"
)

func f32Tensor(shape []int64, v ...float32) *tensor.Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return &tensor.Tensor{DType: tensor.Float, Shape: shape, Data: b}
}

func TestCollectorRangesAndMeans(t *testing.T) {
	c := NewCollector()
	// 1000 values in [0, 1) plus one outlier at 100, over two samples; channel axis 1.
	var a, b []float32
	for i := range 500 {
		a = append(a, float32(i)/1000)
		b = append(b, float32(500+i)/1000)
	}
	b[499] = 100
	s1, s2 := f32Tensor([]int64{1, 2, 250, 1}, a...), f32Tensor([]int64{1, 2, 250, 1}, b...)
	for _, s := range []*tensor.Tensor{s1, s2} {
		c.Add("x", s)
	}
	for _, s := range []*tensor.Tensor{s1, s2} {
		c.AddHistogram("x", s)
	}
	if r, _ := c.Range("x", 0); r.Lo != 0 || r.Hi != 100 {
		t.Errorf("min/max range %v, want [0, 100]", r)
	}
	if r, _ := c.Range("x", 99.8); r.Hi > 1.1 || r.Lo > 0.1 {
		t.Errorf("99.8th percentile range %v should cut the outlier", r)
	}
	m := c.ChannelMeans("x")
	if len(m) != 2 || math.Abs(m[0]-0.3745) > 1e-3 {
		t.Errorf("channel means %v", m)
	}
	cal, err := c.Calibration(0, map[string]Range{"x": {-5, 1}, "y": {0, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if cal.Ranges["x"] != (Range{-5, 100}) || cal.Ranges["y"] != (Range{0, 2}) {
		t.Errorf("seeded ranges %v", cal.Ranges)
	}
	if _, err := c.Calibration(101, nil); err == nil {
		t.Error("percentile 101 accepted")
	}
}

func TestActivationParams(t *testing.T) {
	for _, tc := range []struct {
		r    Range
		i8   bool
		zp   int32
		zero bool // 0 maps exactly onto the zero point
	}{
		{Range{0, 6}, false, 0, true},
		{Range{-1, 1}, false, 128, true},
		{Range{2, 4}, false, 0, true}, // widened to include 0
		{Range{0, 6}, true, -128, true},
		{Range{0, 0}, false, 0, true},
	} {
		p := activationParams(tc.r, tc.i8)
		if p.zp != tc.zp || !(p.scale > 0) {
			t.Errorf("%v int8=%v: %+v, want zero point %d", tc.r, tc.i8, p, tc.zp)
		}
	}
}

func TestRankBySensitivity(t *testing.T) {
	targets := []Target{
		{Node: "a", Inputs: []string{"x"}, Output: "ya"},
		{Node: "b", Inputs: []string{"ya"}, Output: "yb"},
		{Node: "c", Inputs: []string{"yb"}, Output: "yc", WeightError: 0.5},
	}
	// b's output error is mostly inherited from a: a is blamed first.
	errs := map[string]float64{"ya": 0.10, "yb": 0.12}
	got := RankBySensitivity(targets, errs)
	var order []string
	for _, t := range got {
		order = append(order, t.Node)
	}
	if !slices.Equal(order, []string{"c", "a", "b"}) {
		t.Errorf("order %v (c unmeasured falls back to its weight error 0.5)", order)
	}
}

package conformance

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/blade/auxdata"
	"github.com/openeas/openeas/internal/tensor"
)

func f32(shape []int64, vs ...float32) *tensor.Tensor {
	t := &tensor.Tensor{DType: tensor.Float, Shape: shape, Data: make([]byte, 4*len(vs))}
	for i, v := range vs {
		binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(v))
	}
	return t
}

// TestWriteNpzReadsBackInBlade: what the conformance run hands Blade as test data is read by
// Blade's own reader as the same tensors, for every dtype the suite uses.
func TestWriteNpzReadsBackInBlade(t *testing.T) {
	feeds := map[string]*tensor.Tensor{
		"x":      f32([]int64{2, 2}, 1, -2, 3.5, float32(math.NaN())),
		"scalar": f32([]int64{}, 7),
		"ids":    {DType: tensor.Int64, Shape: []int64{3}, Data: []byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255}},
		"mask":   {DType: tensor.Bool, Shape: []int64{2}, Data: []byte{1, 0}},
		"text":   {DType: tensor.String, Shape: []int64{3}, Strings: []string{"monday", "", "größe"}},
		"empty":  {DType: tensor.Float, Shape: []int64{0, 3}, Data: []byte{}},
	}
	path := filepath.Join(t.TempDir(), "feeds.npz")
	if err := WriteNpz(path, feeds); err != nil {
		t.Fatal(err)
	}
	ds, err := auxdata.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Samples) != 1 || ds.Format != auxdata.FormatNpz {
		t.Fatalf("read %d samples as %s, want 1 npz sample", len(ds.Samples), ds.Format)
	}
	got := ds.Samples[0].Named
	for name, want := range feeds {
		g := got[name]
		if g == nil {
			t.Errorf("%s: missing after the round trip", name)
			continue
		}
		if g.DType != want.DType || !slices.Equal(g.Shape, want.Shape) || string(g.Data) != string(want.Data) || !slices.Equal(g.Strings, want.Strings) {
			t.Errorf("%s: read back %s%v %v %q, wrote %s%v %v %q", name, g.DType, g.Shape, g.Data, g.Strings, want.DType, want.Shape, want.Data, want.Strings)
		}
	}
	bf := map[string]*tensor.Tensor{"b": {DType: tensor.BFloat16, Shape: []int64{1}, Data: []byte{0, 0}}}
	if err := WriteNpz(filepath.Join(t.TempDir(), "bf.npz"), bf); err == nil || !strings.Contains(err.Error(), "no numpy equivalent") {
		t.Errorf("bfloat16: error %v, want one saying numpy has no such dtype", err)
	}
}

func TestAllClose(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	for _, tc := range []struct {
		name     string
		got, ref *tensor.Tensor
		ok       bool
	}{
		{"equal", f32([]int64{2}, 1, 2), f32([]int64{2}, 1, 2), true},
		{"inside rtol", f32([]int64{1}, 1000.9), f32([]int64{1}, 1000), true},
		{"outside rtol", f32([]int64{1}, 1002), f32([]int64{1}, 1000), false},
		{"near zero uses atol", f32([]int64{1}, 1e-6), f32([]int64{1}, 0), false},
		{"nan equals nan", f32([]int64{1}, nan), f32([]int64{1}, nan), true},
		{"nan vs number", f32([]int64{1}, nan), f32([]int64{1}, 0), false},
		{"inf", f32([]int64{1}, inf), f32([]int64{1}, inf), true},
		{"inf sign", f32([]int64{1}, -inf), f32([]int64{1}, inf), false},
		{"shape", f32([]int64{2, 1}, 1, 2), f32([]int64{2}, 1, 2), false},
		{"dtype", &tensor.Tensor{DType: tensor.Int32, Shape: []int64{1}, Data: make([]byte, 4)}, f32([]int64{1}, 0), false},
		{"strings", &tensor.Tensor{DType: tensor.String, Shape: []int64{1}, Strings: []string{"a"}}, &tensor.Tensor{DType: tensor.String, Shape: []int64{1}, Strings: []string{"b"}}, false},
		{"missing", nil, f32([]int64{1}, 0), false},
	} {
		if ok, why := AllClose(tc.got, tc.ref, DefaultTolerance); ok != tc.ok {
			t.Errorf("%s: AllClose = %v (%s), want %v", tc.name, ok, why, tc.ok)
		}
	}
}

func TestLoadCaseReadsSuiteLayout(t *testing.T) {
	dir := filepath.Join(SuiteDir, "node", "test_add")
	c, err := LoadCase(dir)
	if err != nil {
		t.Skipf("libonnx-testdata not installed: %v", err)
	}
	if c.Name != "node/test_add" || len(c.Inputs) != 2 || len(c.Outputs) != 1 || len(c.Sets) != 1 || c.DataErr != "" {
		t.Fatalf("LoadCase = %+v", c)
	}
	x, y, z := c.Sets[0].Inputs[c.Inputs[0]], c.Sets[0].Inputs[c.Inputs[1]], c.Sets[0].Outputs[c.Outputs[0]]
	a, _ := x.Float64s()
	b, _ := y.Float64s()
	s, _ := z.Float64s()
	for i := range s {
		if math.Abs(a[i]+b[i]-s[i]) > 1e-6 {
			t.Fatalf("element %d: %g + %g != reference %g", i, a[i], b[i], s[i])
		}
	}
}

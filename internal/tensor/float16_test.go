package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestFloat16EveryValueRoundTrips(t *testing.T) {
	for h := range 1 << 16 {
		f := Float16ToFloat32(uint16(h))
		if math.IsNaN(float64(f)) {
			if got := Float32ToFloat16(f); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, got)
			}
			continue
		}
		if got := Float32ToFloat16(f); got != uint16(h) {
			t.Fatalf("half %#04x → %v → %#04x", h, f, got)
		}
	}
}

// nearestHalf finds the correctly rounded half by search, as a reference.
func nearestHalf(f float32) uint16 {
	best, bestErr := uint16(0), math.Inf(1)
	for h := range 0x7c00 + 1 { // every finite positive half, and Inf
		d := math.Abs(float64(Float16ToFloat32(uint16(h))) - math.Abs(float64(f)))
		if h == 0x7c00 {
			// Values at or beyond 65520 (the midpoint to the next binade) round to Inf.
			if math.Abs(float64(f)) >= 65520 {
				d = 0
			} else {
				d = math.Inf(1)
			}
		}
		if d < bestErr || (d == bestErr && h&1 == 0) {
			best, bestErr = uint16(h), d
		}
	}
	if math.Signbit(float64(f)) {
		best |= 0x8000
	}
	return best
}

func TestFloat16RoundsToNearestEven(t *testing.T) {
	vals := []float32{0.1, 1.0009765625 /* 1 + 2^-10 */, 1.00048828125 /* tie: to 1 */, 1.00146484375, /* tie: to 1+2^-9 */
		65504, 65519, 65520, 1e-8, 5.960464477539063e-08 /* smallest subnormal */, 2.98023223876953125e-08 /* half of it: tie to 0 */, -3.1}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		vals = append(vals, float32(r.NormFloat64()*100))
	}
	for _, f := range vals {
		if got, want := Float32ToFloat16(f), nearestHalf(f); got != want {
			t.Errorf("Float32ToFloat16(%v) = %#04x, want %#04x", f, got, want)
		}
	}
}

func TestBFloat16(t *testing.T) {
	for _, c := range []struct {
		in   float32
		want uint16
	}{
		{1, 0x3f80}, {-2, 0xc000}, {1.00390625 /* tie between 1 and 1+2^-7: to even 1 */, 0x3f80},
		{1.01171875 /* tie: to 1+2^-6 (even) */, 0x3f82}, {float32(math.Inf(1)), 0x7f80},
	} {
		if got := Float32ToBFloat16(c.in); got != c.want {
			t.Errorf("Float32ToBFloat16(%v) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	if h := Float32ToBFloat16(float32(math.NaN())); !math.IsNaN(float64(BFloat16ToFloat32(h))) {
		t.Errorf("NaN became %#04x", h)
	}
}

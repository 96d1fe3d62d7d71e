package tensor

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
)

func TestFloat64s(t *testing.T) {
	le := binary.LittleEndian
	for _, tc := range []struct {
		dt   DType
		data []byte
		want []float64
	}{
		{Float, le.AppendUint32(le.AppendUint32(nil, math.Float32bits(1.5)), math.Float32bits(-2)), []float64{1.5, -2}},
		{Double, le.AppendUint64(nil, math.Float64bits(0.25)), []float64{0.25}},
		{Float16, le.AppendUint16(nil, Float32ToFloat16(-3)), []float64{-3}},
		{BFloat16, le.AppendUint16(nil, Float32ToBFloat16(4)), []float64{4}},
		{Int8, []byte{0xff, 7}, []float64{-1, 7}},
		{Uint8, []byte{0xff}, []float64{255}},
		{Bool, []byte{1, 0}, []float64{1, 0}},
		{Int16, le.AppendUint16(nil, 0xfffe), []float64{-2}},
		{Uint16, le.AppendUint16(nil, 0xfffe), []float64{65534}},
		{Int32, le.AppendUint32(nil, 0xfffffffd), []float64{-3}},
		{Uint32, le.AppendUint32(nil, 0xfffffffd), []float64{4294967293}},
		{Int64, le.AppendUint64(nil, math.MaxUint64), []float64{-1}},
		{Uint64, le.AppendUint64(nil, 1<<40), []float64{1 << 40}},
	} {
		got, ok := (&Tensor{DType: tc.dt, Data: tc.data}).Float64s()
		if !ok || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.dt, got, ok, tc.want)
		}
	}
	if _, ok := (&Tensor{DType: String, Strings: []string{"a"}}).Float64s(); ok {
		t.Error("a string tensor widened to numbers")
	}
}

func TestValueDType(t *testing.T) {
	if d := (Info{DType: Int64}).ValueDType(); d != Int64 {
		t.Errorf("declared int64: %s", d)
	}
	if d := (Info{}).ValueDType(); d != Float {
		t.Errorf("undeclared: %s, want float32", d)
	}
}

package codec

import (
	"testing"

	"github.com/openeas/openeas/internal/tensor"
)

func TestConvertible(t *testing.T) {
	yes := [][2]tensor.DType{
		{tensor.Int32, tensor.Int64}, {tensor.Int64, tensor.Uint8}, {tensor.Int32, tensor.Float},
		{tensor.Int64, tensor.Bool}, {tensor.Float, tensor.Double}, {tensor.Float, tensor.Float16},
		{tensor.Float, tensor.BFloat16}, {tensor.Float16, tensor.Float}, {tensor.String, tensor.String},
	}
	no := [][2]tensor.DType{
		{tensor.Double, tensor.Float}, {tensor.Float, tensor.Int64}, {tensor.Bool, tensor.Int64},
		{tensor.String, tensor.Float}, {tensor.Float16, tensor.BFloat16}, {tensor.Double, tensor.Float16},
	}
	for _, p := range yes {
		if !convertible(p[0], p[1]) {
			t.Errorf("%v → %v should convert", p[0], p[1])
		}
	}
	for _, p := range no {
		if convertible(p[0], p[1]) {
			t.Errorf("%v → %v should not convert", p[0], p[1])
		}
	}
}

func TestConvertRawValues(t *testing.T) {
	got, err := convertRaw(tensor.Int32, tensor.Int8, i32s(-128, 127), 2)
	if err != nil || string(got) != "\x80\x7f" {
		t.Fatalf("int32→int8: %x %v", got, err)
	}
	if _, err := convertRaw(tensor.Int32, tensor.Int8, i32s(5, 128), 2); err == nil || err.Error() != "at [1]: value 128 does not fit int8" {
		t.Fatalf("int32→int8 overflow: %v", err)
	}
	if _, err := convertRaw(tensor.Uint64, tensor.Int64, i64s(-1), 1); err == nil || err.Error() != "at [0]: value 18446744073709551615 does not fit int64" {
		t.Fatalf("uint64→int64 overflow: %v", err)
	}
	if got, err := convertRaw(tensor.Int64, tensor.Double, i64s(1<<53), 1); err != nil || string(got) != string(f64s(1<<53)) {
		t.Fatalf("int64→double: %v", err)
	}
	if _, err := convertRaw(tensor.Int64, tensor.Double, i64s(1<<53+1), 1); err == nil {
		t.Fatal("2^53+1 is not exact in float64")
	}
	if got, err := convertRaw(tensor.Float16, tensor.Float, f16s(0.5, -2), 2); err != nil || string(got) != string(f32s(0.5, -2)) {
		t.Fatalf("float16→float32: %v", err)
	}
}

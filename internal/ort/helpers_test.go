package ort

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/openeas/openeas/internal/tensor"
)

// initORT loads the library named by OPENEAS_ORT_LIB, or skips the test.
func initORT(tb testing.TB) {
	tb.Helper()
	p := os.Getenv("OPENEAS_ORT_LIB")
	if p == "" {
		tb.Skip("OPENEAS_ORT_LIB is not set; point it at libonnxruntime.so (scripts/fetch-deps.sh puts one in .cache/) to run the ONNX Runtime tests")
	}
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("OPENEAS_ORT_LIB=%s: %v; run scripts/fetch-deps.sh to fetch ONNX Runtime", p, err)
	}
	if err := Init(p); err != nil {
		tb.Fatalf("Init(%s): %v", p, err)
	}
}

// le encodes a slice of fixed-size numbers little-endian.
func le(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := binary.Append(nil, binary.LittleEndian, v)
	if err != nil {
		tb.Fatalf("encode %T: %v", v, err)
	}
	return b
}

// fromLE decodes little-endian bytes into a slice of T.
func fromLE[T any](tb testing.TB, b []byte) []T {
	tb.Helper()
	var zero T
	out := make([]T, len(b)/binary.Size(zero))
	if err := binary.Read(bytes.NewReader(b), binary.LittleEndian, out); err != nil {
		tb.Fatalf("decode %T: %v", out, err)
	}
	return out
}

func numeric(tb testing.TB, dt tensor.DType, shape []int64, v any) *tensor.Tensor {
	tb.Helper()
	if shape == nil {
		shape = []int64{}
	}
	return &tensor.Tensor{DType: dt, Shape: shape, Data: le(tb, v)}
}

// f16 encodes float32 values that are exactly representable as normal float16 (or zero).
func f16(tb testing.TB, vals ...float32) []uint16 {
	tb.Helper()
	out := make([]uint16, len(vals))
	for i, v := range vals {
		bits := math.Float32bits(v)
		sign := uint16(bits>>16) & 0x8000
		exp := int((bits>>23)&0xff) - 127 + 15
		mant := bits & 0x7fffff
		switch {
		case v == 0:
			out[i] = sign
		case exp <= 0 || exp >= 31 || mant&0x1fff != 0:
			tb.Fatalf("%v is not exactly representable as a normal float16", v)
		default:
			out[i] = sign | uint16(exp)<<10 | uint16(mant>>13)
		}
	}
	return out
}

// bf16 encodes float32 values that are exactly representable as bfloat16.
func bf16(tb testing.TB, vals ...float32) []uint16 {
	tb.Helper()
	out := make([]uint16, len(vals))
	for i, v := range vals {
		bits := math.Float32bits(v)
		if bits&0xffff != 0 {
			tb.Fatalf("%v is not exactly representable as bfloat16", v)
		}
		out[i] = uint16(bits >> 16)
	}
	return out
}

// sameTensor reports the first difference between got and want; float data must match bit for bit.
func sameTensor(tb testing.TB, name string, got, want *tensor.Tensor) {
	tb.Helper()
	if got == nil {
		tb.Errorf("output %q missing", name)
		return
	}
	if got.DType != want.DType {
		tb.Errorf("output %q dtype %v, want %v", name, got.DType, want.DType)
	}
	if !slices.Equal(got.Shape, want.Shape) {
		tb.Errorf("output %q shape %v, want %v", name, got.Shape, want.Shape)
	}
	if want.DType == tensor.String {
		if !slices.Equal(got.Strings, want.Strings) {
			tb.Errorf("output %q strings %q, want %q", name, got.Strings, want.Strings)
		}
		return
	}
	if !bytes.Equal(got.Data, want.Data) {
		tb.Errorf("output %q data %v, want %v", name, got.Data, want.Data)
	}
	if got.Data == nil {
		tb.Errorf("output %q: nil Data, want a (possibly empty) slice", name)
	}
}

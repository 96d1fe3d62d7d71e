package codec

import (
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

func f32s(vs ...float32) []byte {
	b := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func f64s(vs ...float64) []byte {
	b := make([]byte, 0, 8*len(vs))
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

func f16s(vs ...float32) []byte {
	b := make([]byte, 0, 2*len(vs))
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint16(b, tensor.Float32ToFloat16(v))
	}
	return b
}

func bf16s(vs ...float32) []byte {
	b := make([]byte, 0, 2*len(vs))
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint16(b, tensor.Float32ToBFloat16(v))
	}
	return b
}

func i64s(vs ...int64) []byte {
	b := make([]byte, 0, 8*len(vs))
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func i32s(vs ...int32) []byte {
	b := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	return b
}

func i16s(vs ...int16) []byte {
	b := make([]byte, 0, 2*len(vs))
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint16(b, uint16(v))
	}
	return b
}

// sigOf is a model with one input x and one output y of the given dtype and shape.
func sigOf(dt tensor.DType, shape ...int64) processor.Signature {
	return processor.Signature{
		Inputs:  []tensor.Info{{Name: "x", DType: dt, Shape: shape}},
		Outputs: []tensor.Info{{Name: "y", DType: dt, Shape: shape}},
	}
}

// twoSig has inputs a (float32 [?,2]) and b (int64 [?]), outputs p (float32) and q (int64).
var twoSig = processor.Signature{
	Inputs: []tensor.Info{
		{Name: "a", DType: tensor.Float, Shape: []int64{-1, 2}},
		{Name: "b", DType: tensor.Int64, Shape: []int64{-1}},
	},
	Outputs: []tensor.Info{
		{Name: "p", DType: tensor.Float, Shape: []int64{-1, 2}},
		{Name: "q", DType: tensor.Int64, Shape: []int64{-1}},
	},
}

// equalTensor compares tensors treating nil and empty shapes and data alike.
func equalTensor(t *testing.T, what string, got, want *tensor.Tensor) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: nil tensor", what)
	}
	norm := func(x *tensor.Tensor) tensor.Tensor {
		c := *x
		if len(c.Shape) == 0 {
			c.Shape = nil
		}
		if len(c.Data) == 0 {
			c.Data = nil
		}
		if len(c.Strings) == 0 {
			c.Strings = nil
		}
		return c
	}
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// wantInputError checks err is an *processor.InputError with exactly this text.
func wantInputError(t *testing.T, err error, text string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %q", text)
	}
	var ie *processor.InputError
	if !errors.As(err, &ie) {
		t.Fatalf("error %T %q is not an InputError", err, err)
	}
	if err.Error() != text {
		t.Fatalf("error text\n got %q\nwant %q", err.Error(), text)
	}
}

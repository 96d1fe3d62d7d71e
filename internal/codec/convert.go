package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/openeas/openeas/internal/tensor"
)

// errIncompatible means a value of one dtype cannot feed an input of another at all; callers
// turn it into a message naming both in their format's words.
var errIncompatible = errors.New("incompatible dtypes")

type kind int

const (
	kindOther kind = iota
	kindInt
	kindFloat
	kindBool
	kindString
)

func kindOf(d tensor.DType) kind {
	switch d {
	case tensor.Int8, tensor.Int16, tensor.Int32, tensor.Int64,
		tensor.Uint8, tensor.Uint16, tensor.Uint32, tensor.Uint64:
		return kindInt
	case tensor.Float, tensor.Double, tensor.Float16, tensor.BFloat16:
		return kindFloat
	case tensor.Bool:
		return kindBool
	case tensor.String:
		return kindString
	}
	return kindOther
}

// convertible says whether values of dtype from may feed an input of dtype to. Integers go
// to any integer or float dtype (each value is then checked to be exact), 0/1 integers to
// bool, floats only widen, except that float32 narrows to float16 and bfloat16: the EAS
// protobuf has no 16-bit float field, so float32 is how clients send them.
func convertible(from, to tensor.DType) bool {
	if from == to {
		return true
	}
	switch kindOf(from) {
	case kindInt:
		k := kindOf(to)
		return k == kindInt || k == kindFloat || k == kindBool
	case kindFloat:
		switch to {
		case tensor.Double:
			return true
		case tensor.Float:
			return from == tensor.Float16 || from == tensor.BFloat16
		case tensor.Float16, tensor.BFloat16:
			return from == tensor.Float
		}
	}
	return false
}

// convertRaw converts n little-endian elements of dtype from into dtype to. When the dtypes
// are equal it returns raw itself. Value errors name the flat index of the element.
func convertRaw(from, to tensor.DType, raw []byte, n int) ([]byte, error) {
	if from == to {
		return raw, nil
	}
	if !convertible(from, to) {
		return nil, errIncompatible
	}
	out := make([]byte, n*to.Size())
	if from == tensor.Float && to == tensor.Float16 {
		for i := range n {
			f := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			binary.LittleEndian.PutUint16(out[2*i:], tensor.Float32ToFloat16(f))
		}
		return out, nil
	}
	if kindOf(from) == kindFloat {
		put := floatWriter(to)
		for i := range n {
			put(out, i, readFloat(from, raw, i))
		}
		return out, nil
	}
	w := intWriter(to)
	for i := range n {
		v, ok := readInt(from, raw, i)
		if !ok {
			return nil, fmt.Errorf("at [%d]: value %d does not fit %s", i, binary.LittleEndian.Uint64(raw[8*i:]), to)
		}
		if err := w(out, i, v); err != nil {
			return nil, fmt.Errorf("at [%d]: %w", i, err)
		}
	}
	return out, nil
}

// readInt reads integer element i; ok is false only for a uint64 above MaxInt64.
func readInt(d tensor.DType, raw []byte, i int) (int64, bool) {
	switch d {
	case tensor.Int8:
		return int64(int8(raw[i])), true
	case tensor.Uint8:
		return int64(raw[i]), true
	case tensor.Int16:
		return int64(int16(binary.LittleEndian.Uint16(raw[2*i:]))), true
	case tensor.Uint16:
		return int64(binary.LittleEndian.Uint16(raw[2*i:])), true
	case tensor.Int32:
		return int64(int32(binary.LittleEndian.Uint32(raw[4*i:]))), true
	case tensor.Uint32:
		return int64(binary.LittleEndian.Uint32(raw[4*i:])), true
	case tensor.Int64:
		return int64(binary.LittleEndian.Uint64(raw[8*i:])), true
	case tensor.Uint64:
		u := binary.LittleEndian.Uint64(raw[8*i:])
		return int64(u), u <= math.MaxInt64
	case tensor.Bool:
		if raw[i] != 0 {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func readFloat(d tensor.DType, raw []byte, i int) float64 {
	switch d {
	case tensor.Float:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
	case tensor.Double:
		return math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	case tensor.Float16:
		return float64(tensor.Float16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:])))
	case tensor.BFloat16:
		return float64(tensor.BFloat16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:])))
	}
	return 0
}

// floatWriter stores element i of a float tensor; the caller has checked the conversion.
func floatWriter(d tensor.DType) func(out []byte, i int, f float64) {
	switch d {
	case tensor.Float:
		return func(out []byte, i int, f float64) {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(float32(f)))
		}
	case tensor.Double:
		return func(out []byte, i int, f float64) { binary.LittleEndian.PutUint64(out[8*i:], math.Float64bits(f)) }
	case tensor.Float16:
		return func(out []byte, i int, f float64) {
			binary.LittleEndian.PutUint16(out[2*i:], tensor.Float32ToFloat16(float32(f)))
		}
	case tensor.BFloat16:
		return func(out []byte, i int, f float64) {
			binary.LittleEndian.PutUint16(out[2*i:], tensor.Float32ToBFloat16(float32(f)))
		}
	}
	return func([]byte, int, float64) {}
}

// intWriter stores an integer as element i of a tensor of dtype d (integer, float or bool),
// failing when the value is not exactly representable there.
func intWriter(d tensor.DType) func(out []byte, i int, v int64) error {
	rangeErr := func(v int64) error { return fmt.Errorf("value %d does not fit %s", v, d) }
	switch d {
	case tensor.Int8:
		return func(out []byte, i int, v int64) error {
			if v < math.MinInt8 || v > math.MaxInt8 {
				return rangeErr(v)
			}
			out[i] = byte(v)
			return nil
		}
	case tensor.Uint8:
		return func(out []byte, i int, v int64) error {
			if v < 0 || v > math.MaxUint8 {
				return rangeErr(v)
			}
			out[i] = byte(v)
			return nil
		}
	case tensor.Int16:
		return func(out []byte, i int, v int64) error {
			if v < math.MinInt16 || v > math.MaxInt16 {
				return rangeErr(v)
			}
			binary.LittleEndian.PutUint16(out[2*i:], uint16(v))
			return nil
		}
	case tensor.Uint16:
		return func(out []byte, i int, v int64) error {
			if v < 0 || v > math.MaxUint16 {
				return rangeErr(v)
			}
			binary.LittleEndian.PutUint16(out[2*i:], uint16(v))
			return nil
		}
	case tensor.Int32:
		return func(out []byte, i int, v int64) error {
			if v < math.MinInt32 || v > math.MaxInt32 {
				return rangeErr(v)
			}
			binary.LittleEndian.PutUint32(out[4*i:], uint32(v))
			return nil
		}
	case tensor.Uint32:
		return func(out []byte, i int, v int64) error {
			if v < 0 || v > math.MaxUint32 {
				return rangeErr(v)
			}
			binary.LittleEndian.PutUint32(out[4*i:], uint32(v))
			return nil
		}
	case tensor.Int64:
		return func(out []byte, i int, v int64) error {
			binary.LittleEndian.PutUint64(out[8*i:], uint64(v))
			return nil
		}
	case tensor.Uint64:
		return func(out []byte, i int, v int64) error {
			if v < 0 {
				return rangeErr(v)
			}
			binary.LittleEndian.PutUint64(out[8*i:], uint64(v))
			return nil
		}
	case tensor.Bool:
		return func(out []byte, i int, v int64) error {
			if v != 0 && v != 1 {
				return fmt.Errorf("value %d is not a bool (0 or 1)", v)
			}
			out[i] = byte(v)
			return nil
		}
	case tensor.Float, tensor.Double, tensor.Float16, tensor.BFloat16:
		put := floatWriter(d)
		return func(out []byte, i int, v int64) error {
			f, ok := exactFloat(v, d)
			if !ok {
				return fmt.Errorf("value %d is not exact in %s", v, d)
			}
			put(out, i, f)
			return nil
		}
	}
	return func([]byte, int, int64) error { return errIncompatible }
}

// exactFloat converts v to a float that dtype d holds exactly, if there is one.
func exactFloat(v int64, d tensor.DType) (float64, bool) {
	f := float64(v)
	if f >= math.MaxInt64 || int64(f) != v { // float64(MaxInt64) rounds up to 2^63
		return 0, false
	}
	switch d {
	case tensor.Float:
		return f, float64(float32(f)) == f
	case tensor.Float16:
		return f, float64(tensor.Float16ToFloat32(tensor.Float32ToFloat16(float32(f)))) == f
	case tensor.BFloat16:
		return f, float64(tensor.BFloat16ToFloat32(tensor.Float32ToBFloat16(float32(f)))) == f
	}
	return f, true
}

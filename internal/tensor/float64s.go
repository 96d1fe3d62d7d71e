package tensor

import (
	"encoding/binary"
	"math"
)

// Float64s widens a numeric tensor's values to float64, for comparing outputs of any dtype;
// false for strings and unknown dtypes.
func (t *Tensor) Float64s() ([]float64, bool) {
	n := len(t.Data) / max(t.DType.Size(), 1)
	out := make([]float64, n)
	d, le := t.Data, binary.LittleEndian
	switch t.DType {
	case Float:
		for i := range out {
			out[i] = float64(math.Float32frombits(le.Uint32(d[4*i:])))
		}
	case Double:
		for i := range out {
			out[i] = math.Float64frombits(le.Uint64(d[8*i:]))
		}
	case Float16:
		for i := range out {
			out[i] = float64(Float16ToFloat32(le.Uint16(d[2*i:])))
		}
	case BFloat16:
		for i := range out {
			out[i] = float64(BFloat16ToFloat32(le.Uint16(d[2*i:])))
		}
	case Int8:
		for i := range out {
			out[i] = float64(int8(d[i]))
		}
	case Uint8, Bool:
		for i := range out {
			out[i] = float64(d[i])
		}
	case Int16:
		for i := range out {
			out[i] = float64(int16(le.Uint16(d[2*i:])))
		}
	case Uint16:
		for i := range out {
			out[i] = float64(le.Uint16(d[2*i:]))
		}
	case Int32:
		for i := range out {
			out[i] = float64(int32(le.Uint32(d[4*i:])))
		}
	case Uint32:
		for i := range out {
			out[i] = float64(le.Uint32(d[4*i:]))
		}
	case Int64:
		for i := range out {
			out[i] = float64(int64(le.Uint64(d[8*i:])))
		}
	case Uint64:
		for i := range out {
			out[i] = float64(le.Uint64(d[8*i:]))
		}
	default:
		return nil, false
	}
	return out, true
}

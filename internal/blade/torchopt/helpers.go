package torchopt

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"

	"github.com/openeas/openeas/internal/tensor"
)

func putF32(b []byte, v float32) { binary.LittleEndian.PutUint32(b, math.Float32bits(v)) }
func putU32(b []byte, v uint32)  { binary.LittleEndian.PutUint32(b, v) }
func putU64(b []byte, v uint64)  { binary.LittleEndian.PutUint64(b, v) }

// f64 widens a numeric tensor's values for comparison.
func f64(t *tensor.Tensor) []float64 {
	if t == nil {
		return nil
	}
	n := int(tensor.NumElements(t.Shape))
	v := make([]float64, n)
	for i := range v {
		switch t.DType {
		case tensor.Float:
			v[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:])))
		case tensor.Double:
			v[i] = math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:]))
		case tensor.Int64:
			v[i] = float64(int64(binary.LittleEndian.Uint64(t.Data[8*i:])))
		case tensor.Int32:
			v[i] = float64(int32(binary.LittleEndian.Uint32(t.Data[4*i:])))
		case tensor.Bool, tensor.Uint8:
			v[i] = float64(t.Data[i])
		case tensor.Int8:
			v[i] = float64(int8(t.Data[i]))
		}
	}
	return v
}

// compare returns ‖got−ref‖/‖ref‖ (the absolute norm when ref is all zeros) and the cosine
// similarity (1 when both are zero).
func compare(got, ref []float64) (rel, cos float64) {
	var d, r, g, dot float64
	for i := range ref {
		e := got[i] - ref[i]
		d += e * e
		r += ref[i] * ref[i]
		g += got[i] * got[i]
		dot += got[i] * ref[i]
	}
	if r == 0 {
		rel = math.Sqrt(d)
	} else {
		rel = math.Sqrt(d / r)
	}
	switch {
	case r == 0 && g == 0:
		cos = 1
	case r == 0 || g == 0:
		cos = 0
	default:
		cos = dot / math.Sqrt(r*g)
	}
	if math.IsNaN(rel) {
		rel = math.Inf(1)
	}
	if math.IsNaN(cos) {
		cos = -1
	}
	return rel, cos
}

func argmax(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

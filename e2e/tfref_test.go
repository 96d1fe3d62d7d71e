package e2e

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// tfRef is a TF fixture's reference.json (written by scripts/tfjs-to-frozen.mjs): the tfjs
// inputs and outputs, each little-endian and base64-encoded, with its dtype and shape.
type tfRef struct {
	Inputs  []tfRefTensor `json:"inputs"`
	Outputs []tfRefTensor `json:"outputs"`
}

// tfRefTensor is one reference input or output.
type tfRefTensor struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
	Data  string  `json:"data"`

	file string // the reference.json it came from, for failures
}

// loadTFRef reads dir/reference.json, failing the test, with the file's name, when it is
// unreadable, not JSON, or has no inputs or no outputs.
func loadTFRef(t *testing.T, dir string) tfRef {
	t.Helper()
	file := filepath.Join(dir, "reference.json")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var ref tfRef
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(ref.Inputs) == 0 || len(ref.Outputs) == 0 {
		t.Fatalf("%s: no inputs or no outputs", file)
	}
	for i := range ref.Inputs {
		ref.Inputs[i].file = file
	}
	for i := range ref.Outputs {
		ref.Outputs[i].file = file
	}
	return ref
}

// raw is the tensor's little-endian data. It fails the test when the data is not
// base64 or its length is not 4 bytes (every dtype the fixtures use) per element of Shape.
func (v tfRefTensor) raw(t *testing.T) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(v.Data)
	if err != nil {
		t.Fatalf("%s: %s: bad base64: %v", v.file, v.Name, err)
	}
	n := int64(1)
	for _, d := range v.Shape {
		n *= d
	}
	if int64(len(b)) != 4*n {
		t.Fatalf("%s: %s: %d bytes of data, want 4 × %d for shape %v", v.file, v.Name, len(b), n, v.Shape)
	}
	return b
}

// float32s is the tensor's data, which must be float32.
func (v tfRefTensor) float32s(t *testing.T) []float32 {
	t.Helper()
	return decodeTFRef(t, v, "float32", math.Float32frombits)
}

// int32s is the tensor's data, which must be int32.
func (v tfRefTensor) int32s(t *testing.T) []int32 {
	t.Helper()
	return decodeTFRef(t, v, "int32", func(u uint32) int32 { return int32(u) })
}

// decodeTFRef decodes v's 4-byte little-endian words with conv, after checking that v has
// the dtype conv reads.
func decodeTFRef[T any](t *testing.T, v tfRefTensor, dtype string, conv func(uint32) T) []T {
	t.Helper()
	if v.DType != dtype {
		t.Fatalf("%s: %s: dtype %q, want %q", v.file, v.Name, v.DType, dtype)
	}
	raw := v.raw(t)
	out := make([]T, len(raw)/4)
	for i := range out {
		out[i] = conv(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

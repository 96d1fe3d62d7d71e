// Package tensor holds the one in-memory tensor type that request codecs, processors and
// Blade exchange. Element types use ONNX's TensorProto.DataType numbering, which is also
// ONNX Runtime's ONNXTensorElementDataType, so no table is needed at the cgo boundary.
package tensor

import (
	"fmt"
	"strings"
)

// DType is an element type, numbered as ONNX TensorProto.DataType.
type DType int32

const (
	Invalid  DType = 0
	Float    DType = 1
	Uint8    DType = 2
	Int8     DType = 3
	Uint16   DType = 4
	Int16    DType = 5
	Int32    DType = 6
	Int64    DType = 7
	String   DType = 8
	Bool     DType = 9
	Float16  DType = 10
	Double   DType = 11
	Uint32   DType = 12
	Uint64   DType = 13
	BFloat16 DType = 16
)

var dtypeNames = map[DType]string{
	Float: "float32", Uint8: "uint8", Int8: "int8", Uint16: "uint16", Int16: "int16",
	Int32: "int32", Int64: "int64", String: "string", Bool: "bool", Float16: "float16",
	Double: "float64", Uint32: "uint32", Uint64: "uint64", BFloat16: "bfloat16",
}

// String returns the numpy-style name ("float32", "int64", …).
func (d DType) String() string {
	if n, ok := dtypeNames[d]; ok {
		return n
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// ParseDType accepts numpy-style names and the Open Inference Protocol names (FP32, INT64, BYTES…).
func ParseDType(s string) (DType, error) {
	switch strings.ToUpper(s) {
	case "FP32", "FLOAT32", "FLOAT":
		return Float, nil
	case "FP64", "FLOAT64", "DOUBLE":
		return Double, nil
	case "FP16", "FLOAT16", "HALF":
		return Float16, nil
	case "BF16", "BFLOAT16":
		return BFloat16, nil
	case "INT8":
		return Int8, nil
	case "INT16":
		return Int16, nil
	case "INT32":
		return Int32, nil
	case "INT64":
		return Int64, nil
	case "UINT8":
		return Uint8, nil
	case "UINT16":
		return Uint16, nil
	case "UINT32":
		return Uint32, nil
	case "UINT64":
		return Uint64, nil
	case "BOOL":
		return Bool, nil
	case "BYTES", "STRING":
		return String, nil
	}
	return Invalid, fmt.Errorf("tensor: unknown dtype %q", s)
}

// Size is the byte size of one element; 0 for String.
func (d DType) Size() int {
	switch d {
	case Float, Int32, Uint32:
		return 4
	case Double, Int64, Uint64:
		return 8
	case Uint8, Int8, Bool:
		return 1
	case Uint16, Int16, Float16, BFloat16:
		return 2
	}
	return 0
}

// Tensor is a dense tensor. Numeric data lives in Data as little-endian bytes
// (len = NumElements*DType.Size()); String tensors use Strings instead.
// A nil or empty Shape is a scalar.
type Tensor struct {
	DType   DType
	Shape   []int64
	Data    []byte
	Strings []string
}

// NumElements is the product of Shape (1 for a scalar).
func NumElements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// Validate checks that the data length agrees with dtype and shape.
func (t *Tensor) Validate() error {
	for i, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("tensor: dimension %d is negative (%d)", i, d)
		}
	}
	n := NumElements(t.Shape)
	if t.DType == String {
		if int64(len(t.Strings)) != n {
			return fmt.Errorf("tensor: shape %v needs %d strings, have %d", t.Shape, n, len(t.Strings))
		}
		return nil
	}
	sz := t.DType.Size()
	if sz == 0 {
		return fmt.Errorf("tensor: unsupported dtype %v", t.DType)
	}
	if int64(len(t.Data)) != n*int64(sz) {
		return fmt.Errorf("tensor: shape %v of %v needs %d bytes, have %d", t.Shape, t.DType, n*int64(sz), len(t.Data))
	}
	return nil
}

// Info describes one model input or output. Dims of -1 are dynamic; DimNames names them when known.
// A DType of Invalid means any: the runtime does not declare it (a TorchScript input without a
// signature file), so typed requests keep their own dtype and JSON numbers become float32.
type Info struct {
	Name     string   `json:"name"`
	DType    DType    `json:"dtype"`
	Shape    []int64  `json:"shape"`
	DimNames []string `json:"dim_names,omitempty"`
}

// ValueDType is the dtype to build values of for this input when a request does not say
// (JSON numbers, synthesized data): DType, or float32 when the model does not declare one.
func (i Info) ValueDType() DType {
	if i.DType == Invalid {
		return Float
	}
	return i.DType
}

// Accepts reports whether a concrete shape fits this signature (rank equal, fixed dims equal).
func (i Info) Accepts(shape []int64) bool {
	if i.Shape == nil { // unknown rank
		return true
	}
	if len(shape) != len(i.Shape) {
		return false
	}
	for k, d := range i.Shape {
		if d >= 0 && shape[k] != d {
			return false
		}
	}
	return true
}

// ShapeString renders a signature shape with "?" for dynamic dims, e.g. [?,3,224,224].
func ShapeString(shape []int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range shape {
		if i > 0 {
			b.WriteByte(',')
		}
		if d < 0 {
			b.WriteByte('?')
		} else {
			fmt.Fprint(&b, d)
		}
	}
	b.WriteByte(']')
	return b.String()
}

package codec

import (
	"fmt"

	"github.com/openeas/openeas/internal/tensor"
)

// EAS ArrayDataType values (TensorFlow's DT_* numbering), shared by both protobufs.
const (
	dtInvalid    = 0
	dtFloat      = 1
	dtDouble     = 2
	dtInt32      = 3
	dtUint8      = 4
	dtInt16      = 5
	dtInt8       = 6
	dtString     = 7
	dtComplex64  = 8
	dtInt64      = 9
	dtBool       = 10
	dtQint8      = 11
	dtQuint8     = 12
	dtQint32     = 13
	dtBFloat16   = 14
	dtQint16     = 15
	dtQuint16    = 16
	dtUint16     = 17
	dtComplex128 = 18
	dtHalf       = 19
	dtResource   = 20
	dtVariant    = 21
)

var dtNames = [...]string{
	"DT_INVALID", "DT_FLOAT", "DT_DOUBLE", "DT_INT32", "DT_UINT8", "DT_INT16", "DT_INT8",
	"DT_STRING", "DT_COMPLEX64", "DT_INT64", "DT_BOOL", "DT_QINT8", "DT_QUINT8", "DT_QINT32",
	"DT_BFLOAT16", "DT_QINT16", "DT_QUINT16", "DT_UINT16", "DT_COMPLEX128", "DT_HALF",
	"DT_RESOURCE", "DT_VARIANT",
}

func dtName(dt int32) string {
	if dt >= 0 && int(dt) < len(dtNames) {
		return dtNames[dt]
	}
	return fmt.Sprintf("ArrayDataType(%d)", dt)
}

// dtValueFields lists, per request dtype, the ArrayProto fields that may carry its values.
// DT_BOOL also takes int_val because the PyTorch ArrayProto has no bool_val.
func dtValueFields(dt int32) []int {
	switch dt {
	case dtFloat, dtHalf, dtBFloat16:
		return []int{fFloat}
	case dtDouble:
		return []int{fDouble}
	case dtInt32, dtInt16, dtInt8, dtUint8, dtUint16:
		return []int{fInt}
	case dtString:
		return []int{fString}
	case dtInt64:
		return []int{fInt64}
	case dtBool:
		return []int{fBool, fInt}
	}
	return nil
}

// outputDT picks the ArrayDataType and value field an output tensor is written with.
// Types EAS's enum lacks go to the widest field that holds them exactly: uint32 and
// uint64 as DT_INT64 (a uint64 above MaxInt64 is an encode error).
func outputDT(d tensor.DType, torch bool) (dt int32, field int, err error) {
	switch d {
	case tensor.Float:
		return dtFloat, fFloat, nil
	case tensor.Float16:
		return dtHalf, fFloat, nil
	case tensor.BFloat16:
		return dtBFloat16, fFloat, nil
	case tensor.Double:
		return dtDouble, fDouble, nil
	case tensor.Int32:
		return dtInt32, fInt, nil
	case tensor.Int16:
		return dtInt16, fInt, nil
	case tensor.Int8:
		return dtInt8, fInt, nil
	case tensor.Uint8:
		return dtUint8, fInt, nil
	case tensor.Uint16:
		return dtUint16, fInt, nil
	case tensor.Int64, tensor.Uint32, tensor.Uint64:
		return dtInt64, fInt64, nil
	case tensor.String:
		return dtString, fString, nil
	case tensor.Bool:
		if torch {
			return dtBool, fInt, nil
		}
		return dtBool, fBool, nil
	}
	return 0, 0, fmt.Errorf("dtype %v has no EAS ArrayProto encoding", d)
}

// inputDType is the tensor dtype an EAS ArrayDataType names (Invalid for those a tensor cannot
// hold: complex, quantized, resource and variant types).
func inputDType(dt int32) tensor.DType {
	switch dt {
	case dtFloat:
		return tensor.Float
	case dtDouble:
		return tensor.Double
	case dtInt32:
		return tensor.Int32
	case dtUint8:
		return tensor.Uint8
	case dtInt16:
		return tensor.Int16
	case dtInt8:
		return tensor.Int8
	case dtString:
		return tensor.String
	case dtInt64:
		return tensor.Int64
	case dtBool:
		return tensor.Bool
	case dtBFloat16:
		return tensor.BFloat16
	case dtUint16:
		return tensor.Uint16
	case dtHalf:
		return tensor.Float16
	}
	return tensor.Invalid
}

// naturalDType is the dtype of an array for an input whose dtype the model does not declare:
// the one its dtype field names, else the one its value field holds.
func (a *pbArray) naturalDType(field int) tensor.DType {
	if d := inputDType(a.dtype); d != tensor.Invalid {
		return d
	}
	switch field {
	case fDouble:
		return tensor.Double
	case fInt:
		return tensor.Int32
	case fInt64:
		return tensor.Int64
	case fBool:
		return tensor.Bool
	case fString:
		return tensor.String
	}
	return tensor.Float
}

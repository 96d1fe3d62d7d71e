package onnx

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"github.com/openeas/openeas/internal/tensor"
)

// elemSize is the byte size of one element of an ONNX data type; 0 for
// strings and types this package does not lay out (complex types count).
func elemSize(dt int32) int {
	switch onnxpb.TensorProto_DataType(dt) {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_INT32, onnxpb.TensorProto_UINT32:
		return 4
	case onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_INT64, onnxpb.TensorProto_UINT64, onnxpb.TensorProto_COMPLEX64:
		return 8
	case onnxpb.TensorProto_COMPLEX128:
		return 16
	case onnxpb.TensorProto_INT16, onnxpb.TensorProto_UINT16, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16:
		return 2
	case onnxpb.TensorProto_INT8, onnxpb.TensorProto_UINT8, onnxpb.TensorProto_BOOL:
		return 1
	}
	return 0
}

// NumElements is the element count the tensor's dims declare.
func NumElements(t *onnxpb.TensorProto) int64 {
	n := int64(1)
	for _, d := range t.GetDims() {
		n *= d
	}
	return n
}

// tensorByteSize is the payload size in bytes (0 for strings).
func tensorByteSize(t *onnxpb.TensorProto) int64 {
	if len(t.GetRawData()) > 0 {
		return int64(len(t.GetRawData()))
	}
	return NumElements(t) * int64(elemSize(t.GetDataType()))
}

// rawBytes returns the tensor's payload as little-endian bytes, whether it is
// stored in raw_data or in the typed repeated fields.
func rawBytes(t *onnxpb.TensorProto) ([]byte, error) {
	if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		return nil, fmt.Errorf("tensor %q: data is external (load the model with Load)", t.GetName())
	}
	if t.Segment != nil {
		return nil, fmt.Errorf("tensor %q: segmented tensors are not supported", t.GetName())
	}
	if len(t.GetRawData()) > 0 {
		return t.GetRawData(), nil
	}
	dt := onnxpb.TensorProto_DataType(t.GetDataType())
	le := binary.LittleEndian
	switch dt {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_COMPLEX64:
		b := make([]byte, 4*len(t.FloatData))
		for i, v := range t.FloatData {
			le.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b, nil
	case onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_COMPLEX128:
		b := make([]byte, 8*len(t.DoubleData))
		for i, v := range t.DoubleData {
			le.PutUint64(b[8*i:], math.Float64bits(v))
		}
		return b, nil
	case onnxpb.TensorProto_INT64:
		b := make([]byte, 8*len(t.Int64Data))
		for i, v := range t.Int64Data {
			le.PutUint64(b[8*i:], uint64(v))
		}
		return b, nil
	case onnxpb.TensorProto_UINT64:
		b := make([]byte, 8*len(t.Uint64Data))
		for i, v := range t.Uint64Data {
			le.PutUint64(b[8*i:], v)
		}
		return b, nil
	case onnxpb.TensorProto_UINT32:
		b := make([]byte, 4*len(t.Uint64Data))
		for i, v := range t.Uint64Data {
			le.PutUint32(b[4*i:], uint32(v))
		}
		return b, nil
	case onnxpb.TensorProto_INT32:
		b := make([]byte, 4*len(t.Int32Data))
		for i, v := range t.Int32Data {
			le.PutUint32(b[4*i:], uint32(v))
		}
		return b, nil
	case onnxpb.TensorProto_INT16, onnxpb.TensorProto_UINT16, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16:
		b := make([]byte, 2*len(t.Int32Data))
		for i, v := range t.Int32Data {
			le.PutUint16(b[2*i:], uint16(v))
		}
		return b, nil
	case onnxpb.TensorProto_INT8, onnxpb.TensorProto_UINT8, onnxpb.TensorProto_BOOL:
		b := make([]byte, len(t.Int32Data))
		for i, v := range t.Int32Data {
			b[i] = byte(v)
		}
		return b, nil
	case onnxpb.TensorProto_STRING:
		return nil, fmt.Errorf("tensor %q: string tensors have no byte payload", t.GetName())
	}
	return nil, fmt.Errorf("tensor %q: unsupported data type %v", t.GetName(), dt)
}

// ToTensor converts a TensorProto (raw_data or typed fields) to a tensor.Tensor.
func ToTensor(t *onnxpb.TensorProto) (*tensor.Tensor, error) {
	dims := append([]int64{}, t.GetDims()...)
	for i, d := range dims {
		if d < 0 {
			return nil, fmt.Errorf("tensor %q: dimension %d is negative (%d)", t.GetName(), i, d)
		}
	}
	out := &tensor.Tensor{DType: tensor.DType(t.GetDataType()), Shape: dims}
	switch {
	case out.DType == tensor.String:
		out.Strings = make([]string, len(t.GetStringData()))
		for i, s := range t.GetStringData() {
			out.Strings[i] = string(s)
		}
	case out.DType.Size() == 0:
		return nil, fmt.Errorf("tensor %q: unsupported data type %v", t.GetName(), onnxpb.TensorProto_DataType(t.GetDataType()))
	default:
		b, err := rawBytes(t)
		if err != nil {
			return nil, err
		}
		out.Data = append([]byte(nil), b...)
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.GetName(), err)
	}
	return out, nil
}

// FromTensor builds a TensorProto holding t's data in raw_data (strings in
// string_data). The data is copied.
func FromTensor(name string, t *tensor.Tensor) (*onnxpb.TensorProto, error) {
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	p := &onnxpb.TensorProto{Name: &name, DataType: ptr(int32(t.DType)), Dims: append([]int64{}, t.Shape...)}
	if t.DType == tensor.String {
		for _, s := range t.Strings {
			p.StringData = append(p.StringData, []byte(s))
		}
		return p, nil
	}
	p.RawData = append([]byte{}, t.Data...)
	return p, nil
}

func ptr[T any](v T) *T { return &v }

// TensorToFloat32 returns the values of a FLOAT tensor.
func TensorToFloat32(t *onnxpb.TensorProto) ([]float32, error) {
	if t.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
		return nil, fmt.Errorf("tensor %q: want float32, have %v", t.GetName(), onnxpb.TensorProto_DataType(t.GetDataType()))
	}
	if len(t.GetRawData()) == 0 && t.Segment == nil && t.GetDataLocation() != onnxpb.TensorProto_EXTERNAL {
		if int64(len(t.FloatData)) != NumElements(t) {
			return nil, fmt.Errorf("tensor %q: dims %v need %d values, have %d", t.GetName(), t.GetDims(), NumElements(t), len(t.FloatData))
		}
		return append([]float32{}, t.FloatData...), nil
	}
	b, err := checkedRaw(t, 4)
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, nil
}

// TensorToInt64 returns the values of an INT64 or INT32 tensor as int64.
func TensorToInt64(t *onnxpb.TensorProto) ([]int64, error) {
	switch onnxpb.TensorProto_DataType(t.GetDataType()) {
	case onnxpb.TensorProto_INT64:
		b, err := checkedRaw(t, 8)
		if err != nil {
			return nil, err
		}
		out := make([]int64, len(b)/8)
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
		return out, nil
	case onnxpb.TensorProto_INT32:
		v, err := TensorToInt32(t)
		if err != nil {
			return nil, err
		}
		out := make([]int64, len(v))
		for i, x := range v {
			out[i] = int64(x)
		}
		return out, nil
	}
	return nil, fmt.Errorf("tensor %q: want int64 or int32, have %v", t.GetName(), onnxpb.TensorProto_DataType(t.GetDataType()))
}

// TensorToInt32 returns the values of an INT32 tensor.
func TensorToInt32(t *onnxpb.TensorProto) ([]int32, error) {
	if t.GetDataType() != int32(onnxpb.TensorProto_INT32) {
		return nil, fmt.Errorf("tensor %q: want int32, have %v", t.GetName(), onnxpb.TensorProto_DataType(t.GetDataType()))
	}
	b, err := checkedRaw(t, 4)
	if err != nil {
		return nil, err
	}
	out := make([]int32, len(b)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, nil
}

// checkedRaw returns the payload bytes after checking their count against dims.
func checkedRaw(t *onnxpb.TensorProto, size int64) ([]byte, error) {
	b, err := rawBytes(t)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != NumElements(t)*size {
		return nil, fmt.Errorf("tensor %q: dims %v need %d bytes, have %d", t.GetName(), t.GetDims(), NumElements(t)*size, len(b))
	}
	return b, nil
}

// Float32Tensor builds a FLOAT tensor stored in raw_data.
func Float32Tensor(name string, dims []int64, data []float32) *onnxpb.TensorProto {
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return rawTensor(name, onnxpb.TensorProto_FLOAT, dims, b)
}

// Int64Tensor builds an INT64 tensor stored in raw_data.
func Int64Tensor(name string, dims []int64, data []int64) *onnxpb.TensorProto {
	b := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
	}
	return rawTensor(name, onnxpb.TensorProto_INT64, dims, b)
}

// Int32Tensor builds an INT32 tensor stored in raw_data.
func Int32Tensor(name string, dims []int64, data []int32) *onnxpb.TensorProto {
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	return rawTensor(name, onnxpb.TensorProto_INT32, dims, b)
}

func rawTensor(name string, dt onnxpb.TensorProto_DataType, dims []int64, b []byte) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{
		Name:     &name,
		DataType: ptr(int32(dt)),
		Dims:     append([]int64{}, dims...),
		RawData:  b,
	}
}

// cloneTensor deep-copies a tensor.
func cloneTensor(t *onnxpb.TensorProto) *onnxpb.TensorProto {
	return proto.Clone(t).(*onnxpb.TensorProto)
}

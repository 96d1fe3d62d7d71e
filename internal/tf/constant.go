package tf

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/openeas/openeas/internal/blade/onnx/onnxpb"
	"github.com/openeas/openeas/internal/tensor"
	"github.com/openeas/openeas/internal/tf/tfpb"
)

// constant is a TF tensor known at conversion time. Numbers are held as float64 whatever the
// dtype (exact for float32/half and for integers up to 2^53), which keeps folding simple.
type constant struct {
	dtype tfpb.DataType
	shape []int64
	v     []float64
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

func (c *constant) ints() []int64 {
	out := make([]int64, len(c.v))
	for i, x := range c.v {
		out[i] = int64(x)
	}
	return out
}

// onnxType maps a TF dtype to the ONNX one.
func onnxType(dt tfpb.DataType) (onnxpb.TensorProto_DataType, error) {
	switch dt {
	case tfpb.DataType_DT_FLOAT:
		return onnxpb.TensorProto_FLOAT, nil
	case tfpb.DataType_DT_DOUBLE:
		return onnxpb.TensorProto_DOUBLE, nil
	case tfpb.DataType_DT_HALF:
		return onnxpb.TensorProto_FLOAT16, nil
	case tfpb.DataType_DT_INT32:
		return onnxpb.TensorProto_INT32, nil
	case tfpb.DataType_DT_INT64:
		return onnxpb.TensorProto_INT64, nil
	case tfpb.DataType_DT_INT16:
		return onnxpb.TensorProto_INT16, nil
	case tfpb.DataType_DT_INT8:
		return onnxpb.TensorProto_INT8, nil
	case tfpb.DataType_DT_UINT8:
		return onnxpb.TensorProto_UINT8, nil
	case tfpb.DataType_DT_UINT16:
		return onnxpb.TensorProto_UINT16, nil
	case tfpb.DataType_DT_BOOL:
		return onnxpb.TensorProto_BOOL, nil
	case tfpb.DataType_DT_STRING:
		return onnxpb.TensorProto_STRING, nil
	}
	return 0, fmt.Errorf("TensorFlow dtype %s has no ONNX equivalent here", dt)
}

func elemSize(dt tfpb.DataType) int {
	switch dt {
	case tfpb.DataType_DT_DOUBLE, tfpb.DataType_DT_INT64:
		return 8
	case tfpb.DataType_DT_FLOAT, tfpb.DataType_DT_INT32:
		return 4
	case tfpb.DataType_DT_HALF, tfpb.DataType_DT_INT16, tfpb.DataType_DT_UINT16:
		return 2
	case tfpb.DataType_DT_INT8, tfpb.DataType_DT_UINT8, tfpb.DataType_DT_BOOL:
		return 1
	}
	return 0
}

// fromTensorProto decodes a TF TensorProto (tensor_content or the typed *_val fields; a single
// value fills the whole shape, as TF does).
func fromTensorProto(t *tfpb.TensorProto) (*constant, error) {
	var shape []int64
	for _, d := range t.GetTensorShape().GetDim() {
		if d.Size < 0 {
			return nil, fmt.Errorf("constant with unknown dimension in shape")
		}
		shape = append(shape, d.Size)
	}
	n := numel(shape)
	c := &constant{dtype: t.Dtype, shape: shape, v: make([]float64, n)}
	size := elemSize(t.Dtype)
	if size == 0 {
		return nil, fmt.Errorf("constant of dtype %s is not supported", t.Dtype)
	}
	if len(t.TensorContent) > 0 {
		b := t.TensorContent
		if int64(len(b)) != n*int64(size) {
			return nil, fmt.Errorf("constant of shape %v and dtype %s has %d bytes of tensor_content, expected %d", shape, t.Dtype, len(b), n*int64(size))
		}
		for i := range c.v {
			c.v[i] = decodeElem(t.Dtype, b[i*size:])
		}
		return c, nil
	}
	var vals []float64
	switch t.Dtype {
	case tfpb.DataType_DT_FLOAT:
		for _, x := range t.FloatVal {
			vals = append(vals, float64(x))
		}
	case tfpb.DataType_DT_DOUBLE:
		vals = t.DoubleVal
	case tfpb.DataType_DT_HALF:
		for _, x := range t.HalfVal {
			vals = append(vals, float64(tensor.Float16ToFloat32(uint16(x))))
		}
	case tfpb.DataType_DT_INT64:
		for _, x := range t.Int64Val {
			vals = append(vals, float64(x))
		}
	case tfpb.DataType_DT_BOOL:
		for _, x := range t.BoolVal {
			vals = append(vals, b2f(x))
		}
	default:
		for _, x := range t.IntVal {
			vals = append(vals, float64(x))
		}
	}
	if len(vals) == 0 && n > 0 {
		return nil, fmt.Errorf("constant of shape %v has no values", shape)
	}
	if int64(len(vals)) > n {
		return nil, fmt.Errorf("constant of shape %v has %d values", shape, len(vals))
	}
	for i := range c.v {
		if i < len(vals) {
			c.v[i] = vals[i]
		} else {
			c.v[i] = vals[len(vals)-1] // TF repeats the last value
		}
	}
	return c, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func decodeElem(dt tfpb.DataType, b []byte) float64 {
	switch dt {
	case tfpb.DataType_DT_FLOAT:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
	case tfpb.DataType_DT_DOUBLE:
		return math.Float64frombits(binary.LittleEndian.Uint64(b))
	case tfpb.DataType_DT_HALF:
		return float64(tensor.Float16ToFloat32(binary.LittleEndian.Uint16(b)))
	case tfpb.DataType_DT_INT32:
		return float64(int32(binary.LittleEndian.Uint32(b)))
	case tfpb.DataType_DT_INT64:
		return float64(int64(binary.LittleEndian.Uint64(b)))
	case tfpb.DataType_DT_INT16:
		return float64(int16(binary.LittleEndian.Uint16(b)))
	case tfpb.DataType_DT_UINT16:
		return float64(binary.LittleEndian.Uint16(b))
	case tfpb.DataType_DT_INT8:
		return float64(int8(b[0]))
	default: // uint8, bool
		return float64(b[0])
	}
}

// tensorProto encodes the constant as an ONNX initializer. Half constants become float32
// (TF graphs carry float16 weights only for storage; the ONNX model computes in float32
// unless the dtype is used as a real tensor type, which the caller decides).
func (c *constant) tensorProto(name string) (*onnxpb.TensorProto, error) {
	ot, err := onnxType(c.dtype)
	if err != nil {
		return nil, err
	}
	if ot == onnxpb.TensorProto_STRING {
		return nil, fmt.Errorf("string constants are not supported")
	}
	size := elemSize(c.dtype)
	b := make([]byte, len(c.v)*size)
	for i, x := range c.v {
		o := b[i*size:]
		switch c.dtype {
		case tfpb.DataType_DT_FLOAT:
			binary.LittleEndian.PutUint32(o, math.Float32bits(float32(x)))
		case tfpb.DataType_DT_DOUBLE:
			binary.LittleEndian.PutUint64(o, math.Float64bits(x))
		case tfpb.DataType_DT_HALF:
			binary.LittleEndian.PutUint16(o, tensor.Float32ToFloat16(float32(x)))
		case tfpb.DataType_DT_INT32:
			binary.LittleEndian.PutUint32(o, uint32(int32(x)))
		case tfpb.DataType_DT_INT64:
			binary.LittleEndian.PutUint64(o, uint64(int64(x)))
		case tfpb.DataType_DT_INT16, tfpb.DataType_DT_UINT16:
			binary.LittleEndian.PutUint16(o, uint16(int64(x)))
		default:
			o[0] = byte(int64(x))
		}
	}
	dt := int32(ot)
	return &onnxpb.TensorProto{Name: &name, DataType: &dt, Dims: append([]int64{}, c.shape...), RawData: b}, nil
}

// transpose permutes a constant's axes.
func (c *constant) transpose(perm []int) *constant {
	r := len(c.shape)
	out := &constant{dtype: c.dtype, shape: make([]int64, r), v: make([]float64, len(c.v))}
	for i, p := range perm {
		out.shape[i] = c.shape[p]
	}
	inStrides := strides(c.shape)
	outStrides := strides(out.shape)
	idx := make([]int64, r)
	for o := range out.v {
		rem := int64(o)
		src := int64(0)
		for i := 0; i < r; i++ {
			idx[i] = rem / outStrides[i]
			rem %= outStrides[i]
			src += idx[i] * inStrides[perm[i]]
		}
		out.v[o] = c.v[src]
	}
	return out
}

func strides(shape []int64) []int64 {
	s := make([]int64, len(shape))
	acc := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= shape[i]
	}
	return s
}

func (c *constant) reshape(shape []int64) *constant {
	return &constant{dtype: c.dtype, shape: shape, v: c.v}
}

// toNCHW converts a constant that broadcasts against an NHWC 4-D tensor into the constant
// that broadcasts the same way against its NCHW form. ok is false for rank > 4.
func (c *constant) toNCHW() (*constant, bool) {
	r := len(c.shape)
	if r == 0 || numel(c.shape) == 1 && r <= 4 {
		if r == 4 || r == 0 {
			return c, true
		}
		return c.reshape([]int64{}), true
	}
	if r > 4 {
		return nil, false
	}
	shape := append(make([]int64, 4-r), c.shape...)
	for i := 0; i < 4-r; i++ {
		shape[i] = 1
	}
	return c.reshape(shape).transpose(nhwcToNCHW), true
}

var (
	nhwcToNCHW = []int{0, 3, 1, 2}
	nchwToNHWC = []int{0, 2, 3, 1}
	// axisToNCHW maps an NHWC axis to the same axis in NCHW.
	axisToNCHW = []int{0, 2, 3, 1}
)

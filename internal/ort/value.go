package ort

/*
#include "ort_wrapper.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/openeas/openeas/internal/tensor"
)

// newValue makes an OrtValue for t. Numeric data is used in place: its backing array is
// pinned with pin, which must stay pinned until the value is released. Strings are
// copied into an ORT-allocated string tensor. The caller releases the value.
func newValue(t *tensor.Tensor, pin *runtime.Pinner) (*C.OrtValue, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	n := tensor.NumElements(t.Shape)
	var shape *C.int64_t
	if len(t.Shape) > 0 {
		shape = (*C.int64_t)(unsafe.Pointer(&t.Shape[0])) // ORT copies the shape
	}
	rank := C.size_t(len(t.Shape))
	et := C.ONNXTensorElementDataType(t.DType)

	var v *C.OrtValue
	if t.DType == tensor.String || n == 0 {
		// ORT owns the buffer; with zero elements there is no Go memory to lend.
		if err := statusToError(C.ort_create_tensor(lib.alloc, shape, rank, et, &v)); err != nil {
			return nil, fmt.Errorf("create %s tensor %v: %w", t.DType, t.Shape, err)
		}
		if t.DType == tensor.String {
			for i, s := range t.Strings {
				if err := statusToError(C.ort_resized_string_element(v, C.size_t(i), (*C.char)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s)))); err != nil {
					C.ort_release_value(v)
					return nil, fmt.Errorf("fill string %d: %w", i, err)
				}
			}
		}
		return v, nil
	}

	data := t.Data
	if uintptr(unsafe.Pointer(&data[0]))%uintptr(t.DType.Size()) != 0 {
		// Kernels may assume natural alignment; a misaligned sub-slice is copied once.
		data = alignedCopy(data)
	}
	pin.Pin(&data[0])
	if err := statusToError(C.ort_create_tensor_with_data(lib.memInfo, unsafe.Pointer(&data[0]), C.size_t(len(data)), shape, rank, et, &v)); err != nil {
		return nil, fmt.Errorf("create %s tensor %v: %w", t.DType, t.Shape, err)
	}
	return v, nil
}

// alignedCopy copies b into memory aligned for any element type (8 bytes).
func alignedCopy(b []byte) []byte {
	words := make([]uint64, (len(b)+7)/8)
	out := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(b))
	copy(out, b)
	return out
}

// tensorFromValue copies an ORT-owned tensor into Go memory. Scalars, zero-size tensors
// and every fixed-size element type work; the value itself stays owned by the caller.
func tensorFromValue(v *C.OrtValue) (*tensor.Tensor, error) {
	if v == nil {
		return nil, fmt.Errorf("onnxruntime returned no value")
	}
	var ot C.enum_ONNXType
	if err := statusToError(C.ort_value_type(v, &ot)); err != nil {
		return nil, err
	}
	if ot != C.ONNX_TYPE_TENSOR {
		return nil, fmt.Errorf("value of ONNX type %d is not a tensor", int(ot))
	}
	var tsi *C.OrtTensorTypeAndShapeInfo
	if err := statusToError(C.ort_tensor_type_and_shape(v, &tsi)); err != nil {
		return nil, err
	}
	defer C.ort_release_tensor_type_and_shape_info(tsi)
	var et C.ONNXTensorElementDataType
	if err := statusToError(C.ort_tensor_element_type(tsi, &et)); err != nil {
		return nil, err
	}
	shape, err := dims(tsi)
	if err != nil {
		return nil, err
	}
	t := &tensor.Tensor{DType: tensor.DType(et), Shape: shape}
	n := tensor.NumElements(shape)

	if t.DType == tensor.String {
		t.Strings, err = stringsFromValue(v, n)
		return t, err
	}
	size := int64(t.DType.Size())
	if size == 0 {
		return nil, fmt.Errorf("element type %v is not supported", t.DType)
	}
	t.Data = make([]byte, n*size)
	if n == 0 {
		return t, nil // no buffer to read; ORT may not even have one
	}
	var p unsafe.Pointer
	if err := statusToError(C.ort_tensor_mutable_data(v, &p)); err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("onnxruntime returned no data for a %v tensor of shape %v", t.DType, shape)
	}
	copy(t.Data, unsafe.Slice((*byte)(p), len(t.Data)))
	return t, nil
}

func stringsFromValue(v *C.OrtValue, n int64) ([]string, error) {
	out := make([]string, n)
	if n == 0 {
		return out, nil
	}
	var total C.size_t
	if err := statusToError(C.ort_string_tensor_data_length(v, &total)); err != nil {
		return nil, err
	}
	buf := make([]byte, int(total)+1) // +1: never hand ORT a zero-length buffer
	offsets := make([]C.size_t, n)
	if err := statusToError(C.ort_string_tensor_content(v, unsafe.Pointer(&buf[0]), total, &offsets[0], C.size_t(n))); err != nil {
		return nil, err
	}
	for i := range out {
		start, end := int(offsets[i]), int(total)
		if i+1 < len(out) {
			end = int(offsets[i+1])
		}
		if start > end || end > int(total) {
			return nil, fmt.Errorf("onnxruntime returned bad string offsets")
		}
		out[i] = string(buf[start:end])
	}
	return out, nil
}

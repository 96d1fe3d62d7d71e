package ort

/*
#include <stdlib.h>
#include "ort_wrapper.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"unsafe"

	"github.com/openeas/openeas/internal/tensor"
)

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("ort: session closed")

// Session is one loaded model. Run is safe for concurrent use; Close waits for runs in
// flight and makes later runs fail with ErrClosed.
type Session struct {
	path string

	// mu: Run holds it for reading for the whole call, Close for writing, so the C
	// session and the C name strings are never released under a running inference.
	mu   sync.RWMutex
	sess *C.OrtSession

	inputs, outputs   []tensor.Info
	inNames, outNames []*C.char // C copies of the names, in signature order; freed by Close
	inIndex, outIndex map[string]int
	allOutputs        []int // indices of the tensor outputs: the default selection
}

// NewSession loads the model at modelPath with opts. Errors name the model file.
func NewSession(modelPath string, opts SessionOptions) (*Session, error) {
	if !initialized() {
		return nil, ErrNotInitialized
	}
	fi, err := os.Stat(modelPath)
	if err != nil {
		return nil, fmt.Errorf("ort: load model %s: %w", modelPath, err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("ort: load model %s: is a directory, want an .onnx file", modelPath)
	}
	copts, err := opts.newCOptions()
	if err != nil {
		return nil, fmt.Errorf("ort: load model %s: %w", modelPath, err)
	}
	defer C.ort_release_session_options(copts)

	cpath := C.CString(modelPath)
	defer C.free(unsafe.Pointer(cpath))
	s := &Session{path: modelPath}
	if err := statusToError(C.ort_create_session(lib.env, cpath, copts, &s.sess)); err != nil {
		return nil, fmt.Errorf("ort: load model %s: %w", modelPath, err)
	}
	if err := s.readSignature(); err != nil {
		s.Close()
		return nil, fmt.Errorf("ort: load model %s: %w", modelPath, err)
	}
	return s, nil
}

func (s *Session) readSignature() error {
	var nIn, nOut C.size_t
	if err := statusToError(C.ort_session_input_count(s.sess, &nIn)); err != nil {
		return fmt.Errorf("input count: %w", err)
	}
	if err := statusToError(C.ort_session_output_count(s.sess, &nOut)); err != nil {
		return fmt.Errorf("output count: %w", err)
	}
	s.inIndex = make(map[string]int, int(nIn))
	for i := range int(nIn) {
		info, err := s.ioInfo(i, true)
		if err != nil {
			return err
		}
		s.inputs = append(s.inputs, info)
		s.inNames = append(s.inNames, C.CString(info.Name))
		s.inIndex[info.Name] = i
	}
	s.outIndex = make(map[string]int, int(nOut))
	for i := range int(nOut) {
		info, err := s.ioInfo(i, false)
		if err != nil {
			return err
		}
		s.outputs = append(s.outputs, info)
		s.outNames = append(s.outNames, C.CString(info.Name))
		s.outIndex[info.Name] = i
		if info.DType != tensor.Invalid {
			s.allOutputs = append(s.allOutputs, i)
		}
	}
	return nil
}

// ioInfo reads the name and type of input (or output) i.
func (s *Session) ioInfo(i int, input bool) (tensor.Info, error) {
	kind := "output"
	if input {
		kind = "input"
	}
	var cname *C.char
	var err error
	if input {
		err = statusToError(C.ort_session_input_name(s.sess, C.size_t(i), lib.alloc, &cname))
	} else {
		err = statusToError(C.ort_session_output_name(s.sess, C.size_t(i), lib.alloc, &cname))
	}
	if err != nil {
		return tensor.Info{}, fmt.Errorf("%s %d name: %w", kind, i, err)
	}
	name := C.GoString(cname)
	if err := statusToError(C.ort_allocator_free(lib.alloc, unsafe.Pointer(cname))); err != nil {
		return tensor.Info{}, fmt.Errorf("%s %q: free name: %w", kind, name, err)
	}

	var ti *C.OrtTypeInfo
	if input {
		err = statusToError(C.ort_session_input_type_info(s.sess, C.size_t(i), &ti))
	} else {
		err = statusToError(C.ort_session_output_type_info(s.sess, C.size_t(i), &ti))
	}
	if err != nil {
		return tensor.Info{}, fmt.Errorf("%s %q type: %w", kind, name, err)
	}
	defer C.ort_release_type_info(ti)
	info, err := infoFromTypeInfo(name, ti)
	if err != nil {
		return tensor.Info{}, fmt.Errorf("%s %q type: %w", kind, name, err)
	}
	return info, nil
}

// infoFromTypeInfo describes a tensor input or output. Non-tensor values (sequences,
// maps) get DType Invalid and an unknown shape: no tensor.Tensor can represent them.
func infoFromTypeInfo(name string, ti *C.OrtTypeInfo) (tensor.Info, error) {
	info := tensor.Info{Name: name}
	var ot C.enum_ONNXType
	if err := statusToError(C.ort_onnx_type_from_type_info(ti, &ot)); err != nil {
		return info, err
	}
	if ot != C.ONNX_TYPE_TENSOR {
		return info, nil
	}
	var tsi *C.OrtTensorTypeAndShapeInfo
	if err := statusToError(C.ort_cast_type_info_to_tensor_info(ti, &tsi)); err != nil {
		return info, err
	}
	var et C.ONNXTensorElementDataType
	if err := statusToError(C.ort_tensor_element_type(tsi, &et)); err != nil {
		return info, err
	}
	info.DType = tensor.DType(et)
	shape, err := dims(tsi)
	if err != nil {
		return info, err
	}
	info.Shape = shape
	if len(shape) > 0 {
		names := make([]*C.char, len(shape))
		if err := statusToError(C.ort_symbolic_dimensions(tsi, &names[0], C.size_t(len(names)))); err != nil {
			return info, err
		}
		dimNames := make([]string, len(names))
		named := false
		for k, p := range names {
			if p != nil {
				dimNames[k] = C.GoString(p)
				named = named || dimNames[k] != ""
			}
		}
		if named {
			info.DimNames = dimNames
		}
	}
	return info, nil
}

// dims reads a shape; the result is non-nil (empty for a scalar) so rank is always known.
func dims(tsi *C.OrtTensorTypeAndShapeInfo) ([]int64, error) {
	var n C.size_t
	if err := statusToError(C.ort_dimensions_count(tsi, &n)); err != nil {
		return nil, err
	}
	shape := make([]int64, int(n))
	if n > 0 {
		if err := statusToError(C.ort_dimensions(tsi, (*C.int64_t)(unsafe.Pointer(&shape[0])), n)); err != nil {
			return nil, err
		}
	}
	return shape, nil
}

// Inputs describes the model's inputs in declared order (-1 for dynamic dims).
func (s *Session) Inputs() []tensor.Info { return cloneInfos(s.inputs) }

// Outputs describes the model's outputs in declared order.
func (s *Session) Outputs() []tensor.Info { return cloneInfos(s.outputs) }

func cloneInfos(in []tensor.Info) []tensor.Info {
	out := make([]tensor.Info, len(in))
	for i, x := range in {
		out[i] = tensor.Info{Name: x.Name, DType: x.DType, Shape: slices.Clone(x.Shape), DimNames: slices.Clone(x.DimNames)}
	}
	return out
}

// Run feeds inputs (by name; every model input is required) and returns the outputs
// named in outputs (nil = every tensor output, in signature order), copied into Go memory. It is safe
// for concurrent use. Cancelling ctx asks ONNX Runtime to terminate the inference
// (RunOptionsSetTerminate); the error then wraps ctx.Err().
func (s *Session) Run(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.sess == nil {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ort: run %s: %w", s.path, err)
	}
	outIdx, err := s.selectOutputs(outputs)
	if err != nil {
		return nil, fmt.Errorf("ort: run %s: %w", s.path, err)
	}
	if err := s.checkInputs(inputs); err != nil {
		return nil, fmt.Errorf("ort: run %s: %w", s.path, err)
	}

	// Inputs are created over the callers' Go memory, pinned until Run returns, so
	// numeric tensors are not copied on the way in.
	var pin runtime.Pinner
	defer pin.Unpin()
	n := len(s.inputs)
	inVals := make([]*C.OrtValue, n)
	defer func() {
		for _, v := range inVals {
			if v != nil {
				C.ort_release_value(v)
			}
		}
	}()
	for i, info := range s.inputs {
		v, err := newValue(inputs[info.Name], &pin)
		if err != nil {
			return nil, fmt.Errorf("ort: run %s: input %q: %w", s.path, info.Name, err)
		}
		inVals[i] = v
	}
	outNames := make([]*C.char, len(outIdx))
	for k, i := range outIdx {
		outNames[k] = s.outNames[i]
	}
	outVals := make([]*C.OrtValue, len(outIdx))
	defer func() {
		for _, v := range outVals {
			if v != nil {
				C.ort_release_value(v)
			}
		}
	}()

	if err := s.run(ctx, inVals, outNames, outVals); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("ort: run %s: %w: %w", s.path, cerr, err)
		}
		return nil, fmt.Errorf("ort: run %s: %w", s.path, err)
	}
	result := make(map[string]*tensor.Tensor, len(outIdx))
	for k, i := range outIdx {
		name := s.outputs[i].Name
		t, err := tensorFromValue(outVals[k])
		if err != nil {
			return nil, fmt.Errorf("ort: run %s: output %q: %w", s.path, name, err)
		}
		result[name] = t
	}
	return result, nil
}

// run makes the C Run call with a RunOptions that ctx cancellation terminates.
func (s *Session) run(ctx context.Context, inVals []*C.OrtValue, outNames []*C.char, outVals []*C.OrtValue) error {
	var ro *C.OrtRunOptions
	if err := statusToError(C.ort_create_run_options(&ro)); err != nil {
		return fmt.Errorf("create run options: %w", err)
	}
	defer C.ort_release_run_options(ro)
	stop := func() bool { return true }
	var terminated chan struct{}
	if ctx.Done() != nil { // a context that can never be cancelled needs no watcher
		terminated = make(chan struct{})
		stop = context.AfterFunc(ctx, func() {
			defer close(terminated)
			_ = statusToError(C.ort_run_options_set_terminate(ro)) // best effort; Run's own error reports the outcome
		})
	}

	var inNames **C.char
	var inPtr **C.OrtValue
	if len(inVals) > 0 {
		inNames = &s.inNames[0]
		inPtr = &inVals[0]
	}
	var outNamesPtr **C.char
	var outPtr **C.OrtValue
	if len(outNames) > 0 {
		outNamesPtr = &outNames[0]
		outPtr = &outVals[0]
	}
	err := statusToError(C.ort_run(s.sess, ro, inNames, inPtr, C.size_t(len(inVals)), outNamesPtr, C.size_t(len(outNames)), outPtr))
	if !stop() {
		<-terminated // the callback is using ro; keep it alive until it is done
	}
	return err
}

func (s *Session) selectOutputs(names []string) ([]int, error) {
	if names == nil {
		return s.allOutputs, nil
	}
	idx := make([]int, len(names))
	for k, name := range names {
		i, ok := s.outIndex[name]
		if !ok {
			return nil, fmt.Errorf("unknown output %q; the model's outputs are %v", name, infoNames(s.outputs))
		}
		if slices.Contains(names[:k], name) {
			return nil, fmt.Errorf("output %q requested twice", name)
		}
		if s.outputs[i].DType == tensor.Invalid {
			return nil, fmt.Errorf("output %q is not a tensor", name)
		}
		idx[k] = i
	}
	return idx, nil
}

// checkInputs validates names, dtypes and shapes against the signature so ORT never
// sees a request it would have to reject.
func (s *Session) checkInputs(inputs map[string]*tensor.Tensor) error {
	for name := range inputs {
		if _, ok := s.inIndex[name]; !ok {
			return fmt.Errorf("unknown input %q; the model's inputs are %v", name, infoNames(s.inputs))
		}
	}
	for _, info := range s.inputs {
		t := inputs[info.Name]
		if t == nil {
			return fmt.Errorf("missing input %q (%s %s)", info.Name, info.DType, tensor.ShapeString(info.Shape))
		}
		if t.DType != info.DType {
			return fmt.Errorf("input %q: dtype %s, expected %s", info.Name, t.DType, info.DType)
		}
		if !info.Accepts(t.Shape) {
			return fmt.Errorf("input %q: shape %v, expected %s", info.Name, t.Shape, tensor.ShapeString(info.Shape))
		}
	}
	return nil
}

func infoNames(infos []tensor.Info) []string {
	names := make([]string, len(infos))
	for i, x := range infos {
		names[i] = x.Name
	}
	return names
}

// Close releases the session after any runs in flight finish. It is idempotent.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil {
		return nil
	}
	C.ort_release_session(s.sess)
	s.sess = nil
	for _, p := range s.inNames {
		C.free(unsafe.Pointer(p))
	}
	for _, p := range s.outNames {
		C.free(unsafe.Pointer(p))
	}
	s.inNames, s.outNames = nil, nil
	return nil
}

package torch

/*
#include <stdlib.h>
#include "torch_dl.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/openeas/openeas/internal/tensor"
)

// LoadOptions select how a model is loaded.
type LoadOptions struct {
	// Device is "cpu" (the default) or "cuda".
	Device string
	// OptimizeForInference applies torch::jit::optimize_for_inference (freezing first).
	OptimizeForInference bool
}

// Model is one loaded TorchScript module. Forward is safe for concurrent use; Close waits
// for in-flight calls.
type Model struct {
	mu     sync.RWMutex // read-held by Forward for the whole C call; Close takes it to free
	m      *C.oet_model
	device string
}

// Load reads the TorchScript file at path. Errors name the file.
func Load(path string, opts LoadOptions) (*Model, error) {
	if !initialized() {
		return nil, ErrNotInitialized
	}
	dev := opts.Device
	if dev == "" {
		dev = "cpu"
	}
	cpath, cdev := C.CString(path), C.CString(dev)
	defer C.free(unsafe.Pointer(cpath))
	defer C.free(unsafe.Pointer(cdev))
	flags := C.int(0)
	if opts.OptimizeForInference {
		flags |= C.OET_LOAD_OPTIMIZE
	}
	var m *C.oet_model
	if err := takeError(C.dl_load(cpath, cdev, flags, &m), "load "+path); err != nil {
		return nil, err
	}
	return &Model{m: m, device: dev}, nil
}

// Device is the device the model runs on.
func (m *Model) Device() string { return m.device }

// Schema is forward's TorchScript signature.
type Schema struct {
	Inputs []SchemaArg `json:"inputs"`
	// Returns is the return type as TorchScript writes it ("Tensor", "Tuple[Tensor, int]").
	Returns string `json:"returns"`
	// Outputs are the flattened outputs forward returns (names as Forward gives them), or
	// nil when the return type's layout is known only at run time (lists, dicts).
	Outputs []SchemaArg `json:"outputs"`
}

// SchemaArg is one argument or flattened output.
type SchemaArg struct {
	Name       string `json:"name"`
	Type       string `json:"type"` // "Tensor", "int", "float", "bool", ...
	HasDefault bool   `json:"has_default,omitempty"`
}

// Schema describes forward.
func (m *Model) Schema() (Schema, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.m == nil {
		return Schema{}, errors.New("torch: model is closed")
	}
	var js *C.char
	if err := takeError(C.dl_signature(m.m, &js), "read forward's schema"); err != nil {
		return Schema{}, err
	}
	var s Schema
	if err := json.Unmarshal([]byte(takeString(js)), &s); err != nil {
		return Schema{}, fmt.Errorf("torch: decode schema: %w", err)
	}
	return s, nil
}

// Output is one flattened output of forward.
type Output struct {
	Name   string
	Tensor *tensor.Tensor
}

// Forward runs forward on inputs, positionally, and returns its flattened outputs (see
// oet_forward in shim/openeas_torch.h for the names). A failure inside the model is an
// *Error with Op "forward". libtorch cannot be interrupted: when ctx ends first, Forward
// returns ctx.Err() at once and the call finishes in the background.
func (m *Model) Forward(ctx context.Context, inputs []*tensor.Tensor) ([]Output, error) {
	for i, t := range inputs {
		if t == nil {
			return nil, fmt.Errorf("torch: input %d is nil", i)
		}
		if t.DType == tensor.String {
			return nil, fmt.Errorf("torch: input %d: string tensors have no libtorch equivalent", i)
		}
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("torch: input %d: %w", i, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	if m.m == nil {
		m.mu.RUnlock()
		return nil, errors.New("torch: model is closed")
	}
	type result struct {
		outs []Output
		err  error
	}
	done := make(chan result, 1)
	go func() {
		defer m.mu.RUnlock()
		outs, err := m.forward(inputs)
		done <- result{outs, err}
	}()
	select {
	case r := <-done:
		return r.outs, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// forward makes the C call; the caller holds m.mu for reading.
func (m *Model) forward(inputs []*tensor.Tensor) ([]Output, error) {
	n := len(inputs)
	// The oet_input array lives in C memory and points at pinned Go memory (shapes and
	// data), which the shim copies before returning.
	var pin runtime.Pinner
	defer pin.Unpin()
	var cin *C.oet_input
	if n > 0 {
		cin = (*C.oet_input)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.oet_input{}))))
		defer C.free(unsafe.Pointer(cin))
	}
	arr := unsafe.Slice(cin, n)
	for i, t := range inputs {
		arr[i].dtype = C.int32_t(t.DType)
		arr[i].ndim = C.int32_t(len(t.Shape))
		arr[i].nbytes = C.int64_t(len(t.Data))
		if len(t.Shape) > 0 {
			pin.Pin(&t.Shape[0])
			arr[i].shape = (*C.int64_t)(unsafe.Pointer(&t.Shape[0]))
		}
		if len(t.Data) > 0 {
			pin.Pin(&t.Data[0])
			arr[i].data = unsafe.Pointer(&t.Data[0])
		}
	}
	var co *C.oet_outputs
	if err := takeError(C.dl_forward(m.m, cin, C.int(n), &co), "forward"); err != nil {
		return nil, err
	}
	defer C.dl_free_outputs(co)
	count := int(C.dl_outputs_count(co))
	outs := make([]Output, count)
	for i := range count {
		o := C.dl_outputs_at(co, C.int(i))
		shape := make([]int64, int(o.ndim))
		if o.ndim > 0 {
			copy(shape, unsafe.Slice((*int64)(unsafe.Pointer(o.shape)), int(o.ndim)))
		}
		t := &tensor.Tensor{DType: tensor.DType(o.dtype), Shape: shape, Data: C.GoBytes(o.data, C.int(o.nbytes))}
		outs[i] = Output{Name: C.GoString(o.name), Tensor: t}
	}
	return outs, nil
}

// Close frees the model after in-flight Forward calls finish. It is safe to call twice.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m != nil {
		C.dl_free_model(m.m)
		m.m = nil
	}
	return nil
}

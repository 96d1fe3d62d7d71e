// Package processor defines what a worker hosts: a loaded model that turns named input
// tensors into named output tensors. Runtime-specific implementations live in subpackages
// (onnxrt/, later pytorch/); only worker and blade processes import those, never easd.
package processor

import (
	"context"
	"errors"
	"fmt"

	"github.com/openeas/openeas/internal/tensor"
)

// Signature is a model's inputs and outputs in their declared order.
type Signature struct {
	Inputs  []tensor.Info `json:"inputs"`
	Outputs []tensor.Info `json:"outputs"`
}

// Processor is one loaded model.
//
// Predict is safe for concurrent use. inputs are keyed by input name; outputs names the
// outputs wanted, in order (nil = all, in signature order). Cancelling ctx abandons the
// wait for the result; an inference already inside the runtime may run to completion.
// Bad inputs (unknown name, wrong dtype or shape, missing input) return an *InputError.
type Processor interface {
	Signature() Signature
	Predict(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error)
	Close() error
}

// RuntimeVersioner is implemented by processors that can name the runtime serving the
// model ("ONNX Runtime 1.30.0", "libtorch 1.13.1"); workers report it when they are ready.
type RuntimeVersioner interface {
	RuntimeVersion() string
}

// InputError is a request the model cannot take; gateways answer it with HTTP 400.
type InputError struct {
	Input string // the input (or output) name concerned; empty when not about one tensor
	Msg   string
}

func (e *InputError) Error() string {
	if e.Input == "" {
		return e.Msg
	}
	return fmt.Sprintf("input %q: %s", e.Input, e.Msg)
}

// IsInputError reports whether err is (or wraps) an *InputError.
func IsInputError(err error) bool {
	var ie *InputError
	return errors.As(err, &ie)
}

// CheckInputs validates inputs against sig: every input present, none unknown,
// dtypes and shapes as declared. Processors call it before touching the runtime.
func CheckInputs(sig Signature, inputs map[string]*tensor.Tensor) error {
	known := make(map[string]bool, len(sig.Inputs))
	for _, in := range sig.Inputs {
		known[in.Name] = true
		t, ok := inputs[in.Name]
		if !ok || t == nil {
			dt := in.DType.String()
			if in.DType == tensor.Invalid {
				dt = "a tensor of"
			}
			return &InputError{Input: in.Name, Msg: fmt.Sprintf("missing; the model expects %s %s", dt, tensor.ShapeString(in.Shape))}
		}
		if in.DType != tensor.Invalid && t.DType != in.DType {
			return &InputError{Input: in.Name, Msg: fmt.Sprintf("dtype %s, expected %s", t.DType, in.DType)}
		}
		if !in.Accepts(t.Shape) {
			return &InputError{Input: in.Name, Msg: fmt.Sprintf("shape %v, expected %s", t.Shape, tensor.ShapeString(in.Shape))}
		}
		if err := t.Validate(); err != nil {
			return &InputError{Input: in.Name, Msg: err.Error()}
		}
	}
	for name := range inputs {
		if !known[name] {
			return &InputError{Input: name, Msg: fmt.Sprintf("unknown input; the model's inputs are %v", inputNames(sig))}
		}
	}
	return nil
}

func inputNames(sig Signature) []string {
	names := make([]string, len(sig.Inputs))
	for i, in := range sig.Inputs {
		names[i] = in.Name
	}
	return names
}

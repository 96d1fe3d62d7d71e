// Package onnxrt is the processor.Processor on ONNX Runtime (through internal/ort).
// The process must have called ort.Init first; only worker and blade processes import it.
package onnxrt

import (
	"context"
	"fmt"
	"slices"

	"github.com/openeas/openeas/internal/ort"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// Processor serves one ONNX model. Predict is safe for concurrent use.
type Processor struct {
	sess    *ort.Session
	sig     processor.Signature
	outputs map[string]tensor.Info
}

var _ processor.Processor = (*Processor)(nil)

// Open loads modelPath with the bundle's runtime settings. Errors name the model file.
func Open(modelPath string, rt processor.Runtime) (processor.Processor, error) {
	s, err := ort.NewSession(modelPath, ort.OptionsFromRuntime(rt))
	if err != nil {
		return nil, fmt.Errorf("onnxrt: %w", err)
	}
	p := &Processor{
		sess:    s,
		sig:     processor.Signature{Inputs: s.Inputs(), Outputs: s.Outputs()},
		outputs: make(map[string]tensor.Info),
	}
	for _, o := range p.sig.Outputs {
		p.outputs[o.Name] = o
	}
	return p, nil
}

// Signature is the model's inputs and outputs in declared order. An output that is not
// a tensor (a sequence or map, as scikit-learn converters emit) has DType Invalid and
// cannot be requested.
func (p *Processor) Signature() processor.Signature {
	return processor.Signature{Inputs: cloneInfos(p.sig.Inputs), Outputs: cloneInfos(p.sig.Outputs)}
}

// cloneInfos deep-copies, so callers cannot alter the signature Predict checks against.
func cloneInfos(in []tensor.Info) []tensor.Info {
	out := make([]tensor.Info, len(in))
	for i, x := range in {
		out[i] = tensor.Info{Name: x.Name, DType: x.DType, Shape: slices.Clone(x.Shape), DimNames: slices.Clone(x.DimNames)}
	}
	return out
}

// Predict checks inputs and the requested outputs against the signature (bad ones give
// a *processor.InputError), then runs the model. outputs nil means every tensor output.
// Cancelling ctx stops the inference inside ONNX Runtime; the error then wraps ctx.Err().
func (p *Processor) Predict(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error) {
	if err := processor.CheckInputs(p.sig, inputs); err != nil {
		return nil, err
	}
	for k, name := range outputs {
		o, ok := p.outputs[name]
		switch {
		case !ok:
			return nil, &processor.InputError{Input: name, Msg: fmt.Sprintf("unknown output; the model's outputs are %v", p.outputNames())}
		case slices.Contains(outputs[:k], name):
			return nil, &processor.InputError{Input: name, Msg: "output requested twice"}
		case o.DType == tensor.Invalid:
			return nil, &processor.InputError{Input: name, Msg: "output is not a tensor (a sequence or map) and cannot be returned"}
		}
	}
	out, err := p.sess.Run(ctx, inputs, outputs)
	if err != nil {
		return nil, fmt.Errorf("onnxrt: %w", err)
	}
	return out, nil
}

func (p *Processor) outputNames() []string {
	names := make([]string, len(p.sig.Outputs))
	for i, o := range p.sig.Outputs {
		names[i] = o.Name
	}
	return names
}

// Close releases the session after in-flight predictions finish.
func (p *Processor) Close() error { return p.sess.Close() }

// RuntimeVersion names the ONNX Runtime release serving the model.
func (p *Processor) RuntimeVersion() string { return "ONNX Runtime " + ort.Version() }

// Package torchproc is the processor.Processor for TorchScript models on libtorch (through
// internal/torch). The process must have called torch.Init first; only worker and blade
// processes import it.
//
// Inputs are positional in TorchScript: the signature's input order is forward's argument
// order (see SignatureSuffix for where dtypes and shapes come from). Outputs are forward's
// result flattened by the shim: a tensor is "output_0", tuple and list elements
// "output_<i>", dict entries their keys.
package torchproc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
	"github.com/openeas/openeas/internal/torch"
)

// ConfigOptimizeForInference is the processor.Runtime config entry ("true") that makes the
// processor apply torch::jit::optimize_for_inference at load. Blade sets it when that
// measured faster: the rewritten module (MKLDNN weights) is built at load, not saved.
const ConfigOptimizeForInference = "torch.optimize_for_inference"

// Options select the device.
type Options struct {
	Device string // "cpu" (default) or "cuda"
}

// Processor serves one TorchScript model. Predict is safe for concurrent use.
type Processor struct {
	model   *torch.Model
	sig     processor.Signature
	outputs map[string]bool
}

var _ processor.Processor = (*Processor)(nil)

// Open loads the TorchScript file at modelPath with the bundle's runtime settings. Thread
// counts are process-wide in libtorch; a worker hosts one model, so that is what we want.
// Errors name the model file.
func Open(modelPath string, rt processor.Runtime, opts Options) (*Processor, error) {
	if rt.IntraOpThreads > 0 {
		if err := torch.SetThreads(rt.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("torchproc: %w", err)
		}
	}
	if rt.InterOpThreads > 0 {
		if err := torch.SetInteropThreads(rt.InterOpThreads); err != nil {
			return nil, fmt.Errorf("torchproc: %w", err)
		}
	}
	m, err := torch.Load(modelPath, torch.LoadOptions{
		Device:               opts.Device,
		OptimizeForInference: rt.ConfigEntries[ConfigOptimizeForInference] == "true",
	})
	if err != nil {
		return nil, fmt.Errorf("torchproc: %w", err)
	}
	sig, err := signature(m, modelPath)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("torchproc: %s: %w", modelPath, err)
	}
	p := &Processor{model: m, sig: sig, outputs: map[string]bool{}}
	for _, o := range sig.Outputs {
		p.outputs[o.Name] = true
	}
	return p, nil
}

// signature combines forward's schema with the model's signature file (if any).
func signature(m *torch.Model, modelPath string) (processor.Signature, error) {
	schema, err := m.Schema()
	if err != nil {
		return processor.Signature{}, err
	}
	required := 0
	for _, a := range schema.Inputs {
		if !a.HasDefault {
			required++
		}
	}
	sig, ok, err := ReadSignatureFile(modelPath)
	if err != nil {
		return processor.Signature{}, err
	}
	if ok {
		if n := len(sig.Inputs); n < required || n > len(schema.Inputs) {
			return processor.Signature{}, fmt.Errorf("signature file names %d inputs, but forward takes %d (%s)", n, len(schema.Inputs), argList(schema.Inputs))
		}
	} else {
		for _, a := range schema.Inputs {
			if a.HasDefault {
				break // only the arguments a caller must give
			}
			if a.Type != "Tensor" {
				return processor.Signature{}, fmt.Errorf("forward's argument %s has type %s; OpenEAS feeds tensors only", a.Name, a.Type)
			}
			// Undeclared dtype: each request's own (tensor.Info), libtorch judges the rest.
			sig.Inputs = append(sig.Inputs, tensor.Info{Name: a.Name, DType: tensor.Invalid})
		}
	}
	if len(sig.Outputs) > 0 {
		return sig, nil
	}
	if schema.Outputs != nil {
		for _, o := range schema.Outputs {
			dt, _ := argDType(o.Type)
			sig.Outputs = append(sig.Outputs, tensor.Info{Name: o.Name, DType: dt, Shape: shapeOf(o.Type)})
		}
		return sig, nil
	}
	// A list or dict result: learn its layout from one run on zeros, when the inputs say
	// enough to build them.
	probe, err := zeros(sig.Inputs)
	if err != nil {
		return processor.Signature{}, fmt.Errorf("forward returns %s, whose outputs are known only at run time, and %v: "+
			"describe the inputs in %s (Blade writes it from test data)", schema.Returns, err, modelPath+SignatureSuffix)
	}
	outs, err := m.Forward(context.Background(), probe)
	if err != nil {
		return processor.Signature{}, fmt.Errorf("learn the outputs of %s from a run on zeros: %w", schema.Returns, err)
	}
	for _, o := range outs {
		shape := slices.Clone(o.Tensor.Shape)
		if len(shape) > 0 && len(sig.Inputs) > 0 && len(sig.Inputs[0].Shape) > 0 && sig.Inputs[0].Shape[0] < 0 {
			shape[0] = -1 // a dynamic batch dimension carries through
		}
		sig.Outputs = append(sig.Outputs, tensor.Info{Name: o.Name, DType: o.Tensor.DType, Shape: shape})
	}
	return sig, nil
}

func argList(args []torch.SchemaArg) string {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = a.Name + ": " + a.Type
	}
	return strings.Join(s, ", ")
}

// argDType maps a TorchScript output type to a dtype: a Tensor's dtype is not declared,
// so float32 is assumed (the signature file overrides it).
func argDType(typ string) (tensor.DType, bool) {
	switch typ {
	case "Tensor":
		return tensor.Float, true
	case "int":
		return tensor.Int64, true
	case "float":
		return tensor.Double, true
	case "bool":
		return tensor.Bool, true
	}
	return tensor.Invalid, false
}

// shapeOf is nil (any rank) for tensors and [] for scalars.
func shapeOf(typ string) []int64 {
	if typ == "Tensor" {
		return nil
	}
	return []int64{}
}

// zeros builds one input of zeros per info, dynamic dimensions set to 1.
func zeros(infos []tensor.Info) ([]*tensor.Tensor, error) {
	out := make([]*tensor.Tensor, len(infos))
	for i, in := range infos {
		if in.Shape == nil {
			return nil, fmt.Errorf("the rank of input %s is unknown", in.Name)
		}
		shape := slices.Clone(in.Shape)
		for k, d := range shape {
			if d < 0 {
				shape[k] = 1
			}
		}
		out[i] = &tensor.Tensor{DType: in.DType, Shape: shape, Data: make([]byte, tensor.NumElements(shape)*int64(in.DType.Size()))}
	}
	return out, nil
}

// Signature is the model's inputs (forward's argument order) and flattened outputs.
func (p *Processor) Signature() processor.Signature {
	clone := func(in []tensor.Info) []tensor.Info {
		out := make([]tensor.Info, len(in))
		for i, x := range in {
			out[i] = tensor.Info{Name: x.Name, DType: x.DType, Shape: slices.Clone(x.Shape), DimNames: slices.Clone(x.DimNames)}
		}
		return out
	}
	return processor.Signature{Inputs: clone(p.sig.Inputs), Outputs: clone(p.sig.Outputs)}
}

// RuntimeVersion says what serves the model, e.g. "libtorch 1.13.1 (cpu)".
func (p *Processor) RuntimeVersion() string {
	return fmt.Sprintf("libtorch %s (%s)", torch.Version(), p.model.Device())
}

// Predict checks inputs and the requested outputs against the signature (bad ones give a
// *processor.InputError), then runs forward. outputs nil means all. An error raised inside
// the model (a dtype or shape forward cannot take) is an *InputError too: TorchScript
// declares neither, so the model is the judge.
func (p *Processor) Predict(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error) {
	if err := processor.CheckInputs(p.sig, inputs); err != nil {
		return nil, err
	}
	for k, name := range outputs {
		switch {
		case !p.outputs[name]:
			return nil, &processor.InputError{Input: name, Msg: fmt.Sprintf("unknown output; the model's outputs are %v", names(p.sig.Outputs))}
		case slices.Contains(outputs[:k], name):
			return nil, &processor.InputError{Input: name, Msg: "output requested twice"}
		}
	}
	args := make([]*tensor.Tensor, len(p.sig.Inputs))
	for i, in := range p.sig.Inputs {
		args[i] = inputs[in.Name]
	}
	outs, err := p.model.Forward(ctx, args)
	var te *torch.Error
	if errors.As(err, &te) {
		return nil, &processor.InputError{Msg: "the model rejected the inputs: " + modelMessage(te.Msg)}
	}
	if err != nil {
		return nil, fmt.Errorf("torchproc: %w", err)
	}
	want := outputs
	if want == nil {
		want = names(p.sig.Outputs)
	}
	got := make(map[string]*tensor.Tensor, len(outs))
	for _, o := range outs {
		got[o.Name] = o.Tensor
	}
	res := make(map[string]*tensor.Tensor, len(want))
	for _, n := range want {
		t, ok := got[n]
		if !ok {
			return nil, fmt.Errorf("torchproc: forward returned no output %q (it returned %v); the signature file may be stale", n, outputNames(outs))
		}
		res[n] = t
	}
	return res, nil
}

// modelMessage keeps the line that says what went wrong from libtorch's message, which
// for scripted code starts with a TorchScript traceback.
func modelMessage(msg string) string {
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		for _, p := range []string{"RuntimeError: ", "ValueError: ", "TypeError: ", "IndexError: ", "AssertionError: "} {
			if strings.HasPrefix(l, p) {
				return strings.TrimPrefix(l, p)
			}
		}
	}
	return strings.TrimSpace(lines[0])
}

func names(infos []tensor.Info) []string {
	n := make([]string, len(infos))
	for i, x := range infos {
		n[i] = x.Name
	}
	return n
}

func outputNames(outs []torch.Output) []string {
	n := make([]string, len(outs))
	for i, o := range outs {
		n[i] = o.Name
	}
	return n
}

// Close frees the model after in-flight predictions finish.
func (p *Processor) Close() error { return p.model.Close() }

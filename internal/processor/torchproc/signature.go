package torchproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// SignatureSuffix names a model's signature file: model.pt → model.pt.signature.json.
//
// TorchScript records argument names but no dtypes or shapes, and a list or dict result
// has no static layout. The signature file, kept next to the model in the bundle, fills
// that in: Blade writes it from the test data it verifies with (or input_shapes), export
// scripts may write it, and a user may ship one inside model_path. Without it the
// processor takes names from forward's schema, takes tensors of any shape in the dtype each
// request carries (float32 for JSON numbers), and lets libtorch reject what does not fit
// (still an HTTP 400 naming the failure).
const SignatureSuffix = ".signature.json"

// SignatureFile is the JSON form: dtypes as names ("float32", "int64"), -1 for a dynamic
// dimension, no shape for an unknown rank. Outputs may be left out: they are then taken
// from forward's return type, or learnt by one run on zeros when the inputs are fully described.
type SignatureFile struct {
	Inputs  []SignatureArg `json:"inputs"`
	Outputs []SignatureArg `json:"outputs,omitempty"`
}

// SignatureArg is one input or output.
type SignatureArg struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape,omitempty"`
}

// ReadSignatureFile reads modelPath+SignatureSuffix; ok is false when there is none.
func ReadSignatureFile(modelPath string) (sig processor.Signature, ok bool, err error) {
	path := modelPath + SignatureSuffix
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return processor.Signature{}, false, nil
	}
	if err != nil {
		return processor.Signature{}, false, err
	}
	var f SignatureFile
	if err := json.Unmarshal(b, &f); err != nil {
		return processor.Signature{}, false, fmt.Errorf("signature file %s: %w", path, err)
	}
	if sig.Inputs, err = infos(f.Inputs, path, "inputs"); err != nil {
		return processor.Signature{}, false, err
	}
	if sig.Outputs, err = infos(f.Outputs, path, "outputs"); err != nil {
		return processor.Signature{}, false, err
	}
	return sig, true, nil
}

func infos(args []SignatureArg, path, field string) ([]tensor.Info, error) {
	out := make([]tensor.Info, 0, len(args))
	seen := map[string]bool{}
	for i, a := range args {
		if a.Name == "" || seen[a.Name] {
			return nil, fmt.Errorf("signature file %s: %s[%d]: name is empty or repeated", path, field, i)
		}
		seen[a.Name] = true
		dt, err := tensor.ParseDType(a.DType)
		if err != nil || dt == tensor.String || dt.Size() == 0 {
			return nil, fmt.Errorf("signature file %s: %s[%d] (%s): dtype %q is not a numeric dtype", path, field, i, a.Name, a.DType)
		}
		for _, d := range a.Shape {
			if d < -1 {
				return nil, fmt.Errorf("signature file %s: %s[%d] (%s): dimension %d; expected -1 (dynamic) or a size", path, field, i, a.Name, d)
			}
		}
		out = append(out, tensor.Info{Name: a.Name, DType: dt, Shape: a.Shape})
	}
	return out, nil
}

// WriteSignatureFile writes sig as modelPath+SignatureSuffix.
func WriteSignatureFile(modelPath string, sig processor.Signature) error {
	conv := func(in []tensor.Info) []SignatureArg {
		out := make([]SignatureArg, len(in))
		for i, x := range in {
			out[i] = SignatureArg{Name: x.Name, DType: x.DType.String(), Shape: x.Shape}
		}
		return out
	}
	b, err := json.MarshalIndent(SignatureFile{Inputs: conv(sig.Inputs), Outputs: conv(sig.Outputs)}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(modelPath+SignatureSuffix, append(b, '\n'), 0o644)
}

package codec

import (
	"fmt"
	"maps"
	"slices"

	"github.com/openeas/openeas/internal/processor"
)

// TFDefaultSignature is the signature used when a request names none.
const TFDefaultSignature = "serving_default"

// TFSignature is one SavedModel signature: aliases mapped to TF tensor names ("x:0").
type TFSignature struct {
	Inputs     map[string]string `json:"inputs"`
	Outputs    map[string]string `json:"outputs"`
	MethodName string            `json:"method_name,omitempty"`
}

// TFSignatures are a SavedModel's signatures by name.
type TFSignatures map[string]TFSignature

// Select returns the signature a request's signature_name picks: that one; for "" the
// default signature, or none (nil) when the model has no "serving_default". A model without
// signatures (a frozen.pb) ignores signature_name, as before. An unknown name is an
// *processor.InputError naming the known ones.
func (s TFSignatures) Select(name string) (string, *TFSignature, error) {
	if len(s) == 0 {
		return "", nil, nil
	}
	if name == "" {
		if sd, ok := s[TFDefaultSignature]; ok {
			return TFDefaultSignature, &sd, nil
		}
		return "", nil, nil
	}
	sd, ok := s[name]
	if !ok {
		return "", nil, &processor.InputError{Msg: fmt.Sprintf("unknown signature_name %q; the model's signatures are %q", name, slices.Sorted(maps.Keys(s)))}
	}
	return name, &sd, nil
}

// signedRequest is request for a request under signature sd: inputs and output_filter may
// name the signature's aliases or tensor names, outputs default to the signature's (sorted by
// alias), and the response keys outputs as the request named them.
func (r *tfRequest) signedRequest(sig processor.Signature, name string, sd *TFSignature) (*Request, error) {
	mapped := *r
	mapped.outputFilter = nil
	mapped.inputs = make([]namedArray, len(r.inputs))
	for i, e := range r.inputs {
		if t, ok := sd.Inputs[e.name]; ok {
			e.name = t
		} else if _, ok := findTFInfo(sig.Inputs, e.name); !ok {
			return nil, &processor.InputError{Input: e.name, Msg: fmt.Sprintf("unknown input; signature %q's inputs are %q", name, slices.Sorted(maps.Keys(sd.Inputs)))}
		}
		mapped.inputs[i] = e
	}
	req, err := mapped.request(sig)
	if err != nil {
		return nil, err
	}
	keys := r.outputFilter
	if len(keys) == 0 {
		keys = slices.Sorted(maps.Keys(sd.Outputs))
	}
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		tensorName := k
		if t, ok := sd.Outputs[k]; ok {
			tensorName = t
		}
		info, ok := findTFInfo(sig.Outputs, tensorName)
		if !ok {
			return nil, &processor.InputError{Msg: fmt.Sprintf("unknown output %q; signature %q's outputs are %q", k, name, slices.Sorted(maps.Keys(sd.Outputs)))}
		}
		req.Outputs = append(req.Outputs, info.Name)
		req.OutputKeys = append(req.OutputKeys, k)
	}
	return req, nil
}

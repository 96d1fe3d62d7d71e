package codec

import (
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
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

// Described is the signature to show users (v2 model metadata) of a model sig with these
// SavedModel signatures: the default signature's aliases, sorted, for the tensors it names,
// then the model's tensors no alias names. Without a default signature it is sig.
func (s TFSignatures) Described(sig processor.Signature) processor.Signature {
	_, sd, _ := s.Select("")
	if sd == nil {
		return sig
	}
	describe := func(model []tensor.Info, aliases map[string]string) []tensor.Info {
		resolved := map[string]string{}
		out := aliasedInfos(model, aliases, resolved)
		named := map[string]bool{}
		for _, name := range resolved {
			named[name] = true
		}
		for _, info := range model {
			if !named[info.Name] {
				out = append(out, info)
			}
		}
		return out
	}
	return processor.Signature{Inputs: describe(sig.Inputs, sd.Inputs), Outputs: describe(sig.Outputs, sd.Outputs)}
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
		tensorName := k
		if t, ok := sd.Outputs[k]; ok {
			tensorName = t
		}
		info, ok := findTFInfo(sig.Outputs, tensorName)
		if !ok {
			return nil, &processor.InputError{Msg: fmt.Sprintf("unknown output %q; signature %q's outputs are %q", k, name, slices.Sorted(maps.Keys(sd.Outputs)))}
		}
		// Request.Outputs has no duplicates: an output asked for twice (by alias and by
		// tensor name) is answered once, under the first name.
		if seen[info.Name] {
			continue
		}
		seen[info.Name] = true
		req.Outputs = append(req.Outputs, info.Name)
		req.OutputKeys = append(req.OutputKeys, k)
	}
	return req, nil
}

// JSON and v2 requests have no signature_name: for a model with a "serving_default" signature
// they may name inputs and outputs by its aliases, as a TF protobuf request without
// signature_name may, and the response keys outputs as that request's would.

// aliasNames is a model signature extended with one SavedModel signature's aliases, so that
// the JSON and v2 decoders accept them as names.
type aliasNames struct {
	name    string
	sd      *TFSignature
	sig     processor.Signature // the model's inputs and outputs, and the aliases
	inputs  map[string]string   // alias → the model's input name
	outputs map[string]string   // alias → the model's output name
}

// defaultAliases returns the aliases of sigs' default signature over sig, nil when there is
// none. An alias shadows a model name it equals, as in signedRequest; an alias whose tensor the
// model lacks (pruned away) is no name.
func defaultAliases(sig processor.Signature, sigs TFSignatures) *aliasNames {
	name, sd, _ := sigs.Select("")
	if sd == nil {
		return nil
	}
	a := &aliasNames{name: name, sd: sd, inputs: map[string]string{}, outputs: map[string]string{}}
	a.sig.Inputs = aliasInfos(sig.Inputs, sd.Inputs, a.inputs)
	a.sig.Outputs = aliasInfos(sig.Outputs, sd.Outputs, a.outputs)
	return a
}

// aliasInfos lists an Info for each alias whose tensor the model has (sorted by alias), then
// the model's own infos that no alias shadows; resolved gets alias → model name.
func aliasInfos(model []tensor.Info, aliases map[string]string, resolved map[string]string) []tensor.Info {
	out := aliasedInfos(model, aliases, resolved)
	for _, info := range model {
		if _, shadowed := resolved[info.Name]; !shadowed {
			out = append(out, info)
		}
	}
	return out
}

// aliasedInfos lists an Info for each alias whose tensor the model has, sorted by alias, with
// that tensor's dtype and shape; resolved gets alias → model name.
func aliasedInfos(model []tensor.Info, aliases map[string]string, resolved map[string]string) []tensor.Info {
	out := make([]tensor.Info, 0, len(model)+len(aliases))
	for _, alias := range slices.Sorted(maps.Keys(aliases)) {
		if info, ok := findTFInfo(model, aliases[alias]); ok {
			resolved[alias] = info.Name
			out = append(out, tensor.Info{Name: alias, DType: info.DType, Shape: info.Shape})
		}
	}
	return out
}

// resolve turns a request decoded against a.sig into one against the model's signature:
// inputs keyed by the model's names; outputs the ones asked for (by default the signature's,
// sorted by alias) keyed as asked (by default by alias).
func (a *aliasNames) resolve(req *Request) (*Request, error) {
	inputs := make(map[string]*tensor.Tensor, len(req.Inputs))
	from := make(map[string]string, len(req.Inputs)) // model name → the request's name for it
	for _, k := range slices.Sorted(maps.Keys(req.Inputs)) {
		name := k
		if m, ok := a.inputs[k]; ok {
			name = m
		}
		if prev, dup := from[name]; dup {
			return nil, &processor.InputError{Input: name, Msg: fmt.Sprintf("given twice, as %q and as %q (signature %q's aliases name tensors)", prev, k, a.name)}
		}
		from[name] = k
		inputs[name] = req.Inputs[k]
	}
	req.Inputs = inputs
	keys := req.Outputs
	if keys == nil {
		keys = slices.Sorted(maps.Keys(a.sd.Outputs))
	}
	req.Outputs, req.OutputKeys = make([]string, 0, len(keys)), make([]string, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		name := k
		if m, ok := a.outputs[k]; ok {
			name = m
		} else if _, alias := a.sd.Outputs[k]; alias {
			return nil, &processor.InputError{Msg: fmt.Sprintf("signature %q's output %q names tensor %q, which the model does not produce; its outputs are %v", a.name, k, a.sd.Outputs[k], infoNames(a.sig.Outputs))}
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		req.Outputs = append(req.Outputs, name)
		req.OutputKeys = append(req.OutputKeys, k)
	}
	return req, nil
}

// decodeJSONSigned is decodeJSON for a model with signatures (see aliasNames).
func decodeJSONSigned(body []byte, sig processor.Signature, sigs TFSignatures) (*Request, error) {
	a := defaultAliases(sig, sigs)
	if a == nil {
		return decodeJSON(body, sig)
	}
	req, err := decodeJSON(body, a.sig)
	if err != nil {
		return nil, err
	}
	return a.resolve(req)
}

// DecodeV2InferSigned is DecodeV2Infer for a model with SavedModel signatures: inputs and
// requested outputs may be named by the "serving_default" signature's aliases as well as by
// the model's names; without requested outputs the response holds that signature's outputs,
// named by alias. With no such signature it is DecodeV2Infer.
func DecodeV2InferSigned(header http.Header, body []byte, sig processor.Signature, sigs TFSignatures) (*Request, error) {
	a := defaultAliases(sig, sigs)
	if a == nil {
		return DecodeV2Infer(header, body, sig)
	}
	req, err := DecodeV2Infer(header, body, a.sig)
	if err != nil {
		return nil, err
	}
	return a.resolve(req)
}

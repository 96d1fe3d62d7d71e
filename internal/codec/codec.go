// Package codec turns predict request bodies into tensors and output tensors into response
// bodies, in the formats EAS clients speak: the EAS TensorFlow and PyTorch protobufs, plain
// JSON for curl users, and the Open Inference Protocol v2 (KServe/Triton) JSON with its
// binary-data extension.
//
// The protobuf formats are read and written at the wire level (protowire) rather than through
// the generated types in internal/easpb: packed float32 data on the wire is already the
// little-endian layout of tensor.Tensor.Data, so a float tensor is decoded without copying and
// encoded with one copy. Tests check every byte against the generated types.
//
// Every decode error is a *processor.InputError (the gateway answers HTTP 400) that names the
// input concerned and what was expected.
package codec

import (
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// Family is the processor family of a service; it decides which protobuf a body is in.
type Family int

const (
	FamilyTensorFlow Family = iota // EAS TensorFlow processor: tensorflow.eas protobuf
	FamilyPyTorch                  // EAS PyTorch processor: pytorch.eas protobuf
	FamilyONNX                     // ONNX and others: either protobuf, told apart by content
)

// FamilyOf maps a processor name (service.json "processor") to its family:
// "tensorflow*" → FamilyTensorFlow, "pytorch*" → FamilyPyTorch, anything else → FamilyONNX.
func FamilyOf(processorName string) Family {
	p := strings.ToLower(processorName)
	switch {
	case strings.HasPrefix(p, "tensorflow"):
		return FamilyTensorFlow
	case strings.HasPrefix(p, "pytorch"):
		return FamilyPyTorch
	}
	return FamilyONNX
}

func (f Family) String() string {
	switch f {
	case FamilyTensorFlow:
		return "tensorflow"
	case FamilyPyTorch:
		return "pytorch"
	case FamilyONNX:
		return "onnx"
	}
	return fmt.Sprintf("family(%d)", int(f))
}

// Format is the wire format of one request and of its response.
type Format int

const (
	FormatTFProto    Format = iota // tensorflow.eas PredictRequest / PredictResponse
	FormatTorchProto               // pytorch.eas PredictRequest / PredictResponse
	FormatJSON                     // {"inputs": {name: nested list}} → {"outputs": {name: nested list}}
	FormatV2                       // Open Inference Protocol v2 JSON (+ binary-data extension)
)

func (f Format) String() string {
	switch f {
	case FormatTFProto:
		return "tensorflow-protobuf"
	case FormatTorchProto:
		return "pytorch-protobuf"
	case FormatJSON:
		return "json"
	case FormatV2:
		return "v2"
	}
	return fmt.Sprintf("format(%d)", int(f))
}

// HeaderRequestFormat overrides format detection for /api/predict bodies:
// "tensorflow", "pytorch" or "json". Gateways must forward it to workers.
const HeaderRequestFormat = "X-EAS-Request-Format"

// Request is a decoded predict request.
type Request struct {
	// Inputs are keyed by signature input name, converted to the signature's dtypes.
	// Numeric Data may alias the body passed to Decode (so it may also be unaligned): do not
	// reuse that buffer while the request is in use, and copy before handing it to code
	// that needs alignment or keeps it.
	Inputs map[string]*tensor.Tensor
	// Outputs names the outputs wanted, in order, without duplicates; nil means all of them
	// in signature order. Every name is a signature output.
	Outputs []string
	// OutputKeys (TF protobuf with a SavedModel signature only) are the names the response
	// gives Outputs, index by index: the signature's aliases. Nil: the output names.
	OutputKeys []string
	Format     Format
	// TorchMapOutputs (PyTorch protobuf only) makes the response carry map_outputs by name
	// besides the positional outputs; set when the request used map_inputs.
	TorchMapOutputs bool
	// V2 carries Open Inference Protocol request settings; set for FormatV2 only.
	V2 *V2Meta
}

// V2Meta holds the parts of an Open Inference Protocol request that shape its response.
type V2Meta struct {
	ID string // request "id", echoed in the response when not empty
	// BinaryOutput is the request-level parameters.binary_data_output: the default for
	// every output.
	BinaryOutput bool
	// OutputBinary holds outputs[].parameters.binary_data where given; it overrides
	// BinaryOutput for that output.
	OutputBinary map[string]bool
}

// Content types the codec writes.
const (
	ContentTypeProtobuf = "application/octet-stream"
	ContentTypeJSON     = "application/json"
)

// Decode reads a body POSTed to /api/predict/{name}[/sub/path] (not the v2 paths: see
// DecodeV2Infer). The format is, in order of precedence: header X-EAS-Request-Format
// ("tensorflow", "pytorch", "json"); JSON when Content-Type is application/json (or
// another +json type) or the body starts with '{'; else the family's protobuf. FamilyONNX
// accepts both protobufs: the body is a TensorFlow PredictRequest when it parses as one and
// names at least one signature input, otherwise a PyTorch one (and if that fails too, the
// error of the reading that got further). header may be nil.
//
// Inputs are converted to the signature's dtypes where that loses nothing (int32 values
// into an int64 input, float32 values into a float16 input); anything else is an
// *processor.InputError naming the input. Decode does not check that every input is present
// or that shapes fit: processor.CheckInputs does that.
func Decode(family Family, header http.Header, body []byte, sig processor.Signature) (*Request, error) {
	return DecodeSigned(family, header, body, sig, nil)
}

// DecodeSigned is Decode for a model with SavedModel signatures: a TF protobuf request's
// signature_name picks one of sigs (TFSignatures.Select), whose aliases may then name
// inputs and outputs; a JSON request may use the aliases of the "serving_default" signature
// (see DecodeV2InferSigned). With no sigs it is Decode.
func DecodeSigned(family Family, header http.Header, body []byte, sig processor.Signature, sigs TFSignatures) (*Request, error) {
	format, err := detect(family, header, body)
	if err != nil {
		return nil, err
	}
	switch format {
	case FormatJSON:
		return decodeJSONSigned(body, sig, sigs)
	case FormatTFProto:
		return decodeTF(body, sig, sigs)
	case FormatTorchProto:
		return decodeTorch(body, sig)
	}
	return decodeEither(body, sig)
}

// formatEither is detect's answer for an ONNX-family protobuf body: try TF, then PyTorch.
const formatEither Format = -1

func detect(family Family, header http.Header, body []byte) (Format, error) {
	if o := strings.TrimSpace(header.Get(HeaderRequestFormat)); o != "" {
		switch strings.ToLower(o) {
		case "tensorflow", "tf":
			return FormatTFProto, nil
		case "pytorch", "torch":
			return FormatTorchProto, nil
		case "json":
			return FormatJSON, nil
		}
		return 0, &processor.InputError{Msg: fmt.Sprintf("header %s: unknown format %q; expected tensorflow, pytorch or json", HeaderRequestFormat, o)}
	}
	// '{' (0x7B) opens a JSON object; as a protobuf tag it would be field 15 with the
	// deprecated group wire type, which neither EAS message uses.
	if isJSONContentType(header.Get("Content-Type")) || (len(body) > 0 && body[0] == '{') {
		return FormatJSON, nil
	}
	switch family {
	case FamilyTensorFlow:
		return FormatTFProto, nil
	case FamilyPyTorch:
		return FormatTorchProto, nil
	}
	return formatEither, nil
}

func isJSONContentType(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// decodeEither serves FamilyONNX protobuf bodies.
func decodeEither(body []byte, sig processor.Signature) (*Request, error) {
	tf, tfErr := parseTFRequest(body)
	if tfErr == nil {
		for _, e := range tf.inputs {
			if _, ok := findInfo(sig.Inputs, e.name); ok {
				return tf.request(sig)
			}
		}
	}
	// Bytes that are a TensorFlow request often parse as a PyTorch one too (its inputs map
	// reads as packed output_filter varints), so PyTorch wins only when it makes sense whole.
	torch, err := parseTorchRequest(body)
	if err == nil {
		var req *Request
		if req, err = torch.request(sig); err == nil {
			return req, nil
		}
	}
	if tfErr == nil && len(tf.inputs) > 0 {
		// Reads as a TensorFlow request naming only unknown inputs: say so.
		return tf.request(sig)
	}
	return nil, err
}

// Encode writes the response to req (from Decode) holding outs, the outputs Predict returned:
// req.Outputs in order, or every signature output when req.Outputs is nil. It returns the
// body and its Content-Type. An output missing from outs, or one whose data disagrees with
// its dtype and shape, is an error (not an InputError: the processor is at fault).
func Encode(req *Request, outs map[string]*tensor.Tensor, sig processor.Signature) ([]byte, string, error) {
	list, err := orderedOutputs(req, outs, sig)
	if err != nil {
		return nil, "", err
	}
	switch req.Format {
	case FormatTFProto:
		b, err := encodeTFResponse(list)
		return b, ContentTypeProtobuf, err
	case FormatTorchProto:
		b, err := encodeTorchResponse(list, req.TorchMapOutputs)
		return b, ContentTypeProtobuf, err
	case FormatJSON:
		b, err := encodeJSON(list)
		return b, ContentTypeJSON, err
	}
	return nil, "", fmt.Errorf("codec: Encode does not write format %v (use EncodeV2Infer for v2)", req.Format)
}

// namedTensor is one output in response order.
type namedTensor struct {
	name string
	t    *tensor.Tensor
}

func orderedOutputs(req *Request, outs map[string]*tensor.Tensor, sig processor.Signature) ([]namedTensor, error) {
	names := req.Outputs
	if names == nil {
		names = make([]string, len(sig.Outputs))
		for i, o := range sig.Outputs {
			names[i] = o.Name
		}
	}
	list := make([]namedTensor, len(names))
	for i, n := range names {
		t, ok := outs[n]
		if !ok || t == nil {
			return nil, fmt.Errorf("codec: output %q missing from the processor's result", n)
		}
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("codec: output %q: %w", n, err)
		}
		key := n
		if req.OutputKeys != nil {
			key = req.OutputKeys[i]
		}
		list[i] = namedTensor{key, t}
	}
	return list, nil
}

func findInfo(infos []tensor.Info, name string) (tensor.Info, bool) {
	for _, in := range infos {
		if in.Name == name {
			return in, true
		}
	}
	return tensor.Info{}, false
}

// findTFInfo is findInfo that also takes a TensorFlow tensor name for a model whose values
// carry TF names without the ":0" output suffix (TF graphs converted to ONNX): "x:0" finds "x".
func findTFInfo(infos []tensor.Info, name string) (tensor.Info, bool) {
	if info, ok := findInfo(infos, name); ok {
		return info, true
	}
	if base, ok := strings.CutSuffix(name, ":0"); ok && base != "" {
		return findInfo(infos, base)
	}
	return tensor.Info{}, false
}

func infoNames(infos []tensor.Info) []string {
	names := make([]string, len(infos))
	for i, in := range infos {
		names[i] = in.Name
	}
	return names
}

func unknownInput(sig processor.Signature, name string) error {
	return &processor.InputError{Input: name, Msg: fmt.Sprintf("unknown input; the model's inputs are %v", infoNames(sig.Inputs))}
}

// selectOutputs checks requested output names against sig and drops duplicates.
func selectOutputs(sig processor.Signature, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		info, ok := findTFInfo(sig.Outputs, n)
		if !ok {
			return nil, &processor.InputError{Msg: fmt.Sprintf("unknown output %q; the model's outputs are %v", n, infoNames(sig.Outputs))}
		}
		n = info.Name
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

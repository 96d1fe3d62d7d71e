package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// The Open Inference Protocol v2 (KServe, Triton): JSON, plus the binary tensor data
// extension, where the body is a JSON header of Inference-Header-Content-Length bytes
// followed by raw tensor data for the inputs whose parameters give binary_data_size.

// HeaderV2JSONLength is the binary-data extension's header: the length of the JSON part.
const HeaderV2JSONLength = "Inference-Header-Content-Length"

var v2Names = map[tensor.DType]string{
	tensor.Bool: "BOOL", tensor.Uint8: "UINT8", tensor.Uint16: "UINT16", tensor.Uint32: "UINT32",
	tensor.Uint64: "UINT64", tensor.Int8: "INT8", tensor.Int16: "INT16", tensor.Int32: "INT32",
	tensor.Int64: "INT64", tensor.Float16: "FP16", tensor.Float: "FP32", tensor.Double: "FP64",
	tensor.BFloat16: "BF16", tensor.String: "BYTES",
}

const v2NameList = "BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BF16, BYTES"

// V2DType is the Open Inference Protocol datatype name of d ("FP32", "BYTES"…), or "" when
// the protocol has none.
func V2DType(d tensor.DType) string { return v2Names[d] }

func parseV2DType(s string) (tensor.DType, bool) {
	for d, n := range v2Names {
		if n == s {
			return d, true
		}
	}
	return tensor.Invalid, false
}

// v2JSONLength finds the length of the JSON part of a binary-data body: the
// Inference-Header-Content-Length header, or SageMaker's json-header-size content type
// parameter. ok is false for a plain JSON body.
func v2JSONLength(header http.Header, bodyLen int) (int, bool, error) {
	v := header.Get(HeaderV2JSONLength)
	what := "header " + HeaderV2JSONLength
	if v == "" {
		if _, params, err := mime.ParseMediaType(header.Get("Content-Type")); err == nil {
			v = params["json-header-size"]
			what = "Content-Type json-header-size"
		}
	}
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 || n > bodyLen {
		return 0, false, &processor.InputError{Msg: fmt.Sprintf("%s: %q is not a length within the body's %d bytes", what, v, bodyLen)}
	}
	return n, true, nil
}

type v2Input struct {
	name       string
	datatype   string
	shape      []int64
	hasShape   bool
	data       []byte // the raw JSON of "data"
	binarySize int64  // -1 when the data is not binary
}

type v2Output struct {
	name      string
	binary    bool
	hasBinary bool
}

// DecodeV2Infer reads a POST /v2/models/{name}/infer body. header carries Content-Type and,
// for the binary-data extension, Inference-Header-Content-Length. Each input's datatype
// must be its signature dtype or convert to it without loss (see Decode); its shape must
// match its data. Errors are *processor.InputError.
func DecodeV2Infer(header http.Header, body []byte, sig processor.Signature) (*Request, error) {
	jsonPart, bin := body, []byte(nil)
	if n, ok, err := v2JSONLength(header, len(body)); err != nil {
		return nil, err
	} else if ok {
		jsonPart, bin = body[:n], body[n:]
	}
	meta := &V2Meta{}
	var inputs []v2Input
	var outputs []v2Output
	s := &scanner{b: jsonPart}
	err := s.object(func(key string) error {
		switch key {
		case "id":
			if s.peek() != '"' {
				return &processor.InputError{Msg: fmt.Sprintf(`"id" must be a string, found %s`, describe(s.peek()))}
			}
			id, err := s.str()
			meta.ID = id
			return err
		case "parameters":
			return v2Params(s, "parameters", map[string]func() error{
				"binary_data_output": func() error { return v2Bool(s, "parameters.binary_data_output", &meta.BinaryOutput) },
			})
		case "inputs":
			return s.array(func(i int) error {
				in, err := v2ReadInput(s, i)
				inputs = append(inputs, in)
				return err
			})
		case "outputs":
			return s.array(func(i int) error {
				out, err := v2ReadOutput(s, i)
				outputs = append(outputs, out)
				return err
			})
		}
		return s.skip(1) // the protocol is extensible: ignore what we do not know
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return nil, inputErr("", err)
	}

	req := &Request{Format: FormatV2, V2: meta, Inputs: make(map[string]*tensor.Tensor, len(inputs))}
	for i := range inputs {
		in := &inputs[i]
		info, ok := findTFInfo(sig.Inputs, in.name) // "x:0" names x, as in the TF protobuf path
		if !ok {
			return nil, unknownInput(sig, in.name)
		}
		if _, dup := req.Inputs[info.Name]; dup {
			return nil, &processor.InputError{Input: in.name, Msg: "given twice"}
		}
		t, rest, err := in.tensor(info.DType, bin)
		if err != nil {
			return nil, inputErr(in.name, err)
		}
		bin = rest
		req.Inputs[info.Name] = t
	}
	if len(bin) > 0 {
		return nil, &processor.InputError{Msg: fmt.Sprintf("%d bytes of binary data left over after the inputs that declare binary_data_size", len(bin))}
	}
	if len(outputs) > 0 {
		names := make([]string, len(outputs))
		for i, o := range outputs {
			names[i] = o.name
			if o.hasBinary {
				if meta.OutputBinary == nil {
					meta.OutputBinary = map[string]bool{}
				}
				meta.OutputBinary[o.name] = o.binary
			}
		}
		if req.Outputs, err = selectOutputs(sig, names); err != nil {
			return nil, err
		}
	}
	return req, nil
}

// v2Params walks a parameters object, handing known keys to their readers and skipping
// the rest (parameters are open-ended by design).
func v2Params(s *scanner, where string, known map[string]func() error) error {
	if s.peek() != '{' {
		return &processor.InputError{Msg: fmt.Sprintf("%q must be an object, found %s", where, describe(s.peek()))}
	}
	return s.object(func(key string) error {
		if fn, ok := known[key]; ok {
			return fn()
		}
		return s.skip(1)
	})
}

func v2Bool(s *scanner, where string, dst *bool) error {
	switch {
	case s.literal("true"):
		*dst = true
	case s.literal("false"):
		*dst = false
	default:
		return &processor.InputError{Msg: fmt.Sprintf("%s must be true or false, found %s", where, describe(s.peek()))}
	}
	return nil
}

func v2Int(s *scanner, where string) (int64, error) {
	tok, err := s.number()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(string(tok), 10, 64)
	if err != nil {
		return 0, &processor.InputError{Msg: fmt.Sprintf("%s must be an integer, found %s", where, tok)}
	}
	return v, nil
}

func v2ReadInput(s *scanner, i int) (v2Input, error) {
	in := v2Input{binarySize: -1}
	where := fmt.Sprintf("inputs[%d]", i)
	if s.peek() != '{' {
		return in, &processor.InputError{Msg: fmt.Sprintf("%s must be an object, found %s", where, describe(s.peek()))}
	}
	err := s.object(func(key string) error {
		switch key {
		case "name", "datatype":
			if s.peek() != '"' {
				return &processor.InputError{Msg: fmt.Sprintf("%s.%s must be a string, found %s", where, key, describe(s.peek()))}
			}
			v, err := s.str()
			if key == "name" {
				in.name = v
			} else {
				in.datatype = v
			}
			return err
		case "shape":
			in.hasShape = true
			if s.peek() != '[' {
				return &processor.InputError{Msg: fmt.Sprintf("%s.shape must be a list of integers, found %s", where, describe(s.peek()))}
			}
			in.shape = []int64{}
			return s.array(func(k int) error {
				d, err := v2Int(s, fmt.Sprintf("%s.shape[%d]", where, k))
				if err == nil && d < 0 {
					err = &processor.InputError{Msg: fmt.Sprintf("%s.shape[%d] is %d; dimensions must be >= 0", where, k, d)}
				}
				in.shape = append(in.shape, d)
				return err
			})
		case "parameters":
			return v2Params(s, where+".parameters", map[string]func() error{
				"binary_data_size": func() error {
					n, err := v2Int(s, where+".parameters.binary_data_size")
					if err == nil && n < 0 {
						err = &processor.InputError{Msg: fmt.Sprintf("%s.parameters.binary_data_size is %d", where, n)}
					}
					in.binarySize = n
					return err
				},
			})
		case "data":
			start := s.i
			if err := s.skip(1); err != nil {
				return err
			}
			in.data = s.b[start:s.i]
			return nil
		}
		return s.skip(1)
	})
	if err != nil {
		return in, err
	}
	switch {
	case in.name == "":
		return in, &processor.InputError{Msg: fmt.Sprintf(`%s has no "name"`, where)}
	case in.datatype == "":
		return in, &processor.InputError{Input: in.name, Msg: `no "datatype"`}
	case !in.hasShape:
		return in, &processor.InputError{Input: in.name, Msg: `no "shape"`}
	}
	return in, nil
}

func v2ReadOutput(s *scanner, i int) (v2Output, error) {
	var out v2Output
	where := fmt.Sprintf("outputs[%d]", i)
	if s.peek() != '{' {
		return out, &processor.InputError{Msg: fmt.Sprintf("%s must be an object, found %s", where, describe(s.peek()))}
	}
	err := s.object(func(key string) error {
		switch key {
		case "name":
			if s.peek() != '"' {
				return &processor.InputError{Msg: fmt.Sprintf("%s.name must be a string, found %s", where, describe(s.peek()))}
			}
			v, err := s.str()
			out.name = v
			return err
		case "parameters":
			return v2Params(s, where+".parameters", map[string]func() error{
				"binary_data": func() error {
					out.hasBinary = true
					return v2Bool(s, where+".parameters.binary_data", &out.binary)
				},
				"classification": func() error {
					return &processor.InputError{Msg: fmt.Sprintf("%s.parameters.classification: the classification extension is not supported", where)}
				},
			})
		}
		return s.skip(1)
	})
	if err == nil && out.name == "" {
		err = &processor.InputError{Msg: fmt.Sprintf(`%s has no "name"`, where)}
	}
	return out, err
}

// tensor builds the input in dtype want, taking binary data from the front of bin; it
// returns what is left of bin.
func (in *v2Input) tensor(want tensor.DType, bin []byte) (*tensor.Tensor, []byte, error) {
	from, ok := parseV2DType(in.datatype)
	if !ok {
		return nil, bin, fmt.Errorf("datatype %q is not one of %s", in.datatype, v2NameList)
	}
	if want == tensor.Invalid {
		want = from // the model does not declare this input's dtype: the request's own
	}
	if !convertible(from, want) {
		return nil, bin, fmt.Errorf("datatype %s, expected %s", in.datatype, v2DTypeName(want))
	}
	n64, err := elementCount("shape", in.shape)
	if err != nil {
		return nil, bin, err
	}
	n := int(n64)
	t := &tensor.Tensor{DType: from, Shape: in.shape}
	switch {
	case in.data != nil && in.binarySize >= 0:
		return nil, bin, errors.New(`has both "data" and parameters.binary_data_size`)
	case in.binarySize >= 0:
		if in.binarySize > int64(len(bin)) {
			return nil, bin, fmt.Errorf("binary_data_size %d, but only %d bytes of binary data remain", in.binarySize, len(bin))
		}
		raw := bin[:in.binarySize]
		bin = bin[in.binarySize:]
		if err := fillBinary(t, raw, n); err != nil {
			return nil, bin, err
		}
	case in.data != nil:
		s := &scanner{b: in.data}
		lt, err := readList(s, from, n*from.Size())
		if err != nil {
			return nil, bin, err
		}
		if got := tensor.NumElements(lt.Shape); got != n64 {
			return nil, bin, fmt.Errorf("shape %v needs %d values, data has %d", in.shape, n, got)
		}
		t.Data, t.Strings = lt.Data, lt.Strings
	case n == 0 && from == tensor.String:
		t.Strings = []string{}
	case n == 0:
		t.Data = []byte{}
	default:
		return nil, bin, errors.New(`has neither "data" nor parameters.binary_data_size`)
	}
	if from != want {
		data, err := convertRaw(from, want, t.Data, n)
		if err != nil {
			return nil, bin, err
		}
		t.DType, t.Data = want, data
	}
	return t, bin, nil
}

func v2DTypeName(d tensor.DType) string {
	if n := V2DType(d); n != "" {
		return n
	}
	if d == tensor.Invalid {
		return "ANY" // not declared by the model: any datatype is taken as sent
	}
	return d.String()
}

// fillBinary reads n elements of t.DType from raw, the binary-data layout: little-endian
// elements, one byte per BOOL, and for BYTES a 4-byte little-endian length before each.
func fillBinary(t *tensor.Tensor, raw []byte, n int) error {
	if t.DType == tensor.String {
		t.Strings = make([]string, 0, n)
		for len(raw) > 0 {
			if len(raw) < 4 {
				return fmt.Errorf("binary BYTES data: %d stray bytes where a 4-byte length was expected", len(raw))
			}
			l := binary.LittleEndian.Uint32(raw)
			if uint64(l) > uint64(len(raw)-4) {
				return fmt.Errorf("binary BYTES element %d: length %d, but %d bytes remain", len(t.Strings), l, len(raw)-4)
			}
			t.Strings = append(t.Strings, string(raw[4:4+l]))
			raw = raw[4+l:]
		}
		if len(t.Strings) != n {
			return fmt.Errorf("shape %v needs %d values, binary data has %d", t.Shape, n, len(t.Strings))
		}
		return nil
	}
	if want := n * t.DType.Size(); len(raw) != want {
		return fmt.Errorf("shape %v of %s needs %d bytes of binary data, binary_data_size is %d", t.Shape, V2DType(t.DType), want, len(raw))
	}
	if t.DType == tensor.Bool && !isBoolBytes(raw) {
		norm := make([]byte, len(raw)) // normalise to 0/1 without touching the caller's body
		for k, c := range raw {
			if c != 0 {
				norm[k] = 1
			}
		}
		raw = norm
	}
	t.Data = raw
	return nil
}

func isBoolBytes(raw []byte) bool {
	for _, c := range raw {
		if c > 1 {
			return false
		}
	}
	return true
}

// EncodeV2Infer writes the inference response for req (from DecodeV2Infer): outputs in
// req.Outputs order (or signature order), each as JSON "data" or, when binary data was
// asked for it, appended after the JSON. It returns the body and the headers to set:
// Content-Type, and Inference-Header-Content-Length when any output is binary.
func EncodeV2Infer(req *Request, modelName string, outs map[string]*tensor.Tensor, sig processor.Signature) ([]byte, http.Header, error) {
	list, err := orderedOutputs(req, outs, sig)
	if err != nil {
		return nil, nil, err
	}
	meta := req.V2
	if meta == nil {
		meta = &V2Meta{}
	}
	size, binSize := 64+len(modelName)+len(meta.ID), 0
	binary := make([]bool, len(list))
	for i, nt := range list {
		if V2DType(nt.t.DType) == "" {
			return nil, nil, fmt.Errorf("codec: output %q: dtype %v has no v2 datatype", nt.name, nt.t.DType)
		}
		b, ok := meta.OutputBinary[nt.name]
		if !ok {
			b = meta.BinaryOutput
		}
		binary[i] = b
		n := int(tensor.NumElements(nt.t.Shape))
		if b {
			binSize += binaryLen(nt.t)
		} else {
			size += n * 12
		}
		size += 64 + len(nt.name)
	}
	b := make([]byte, 0, size+binSize)
	b = append(b, `{"model_name":`...)
	b = appendJSONString(b, modelName)
	if meta.ID != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, meta.ID)
	}
	b = append(b, `,"outputs":[`...)
	for i, nt := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendJSONString(b, nt.name)
		b = append(b, `,"datatype":"`...)
		b = append(b, V2DType(nt.t.DType)...)
		b = append(b, `","shape":`...)
		b = appendShape(b, nt.t.Shape)
		if binary[i] {
			b = append(b, `,"parameters":{"binary_data_size":`...)
			b = strconv.AppendInt(b, int64(binaryLen(nt.t)), 10)
			b = append(b, '}')
		} else {
			b = append(b, `,"data":`...)
			b = appendFlat(b, nt.t)
		}
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	h := http.Header{}
	if binSize == 0 && !anyTrue(binary) {
		h.Set("Content-Type", ContentTypeJSON)
		return b, h, nil
	}
	h.Set(HeaderV2JSONLength, strconv.Itoa(len(b)))
	h.Set("Content-Type", ContentTypeProtobuf)
	for i, nt := range list {
		if binary[i] {
			b = appendBinary(b, nt.t)
		}
	}
	return b, h, nil
}

func anyTrue(bs []bool) bool {
	for _, b := range bs {
		if b {
			return true
		}
	}
	return false
}

func binaryLen(t *tensor.Tensor) int {
	if t.DType != tensor.String {
		return len(t.Data)
	}
	n := 0
	for _, s := range t.Strings {
		n += 4 + len(s)
	}
	return n
}

func appendBinary(b []byte, t *tensor.Tensor) []byte {
	if t.DType != tensor.String {
		return append(b, t.Data...)
	}
	for _, s := range t.Strings {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func appendShape(b []byte, shape []int64) []byte {
	b = append(b, '[')
	for i, d := range shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, d, 10)
	}
	return append(b, ']')
}

// V2ModelMetadata is the body of GET /v2/models/{name}: the signature with v2 datatypes and
// -1 for dynamic dimensions (an input of unknown rank gets an empty shape).
func V2ModelMetadata(modelName, platform string, sig processor.Signature) []byte {
	b := []byte(`{"name":`)
	b = appendJSONString(b, modelName)
	b = append(b, `,"platform":`...)
	b = appendJSONString(b, platform)
	for _, part := range []struct {
		key   string
		infos []tensor.Info
	}{{"inputs", sig.Inputs}, {"outputs", sig.Outputs}} {
		b = append(b, `,"`+part.key+`":[`...)
		for i, in := range part.infos {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendJSONString(b, in.Name)
			b = append(b, `,"datatype":`...)
			b = appendJSONString(b, v2DTypeName(in.DType))
			b = append(b, `,"shape":[`...)
			for k, d := range in.Shape {
				if k > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendInt(b, max(d, -1), 10)
			}
			b = append(b, "]}"...)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// ArrayProto field numbers (see internal/easpb/proto).
const (
	fDType   = 1
	fShape   = 2
	fFloat   = 3
	fDouble  = 4
	fInt     = 5
	fString  = 6
	fInt64   = 7
	fBool    = 8 // TensorFlow variant only; accepted from either
	numField = 9
)

var valueFields = [...]int{fFloat, fDouble, fInt, fString, fInt64, fBool}

func fieldName(f int) string {
	switch f {
	case fDType:
		return "dtype"
	case fShape:
		return "array_shape"
	case fFloat:
		return "float_val"
	case fDouble:
		return "double_val"
	case fInt:
		return "int_val"
	case fString:
		return "string_val"
	case fInt64:
		return "int64_val"
	case fBool:
		return "bool_val"
	}
	return fmt.Sprintf("field %d", f)
}

// pbArray is a parsed ArrayProto. Value payloads are kept in packed wire form and alias the
// request body until more than one chunk of a field arrives (owned then marks a copy).
type pbArray struct {
	dtype int32
	dims  []int64
	vals  [numField][]byte
	owned [numField]bool
	strs  [][]byte
}

func parseArray(b []byte) (pbArray, error) {
	var a pbArray
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return a, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == fDType && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return a, fmt.Errorf("dtype: %w", protowire.ParseError(n))
			}
			a.dtype = int32(v)
			b = b[n:]
		case num == fShape && typ == protowire.BytesType:
			m, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return a, fmt.Errorf("array_shape: %w", protowire.ParseError(n))
			}
			if err := a.parseShape(m); err != nil {
				return a, fmt.Errorf("array_shape: %w", err)
			}
			b = b[n:]
		case num == fString && typ == protowire.BytesType:
			m, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return a, fmt.Errorf("string_val: %w", protowire.ParseError(n))
			}
			a.strs = append(a.strs, m)
			b = b[n:]
		case (num == fFloat || num == fDouble || num == fInt || num == fInt64 || num == fBool) && typ == protowire.BytesType:
			m, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return a, fmt.Errorf("%s: %w", fieldName(int(num)), protowire.ParseError(n))
			}
			if w := fixedWidth(int(num)); w > 0 && len(m)%w != 0 {
				return a, fmt.Errorf("%s: packed length %d is not a multiple of %d", fieldName(int(num)), len(m), w)
			}
			a.add(int(num), m)
			b = b[n:]
		// Unpacked repeated scalars are legal protobuf too; gather them in packed form.
		case num == fFloat && typ == protowire.Fixed32Type:
			v, n := protowire.ConsumeFixed32(b)
			if n < 0 {
				return a, fmt.Errorf("float_val: %w", protowire.ParseError(n))
			}
			a.add(fFloat, binary.LittleEndian.AppendUint32(nil, v))
			b = b[n:]
		case num == fDouble && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return a, fmt.Errorf("double_val: %w", protowire.ParseError(n))
			}
			a.add(fDouble, binary.LittleEndian.AppendUint64(nil, v))
			b = b[n:]
		case (num == fInt || num == fInt64 || num == fBool) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return a, fmt.Errorf("%s: %w", fieldName(int(num)), protowire.ParseError(n))
			}
			a.add(int(num), protowire.AppendVarint(nil, v))
			b = b[n:]
		case num >= fDType && num <= fBool:
			return a, fmt.Errorf("%s has wire type %d, which it never uses", fieldName(int(num)), typ)
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return a, fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return a, nil
}

// fixedWidth is the byte width of one value of a fixed-size field, 0 for varint fields.
func fixedWidth(f int) int {
	switch f {
	case fFloat:
		return 4
	case fDouble:
		return 8
	}
	return 0
}

func (a *pbArray) add(f int, chunk []byte) {
	switch {
	case len(chunk) == 0:
	case len(a.vals[f]) == 0:
		a.vals[f] = chunk
	case !a.owned[f]:
		buf := make([]byte, len(a.vals[f]), 2*(len(a.vals[f])+len(chunk)))
		copy(buf, a.vals[f])
		a.vals[f] = append(buf, chunk...)
		a.owned[f] = true
	default:
		a.vals[f] = append(a.vals[f], chunk...)
	}
}

func (a *pbArray) parseShape(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			m, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("dim: %w", protowire.ParseError(n))
			}
			for len(m) > 0 {
				v, k := protowire.ConsumeVarint(m)
				if k < 0 {
					return fmt.Errorf("dim: %w", protowire.ParseError(k))
				}
				a.dims = append(a.dims, int64(v))
				m = m[k:]
			}
			b = b[n:]
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("dim: %w", protowire.ParseError(n))
			}
			a.dims = append(a.dims, int64(v))
			b = b[n:]
		case num == 1:
			return fmt.Errorf("dim has wire type %d, which it never uses", typ)
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return nil
}

// count is the number of values field f holds.
func (a *pbArray) count(f int) int {
	switch f {
	case fFloat:
		return len(a.vals[f]) / 4
	case fDouble:
		return len(a.vals[f]) / 8
	case fString:
		return len(a.strs)
	}
	n := 0
	for _, c := range a.vals[f] {
		if c < 0x80 {
			n++
		}
	}
	return n
}

// elementCount multiplies dims, rejecting negative dims and overflow; what names the
// shape in messages ("array_shape", "shape").
func elementCount(what string, dims []int64) (int64, error) {
	n, nonzero := int64(1), int64(1)
	for i, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("%s.dim[%d] is %d; dimensions must be >= 0", what, i, d)
		}
		if d == 0 {
			n = 0
			continue
		}
		if nonzero > math.MaxInt32/d {
			return 0, fmt.Errorf("%s %v has more than %d elements", what, dims, math.MaxInt32)
		}
		nonzero *= d
		n *= d
	}
	// An empty tensor of shape [1<<30, 0] costs nothing to send but a gigabyte of "[]" to
	// write back as JSON: bound the extent of empty tensors too.
	if n == 0 && nonzero > maxEmptyExtent {
		return 0, fmt.Errorf("%s %v: an empty tensor may span at most %d positions", what, dims, maxEmptyExtent)
	}
	return n, nil
}

const maxEmptyExtent = 1 << 24

// tensor converts the array into a tensor of dtype want (the signature's); the error text
// is the message of an InputError about this array.
func (a *pbArray) tensor(want tensor.DType) (*tensor.Tensor, error) {
	field := 0
	for _, f := range valueFields {
		if a.count(f) > 0 || (f != fString && len(a.vals[f]) > 0) {
			if field != 0 {
				return nil, fmt.Errorf("values in both %s and %s; expected one field", fieldName(field), fieldName(f))
			}
			field = f
		}
	}
	if a.dtype != dtInvalid {
		allowed := dtValueFields(a.dtype)
		if allowed == nil {
			return nil, fmt.Errorf("dtype %s is not supported", dtName(a.dtype))
		}
		if field != 0 && allowed[0] != field && (len(allowed) < 2 || allowed[1] != field) {
			return nil, fmt.Errorf("dtype %s carries its values in %s, but %s is set", dtName(a.dtype), fieldName(allowed[0]), fieldName(field))
		}
	}
	if want == tensor.Invalid {
		// The model does not declare this input's dtype: the request's own.
		want = a.naturalDType(field)
	}
	n64, err := elementCount("array_shape", a.dims)
	if err != nil {
		return nil, err
	}
	n := int(n64)
	if have := a.count(field); field == 0 && n != 0 {
		return nil, fmt.Errorf("array_shape %v needs %d values, the request has none", a.dims, n)
	} else if field != 0 && have != n {
		return nil, fmt.Errorf("array_shape %v needs %d values, %s has %d", a.dims, n, fieldName(field), have)
	}
	t := &tensor.Tensor{DType: want, Shape: a.dims}
	switch field {
	case 0:
		if want == tensor.String {
			t.Strings = []string{}
		} else {
			t.Data = []byte{}
		}
	case fString:
		if want != tensor.String {
			return nil, fmt.Errorf("dtype string (string_val), expected %s", want)
		}
		t.Strings = make([]string, n)
		for i, s := range a.strs {
			t.Strings[i] = string(s)
		}
	case fFloat, fDouble:
		from := tensor.Float
		if field == fDouble {
			from = tensor.Double
		}
		t.Data, err = convertRaw(from, want, a.vals[field], n)
		if errors.Is(err, errIncompatible) {
			return nil, fmt.Errorf("dtype %s (%s), expected %s", from, fieldName(field), want)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fieldName(field), err)
		}
	default:
		t.Data, err = convertVarints(a.vals[field], field, want, n)
		if err != nil {
			return nil, err
		}
	}
	return t, nil
}

// convertVarints decodes n packed varints of int_val, int64_val or bool_val into dtype want.
func convertVarints(p []byte, field int, want tensor.DType, n int) ([]byte, error) {
	k := kindOf(want)
	if (field == fBool && k != kindBool) || (k != kindInt && k != kindFloat && k != kindBool) {
		src := map[int]string{fInt: "int32", fInt64: "int64", fBool: "bool"}[field]
		return nil, fmt.Errorf("dtype %s (%s), expected %s", src, fieldName(field), want)
	}
	out := make([]byte, n*want.Size())
	w := intWriter(want)
	for i := range n {
		v, m := protowire.ConsumeVarint(p)
		if m < 0 {
			return nil, fmt.Errorf("%s: %w", fieldName(field), protowire.ParseError(m))
		}
		p = p[m:]
		var x int64
		switch field {
		case fInt:
			x = int64(int32(v)) // proto int32 semantics: the low 32 bits
		case fInt64:
			x = int64(v)
		default:
			if v != 0 {
				x = 1
			}
		}
		if err := w(out, i, x); err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", fieldName(field), i, err)
		}
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%s: truncated varint", fieldName(field))
	}
	return out, nil
}

type namedArray struct {
	name string
	a    pbArray
}

func setNamed(list []namedArray, e namedArray) []namedArray {
	for i := range list {
		if list[i].name == e.name { // a repeated map key: the last one wins, as in protobuf
			list[i] = e
			return list
		}
	}
	return append(list, e)
}

// parseMapEntry reads a map<string, ArrayProto> entry.
func parseMapEntry(b []byte) (namedArray, error) {
	var e namedArray
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return e, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			m, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return e, fmt.Errorf("key: %w", protowire.ParseError(n))
			}
			e.name = string(m)
			b = b[n:]
		case num == 2 && typ == protowire.BytesType:
			m, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return e, fmt.Errorf("value: %w", protowire.ParseError(n))
			}
			a, err := parseArray(m)
			if err != nil {
				return e, err
			}
			e.a = a
			b = b[n:]
		case num == 1 || num == 2:
			return e, fmt.Errorf("map entry field %d has wire type %d, which it never uses", num, typ)
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return e, fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return e, nil
}

func wireError(msg string, err error) error {
	return &processor.InputError{Msg: fmt.Sprintf("%s: invalid protobuf: %v", msg, err)}
}

// tfRequest is a parsed tensorflow.eas PredictRequest.
type tfRequest struct {
	signatureName string
	inputs        []namedArray
	outputFilter  []string
}

const tfWhat = "tensorflow PredictRequest"

func parseTFRequest(b []byte) (*tfRequest, error) {
	r := &tfRequest{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, wireError(tfWhat, protowire.ParseError(n))
		}
		b = b[n:]
		if num >= 1 && num <= 3 && typ != protowire.BytesType {
			return nil, wireError(tfWhat, fmt.Errorf("field %d has wire type %d, which it never uses", num, typ))
		}
		switch num {
		case 1, 3: // signature_name, output_filter
			m, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, wireError(tfWhat, fmt.Errorf("field %d: %w", num, protowire.ParseError(n)))
			}
			if num == 3 {
				r.outputFilter = append(r.outputFilter, string(m))
			} else {
				r.signatureName = string(m)
			}
			b = b[n:]
		case 2:
			m, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, wireError(tfWhat, fmt.Errorf("inputs: %w", protowire.ParseError(n)))
			}
			e, err := parseMapEntry(m)
			if err != nil {
				return nil, wireError(tfWhat, fmt.Errorf("inputs[%d]: %w", len(r.inputs), err))
			}
			r.inputs = setNamed(r.inputs, e)
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, wireError(tfWhat, fmt.Errorf("field %d: %w", num, protowire.ParseError(n)))
			}
			b = b[n:]
		}
	}
	return r, nil
}

func (r *tfRequest) request(sig processor.Signature) (*Request, error) {
	req := &Request{Format: FormatTFProto, Inputs: make(map[string]*tensor.Tensor, len(r.inputs))}
	for i := range r.inputs {
		e := &r.inputs[i]
		info, ok := findTFInfo(sig.Inputs, e.name)
		if !ok {
			return nil, unknownInput(sig, e.name)
		}
		if _, dup := req.Inputs[info.Name]; dup {
			return nil, &processor.InputError{Input: e.name, Msg: "given twice (with and without :0)"}
		}
		t, err := e.a.tensor(info.DType)
		if err != nil {
			return nil, &processor.InputError{Input: e.name, Msg: err.Error()}
		}
		req.Inputs[info.Name] = t
	}
	var err error
	if req.Outputs, err = selectOutputs(sig, r.outputFilter); err != nil {
		return nil, err
	}
	return req, nil
}

func decodeTF(body []byte, sig processor.Signature, sigs TFSignatures) (*Request, error) {
	r, err := parseTFRequest(body)
	if err != nil {
		return nil, err
	}
	name, sd, err := sigs.Select(r.signatureName)
	if err != nil {
		return nil, err
	}
	if sd == nil {
		return r.request(sig)
	}
	return r.signedRequest(sig, name, sd)
}

// torchRequest is a parsed pytorch.eas PredictRequest.
type torchRequest struct {
	inputs       []pbArray
	outputFilter []int32
	mapInputs    []namedArray
}

const torchWhat = "pytorch PredictRequest"

func parseTorchRequest(b []byte) (*torchRequest, error) {
	r := &torchRequest{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, wireError(torchWhat, protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			m, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, wireError(torchWhat, fmt.Errorf("inputs: %w", protowire.ParseError(n)))
			}
			a, err := parseArray(m)
			if err != nil {
				return nil, wireError(torchWhat, fmt.Errorf("inputs[%d]: %w", len(r.inputs), err))
			}
			r.inputs = append(r.inputs, a)
			b = b[n:]
		case num == 2 && typ == protowire.BytesType:
			m, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, wireError(torchWhat, fmt.Errorf("output_filter: %w", protowire.ParseError(n)))
			}
			for len(m) > 0 {
				v, k := protowire.ConsumeVarint(m)
				if k < 0 {
					return nil, wireError(torchWhat, fmt.Errorf("output_filter: %w", protowire.ParseError(k)))
				}
				r.outputFilter = append(r.outputFilter, int32(v))
				m = m[k:]
			}
			b = b[n:]
		case num == 2 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, wireError(torchWhat, fmt.Errorf("output_filter: %w", protowire.ParseError(n)))
			}
			r.outputFilter = append(r.outputFilter, int32(v))
			b = b[n:]
		case num == 3 && typ == protowire.BytesType:
			m, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, wireError(torchWhat, fmt.Errorf("map_inputs: %w", protowire.ParseError(n)))
			}
			e, err := parseMapEntry(m)
			if err != nil {
				return nil, wireError(torchWhat, fmt.Errorf("map_inputs[%d]: %w", len(r.mapInputs), err))
			}
			r.mapInputs = setNamed(r.mapInputs, e)
			b = b[n:]
		case num == 100 && typ == protowire.VarintType: // debug_level: nothing to debug here
			_, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, wireError(torchWhat, fmt.Errorf("debug_level: %w", protowire.ParseError(n)))
			}
			b = b[n:]
		case num <= 3 || num == 100:
			return nil, wireError(torchWhat, fmt.Errorf("field %d has wire type %d, which it never uses", num, typ))
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, wireError(torchWhat, fmt.Errorf("field %d: %w", num, protowire.ParseError(n)))
			}
			b = b[n:]
		}
	}
	return r, nil
}

func (r *torchRequest) request(sig processor.Signature) (*Request, error) {
	req := &Request{
		Format:          FormatTorchProto,
		Inputs:          make(map[string]*tensor.Tensor, len(r.inputs)+len(r.mapInputs)),
		TorchMapOutputs: len(r.mapInputs) > 0,
	}
	if len(r.inputs) > len(sig.Inputs) {
		return nil, &processor.InputError{Msg: fmt.Sprintf("the request has %d positional inputs; the model takes %d %v", len(r.inputs), len(sig.Inputs), infoNames(sig.Inputs))}
	}
	for i := range r.inputs {
		info := sig.Inputs[i]
		t, err := r.inputs[i].tensor(info.DType)
		if err != nil {
			return nil, &processor.InputError{Input: info.Name, Msg: fmt.Sprintf("inputs[%d]: %v", i, err)}
		}
		req.Inputs[info.Name] = t
	}
	for i := range r.mapInputs {
		e := &r.mapInputs[i]
		info, ok := findInfo(sig.Inputs, e.name)
		if !ok {
			return nil, unknownInput(sig, e.name)
		}
		if _, dup := req.Inputs[e.name]; dup {
			return nil, &processor.InputError{Input: e.name, Msg: "given both in inputs (by position) and in map_inputs"}
		}
		t, err := e.a.tensor(info.DType)
		if err != nil {
			return nil, &processor.InputError{Input: e.name, Msg: err.Error()}
		}
		req.Inputs[e.name] = t
	}
	if len(r.outputFilter) > 0 {
		names := make([]string, 0, len(r.outputFilter))
		for i, k := range r.outputFilter {
			if k < 0 || int(k) >= len(sig.Outputs) {
				return nil, &processor.InputError{Msg: fmt.Sprintf("output_filter[%d] = %d is out of range; the model has %d outputs %v", i, k, len(sig.Outputs), infoNames(sig.Outputs))}
			}
			names = append(names, sig.Outputs[k].Name)
		}
		var err error
		if req.Outputs, err = selectOutputs(sig, names); err != nil {
			return nil, err
		}
	}
	return req, nil
}

func decodeTorch(body []byte, sig processor.Signature) (*Request, error) {
	r, err := parseTorchRequest(body)
	if err != nil {
		return nil, err
	}
	return r.request(sig)
}

// pbOut is one output tensor laid out as an ArrayProto: sizes are computed first so that a
// response is written into one exactly sized buffer.
type pbOut struct {
	name    string
	t       *tensor.Tensor
	dt      int32
	field   int
	payload int // packed value bytes, or for strings every string_val record
	dims    int // packed dims bytes
	size    int // the whole ArrayProto
}

func planArray(name string, t *tensor.Tensor, torch bool) (pbOut, error) {
	o := pbOut{name: name, t: t}
	var err error
	if o.dt, o.field, err = outputDT(t.DType, torch); err != nil {
		return o, fmt.Errorf("codec: output %q: %w", name, err)
	}
	n := int(tensor.NumElements(t.Shape))
	switch o.field {
	case fFloat:
		o.payload = 4 * n
	case fDouble:
		o.payload = 8 * n
	case fString:
		for _, s := range t.Strings {
			o.payload += protowire.SizeTag(fString) + protowire.SizeBytes(len(s))
		}
	default:
		for i := range n {
			v, ok := readInt(t.DType, t.Data, i)
			if !ok {
				return o, fmt.Errorf("codec: output %q: value at index %d exceeds int64, the widest EAS integer", name, i)
			}
			o.payload += protowire.SizeVarint(uint64(v))
		}
	}
	for _, d := range t.Shape {
		o.dims += protowire.SizeVarint(uint64(d))
	}
	o.size = protowire.SizeTag(fDType) + protowire.SizeVarint(uint64(o.dt)) +
		protowire.SizeTag(fShape) + protowire.SizeBytes(o.shapeSize())
	switch {
	case o.field == fString:
		o.size += o.payload
	case o.payload > 0:
		o.size += protowire.SizeTag(protowire.Number(o.field)) + protowire.SizeBytes(o.payload)
	}
	return o, nil
}

func (o *pbOut) shapeSize() int {
	if o.dims == 0 {
		return 0
	}
	return protowire.SizeTag(1) + protowire.SizeBytes(o.dims)
}

func (o *pbOut) appendTo(b []byte) []byte {
	t := o.t
	b = protowire.AppendTag(b, fDType, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(o.dt))
	b = protowire.AppendTag(b, fShape, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(o.shapeSize()))
	if o.dims > 0 {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(o.dims))
		for _, d := range t.Shape {
			b = protowire.AppendVarint(b, uint64(d))
		}
	}
	if o.field == fString {
		for _, s := range t.Strings {
			b = protowire.AppendTag(b, fString, protowire.BytesType)
			b = protowire.AppendString(b, s)
		}
		return b
	}
	if o.payload == 0 {
		return b
	}
	b = protowire.AppendTag(b, protowire.Number(o.field), protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(o.payload))
	n := int(tensor.NumElements(t.Shape))
	switch {
	case t.DType == tensor.Float || t.DType == tensor.Double:
		return append(b, t.Data...) // the wire layout is the tensor's layout
	case o.field == fFloat: // float16, bfloat16 widened to float32
		for i := range n {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(readFloat(t.DType, t.Data, i))))
		}
		return b
	}
	for i := range n {
		v, _ := readInt(t.DType, t.Data, i) // planArray checked every value
		b = protowire.AppendVarint(b, uint64(v))
	}
	return b
}

func planAll(list []namedTensor, torch bool) ([]pbOut, error) {
	outs := make([]pbOut, len(list))
	for i, nt := range list {
		o, err := planArray(nt.name, nt.t, torch)
		if err != nil {
			return nil, err
		}
		outs[i] = o
	}
	return outs, nil
}

func mapEntrySize(o *pbOut) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(len(o.name)) +
		protowire.SizeTag(2) + protowire.SizeBytes(o.size)
}

func appendMapEntry(b []byte, field protowire.Number, o *pbOut) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(mapEntrySize(o)))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, o.name)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(o.size))
	return o.appendTo(b)
}

// encodeTFResponse writes PredictResponse{outputs = 1 (map)} with entries in output order.
func encodeTFResponse(list []namedTensor) ([]byte, error) {
	outs, err := planAll(list, false)
	if err != nil {
		return nil, err
	}
	size := 0
	for i := range outs {
		size += protowire.SizeTag(1) + protowire.SizeBytes(mapEntrySize(&outs[i]))
	}
	b := make([]byte, 0, size)
	for i := range outs {
		b = appendMapEntry(b, 1, &outs[i])
	}
	return b, nil
}

// encodeTorchResponse writes PredictResponse{outputs = 1 (positional), map_outputs = 2}.
func encodeTorchResponse(list []namedTensor, withMap bool) ([]byte, error) {
	outs, err := planAll(list, true)
	if err != nil {
		return nil, err
	}
	size := 0
	for i := range outs {
		size += protowire.SizeTag(1) + protowire.SizeBytes(outs[i].size)
		if withMap {
			size += protowire.SizeTag(2) + protowire.SizeBytes(mapEntrySize(&outs[i]))
		}
	}
	b := make([]byte, 0, size)
	for i := range outs {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(outs[i].size))
		b = outs[i].appendTo(b)
	}
	if withMap {
		for i := range outs {
			b = appendMapEntry(b, 2, &outs[i])
		}
	}
	return b, nil
}

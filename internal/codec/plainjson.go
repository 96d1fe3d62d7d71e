package codec

import (
	"errors"
	"fmt"

	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// Plain JSON, for curl users:
//
//	request  {"inputs": {"x": [[1, 2], [3, 4]]}, "outputs": ["y"]}   ("outputs" optional)
//	response {"outputs": {"y": [[0.5, 0.5]]}}
//
// Shapes come from the nesting, dtypes from the signature: numbers for numeric inputs,
// strings for string inputs, true/false for bool inputs.

func decodeJSON(body []byte, sig processor.Signature) (*Request, error) {
	req := &Request{Format: FormatJSON, Inputs: map[string]*tensor.Tensor{}}
	s := &scanner{b: body}
	var outputs []string
	haveOutputs := false
	err := s.object(func(key string) error {
		switch key {
		case "inputs":
			if s.peek() != '{' {
				return &processor.InputError{Msg: fmt.Sprintf(`"inputs" must be an object of input name → nested list, found %s`, describe(s.peek()))}
			}
			return s.object(func(name string) error {
				// "x:0" names x as in the TF protobuf path (TF graphs converted to ONNX).
				info, ok := findTFInfo(sig.Inputs, name)
				if !ok {
					return unknownInput(sig, name)
				}
				if _, dup := req.Inputs[info.Name]; dup {
					return &processor.InputError{Input: name, Msg: "given twice"}
				}
				t, err := readList(s, info.ValueDType(), sizeHint(info))
				if err != nil {
					return inputErr(name, err)
				}
				req.Inputs[info.Name] = t
				return nil
			})
		case "outputs":
			haveOutputs = true
			if s.peek() != '[' {
				return &processor.InputError{Msg: fmt.Sprintf(`"outputs" must be a list of output names, found %s`, describe(s.peek()))}
			}
			return s.array(func(i int) error {
				if s.peek() != '"' {
					return &processor.InputError{Msg: fmt.Sprintf(`"outputs"[%d] must be an output name, found %s`, i, describe(s.peek()))}
				}
				n, err := s.str()
				outputs = append(outputs, n)
				return err
			})
		}
		return &processor.InputError{Msg: fmt.Sprintf(`unknown field %q; a JSON request has "inputs" and optionally "outputs"`, key)}
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return nil, inputErr("", err)
	}
	if haveOutputs {
		if req.Outputs, err = selectOutputs(sig, outputs); err != nil {
			return nil, err
		}
	}
	return req, nil
}

// sizeHint guesses an input's byte size from its signature, to size the buffer once.
func sizeHint(info tensor.Info) int {
	if info.Shape == nil || info.DType.Size() == 0 {
		return 0
	}
	n := int64(info.DType.Size())
	for _, d := range info.Shape {
		if d < 0 {
			d = 1
		}
		n *= d
		if n > 64<<20 {
			return 0
		}
	}
	return int(n)
}

// inputErr makes err an InputError about input name unless it already is one.
func inputErr(name string, err error) error {
	var ie *processor.InputError
	if errors.As(err, &ie) {
		return err
	}
	return &processor.InputError{Input: name, Msg: err.Error()}
}

func encodeJSON(list []namedTensor) ([]byte, error) {
	size := 16
	for _, nt := range list {
		size += len(nt.name) + 8 + int(tensor.NumElements(nt.t.Shape))*12
	}
	b := make([]byte, 0, size)
	b = append(b, `{"outputs":{`...)
	for i, nt := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, nt.name)
		b = append(b, ':')
		if kindOf(nt.t.DType) == kindOther {
			return nil, fmt.Errorf("codec: output %q: dtype %v cannot be written in JSON", nt.name, nt.t.DType)
		}
		b = appendNested(b, nt.t)
	}
	return append(b, "}}"...), nil
}

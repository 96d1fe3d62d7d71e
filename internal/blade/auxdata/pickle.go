package auxdata

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"

	"github.com/openeas/openeas/internal/tensor"
)

// The numpy objects a pickled feed-dict list refers to. Only these classes
// are resolved; any other global in the pickle is an error, so loading a
// file never runs or imitates arbitrary Python code.

// pyDType is numpy.dtype(descr, align, copy) plus its __setstate__.
type pyDType struct {
	descr  string
	endian string
}

type pyDTypeClass struct{}

func (pyDTypeClass) Call(args ...any) (any, error) {
	if len(args) < 1 {
		return nil, errors.New("numpy.dtype: no arguments")
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("numpy.dtype: type string expected, got %T", args[0])
	}
	return &pyDType{descr: s}, nil
}

func (d *pyDType) PySetState(state any) error {
	t, ok := state.(*types.Tuple)
	if !ok || t.Len() < 2 {
		return fmt.Errorf("numpy.dtype state: tuple expected, got %T", state)
	}
	e, ok := t.Get(1).(string)
	if !ok {
		return fmt.Errorf("numpy.dtype state: byte order must be a string, got %T", t.Get(1))
	}
	d.endian = e
	return nil
}

func (d *pyDType) parse() (npDType, error) {
	e := d.endian
	if e == "" {
		e = "|"
	}
	return parseDescr(e + d.descr)
}

// pyArray is numpy.core.multiarray._reconstruct(ndarray, ...) plus __setstate__.
type pyArray struct {
	shape   []int64
	dtype   *pyDType
	fortran bool
	raw     []byte
	objects []any // object arrays
	set     bool
}

type pyReconstruct struct{}

func (pyReconstruct) Call(args ...any) (any, error) { return &pyArray{}, nil }

// pyNdarrayClass is numpy.ndarray, passed as _reconstruct's first argument.
type pyNdarrayClass struct{}

func (a *pyArray) PySetState(state any) error {
	t, ok := state.(*types.Tuple)
	if !ok {
		return fmt.Errorf("numpy.ndarray state: tuple expected, got %T", state)
	}
	items := []any(*t)
	if len(items) == 5 { // version, shape, dtype, is_fortran, data
		items = items[1:]
	}
	if len(items) != 4 {
		return fmt.Errorf("numpy.ndarray state: %d items, want 4 or 5", t.Len())
	}
	shape, ok := items[0].(*types.Tuple)
	if !ok {
		return fmt.Errorf("numpy.ndarray state: shape must be a tuple, got %T", items[0])
	}
	for _, s := range *shape {
		n, ok := s.(int)
		if !ok || n < 0 {
			return fmt.Errorf("numpy.ndarray state: bad dimension %v", s)
		}
		a.shape = append(a.shape, int64(n))
	}
	if a.dtype, ok = items[1].(*pyDType); !ok {
		return fmt.Errorf("numpy.ndarray state: dtype expected, got %T", items[1])
	}
	if a.fortran, ok = items[2].(bool); !ok {
		return fmt.Errorf("numpy.ndarray state: is_fortran must be a bool, got %T", items[2])
	}
	switch v := items[3].(type) {
	case []byte:
		a.raw = v
	case string: // Python 2 pickles store the buffer as a latin-1 str
		a.raw = latin1(v)
	case *types.List:
		a.objects = *v
	default:
		return fmt.Errorf("numpy.ndarray state: data has type %T", items[3])
	}
	a.set = true
	return nil
}

func latin1(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		out = append(out, byte(r))
	}
	return out
}

// pyScalar is numpy.core.multiarray.scalar(dtype, bytes).
type pyScalar struct{ t *tensor.Tensor }

type pyScalarFunc struct{}

func (pyScalarFunc) Call(args ...any) (any, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("numpy scalar: %d arguments, want 2", len(args))
	}
	dt, ok := args[0].(*pyDType)
	if !ok {
		return nil, fmt.Errorf("numpy scalar: dtype expected, got %T", args[0])
	}
	var raw []byte
	switch v := args[1].(type) {
	case []byte:
		raw = v
	case string:
		raw = latin1(v)
	default:
		return nil, fmt.Errorf("numpy scalar: bytes expected, got %T", args[1])
	}
	d, err := dt.parse()
	if err != nil {
		return nil, err
	}
	if d.kind == 'O' {
		return nil, errors.New("numpy scalar: object scalars are not supported")
	}
	t, err := arrayTensor(d, nil, false, raw)
	if err != nil {
		return nil, fmt.Errorf("numpy scalar: %w", err)
	}
	return &pyScalar{t: t}, nil
}

// pyCodecsEncode is _codecs.encode(str, "latin1"), Python 2 compatible bytes.
type pyCodecsEncode struct{}

func (pyCodecsEncode) Call(args ...any) (any, error) {
	if len(args) < 1 {
		return nil, errors.New("_codecs.encode: no arguments")
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("_codecs.encode: str expected, got %T", args[0])
	}
	return latin1(s), nil
}

func findNumpyClass(module, name string) (any, error) {
	switch module + "." + name {
	case "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct":
		return pyReconstruct{}, nil
	case "numpy.ndarray":
		return pyNdarrayClass{}, nil
	case "numpy.dtype":
		return pyDTypeClass{}, nil
	case "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar":
		return pyScalarFunc{}, nil
	case "_codecs.encode":
		return pyCodecsEncode{}, nil
	}
	return nil, fmt.Errorf("pickle refers to %s.%s, which a feed-dict list does not contain", module, name)
}

// safeUnpickle runs gopickle, turning a panic on malformed input into an error.
func safeUnpickle(data []byte, find func(module, name string) (any, error), persistent func(any) (any, error)) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("malformed pickle: %v", r)
		}
	}()
	if err := scanPickle(data); err != nil {
		return nil, err
	}
	u := pickle.NewUnpickler(bytes.NewReader(data))
	u.FindClass = find
	u.PersistentLoad = persistent
	v, err = u.Load()
	if err != nil {
		return nil, fmt.Errorf("unpickle: %w", err)
	}
	return v, nil
}

// unpickleFeeds decodes the pickled object array np.save writes for a list
// of feed dicts.
func unpickleFeeds(data []byte) ([]Sample, error) {
	v, err := safeUnpickle(data, findNumpyClass, nil)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	arr, ok := v.(*pyArray)
	if !ok || !arr.set {
		return nil, fmt.Errorf("npy: pickle holds %T, want a numpy object array", v)
	}
	if arr.objects == nil {
		return nil, errors.New("npy: pickled array is not an object array")
	}
	var samples []Sample
	for i, o := range arr.objects {
		s, err := feedSample(o)
		if err != nil {
			return nil, fmt.Errorf("npy: sample %d: %w", i, err)
		}
		samples = append(samples, s)
	}
	return samples, nil
}

func feedSample(o any) (Sample, error) {
	switch v := o.(type) {
	case *types.Dict:
		s := Sample{Named: map[string]*tensor.Tensor{}}
		for _, e := range *v {
			k, ok := e.Key.(string)
			if !ok {
				return Sample{}, fmt.Errorf("feed dict key %v is not a string", e.Key)
			}
			t, err := pyValueTensor(e.Value)
			if err != nil {
				return Sample{}, fmt.Errorf("input %q: %w", k, err)
			}
			s.Named[k] = t
		}
		return s, nil
	case *types.Tuple:
		return positionalSample(*v)
	case *types.List:
		return positionalSample(*v)
	}
	return Sample{}, fmt.Errorf("want a feed dict, got %T", o)
}

func positionalSample(items []any) (Sample, error) {
	s := Sample{Positional: []*tensor.Tensor{}}
	for i, it := range items {
		t, err := pyValueTensor(it)
		if err != nil {
			return Sample{}, fmt.Errorf("input #%d: %w", i, err)
		}
		s.Positional = append(s.Positional, t)
	}
	return s, nil
}

// pyValueTensor converts a feed value: ndarray, numpy scalar or a plain
// Python scalar (float → float32, int → int64, bool, str).
func pyValueTensor(v any) (*tensor.Tensor, error) {
	switch x := v.(type) {
	case *pyArray:
		if !x.set {
			return nil, errors.New("ndarray without state")
		}
		d, err := x.dtype.parse()
		if err != nil {
			return nil, err
		}
		if d.kind == 'O' {
			return objectStrings(x)
		}
		return arrayTensor(d, x.shape, x.fortran, x.raw)
	case *pyScalar:
		return x.t, nil
	case float64:
		b := make([]byte, 4)
		binary.LittleEndian.PutUint32(b, math.Float32bits(float32(x)))
		return &tensor.Tensor{DType: tensor.Float, Data: b}, nil
	case int:
		b := make([]byte, 8)
		binary.LittleEndian.PutUint64(b, uint64(x))
		return &tensor.Tensor{DType: tensor.Int64, Data: b}, nil
	case bool:
		b := []byte{0}
		if x {
			b[0] = 1
		}
		return &tensor.Tensor{DType: tensor.Bool, Data: b}, nil
	case string:
		return &tensor.Tensor{DType: tensor.String, Strings: []string{x}}, nil
	}
	return nil, fmt.Errorf("unsupported value of type %T", v)
}

// objectStrings reads an object array whose elements are all str or bytes.
func objectStrings(a *pyArray) (*tensor.Tensor, error) {
	n, err := numElements(a.shape)
	if err != nil {
		return nil, err
	}
	if int64(len(a.objects)) != n {
		return nil, fmt.Errorf("object array of shape %v holds %d items", a.shape, len(a.objects))
	}
	t := &tensor.Tensor{DType: tensor.String, Shape: slices.Clone(a.shape), Strings: make([]string, n)}
	for i, o := range a.objects {
		switch s := o.(type) {
		case string:
			t.Strings[i] = s
		case []byte:
			t.Strings[i] = string(s)
		default:
			return nil, fmt.Errorf("object array element %d has type %T (only strings are supported)", i, o)
		}
	}
	return t, nil
}

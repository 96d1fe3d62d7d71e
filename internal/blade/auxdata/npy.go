package auxdata

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/openeas/openeas/internal/tensor"
)

var npyMagic = []byte("\x93NUMPY")

// npyHeader is the parsed header dict of a .npy file.
type npyHeader struct {
	descr   string
	fortran bool
	shape   []int64
}

// parseNpy splits a .npy file into its header and payload.
func parseNpy(b []byte) (npyHeader, []byte, error) {
	var h npyHeader
	if !bytes.HasPrefix(b, npyMagic) || len(b) < 10 {
		return h, nil, errors.New("npy: bad magic")
	}
	major := b[6]
	var hlen, start int
	switch major {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		if len(b) < 12 {
			return h, nil, errors.New("npy: truncated header")
		}
		n := binary.LittleEndian.Uint32(b[8:12])
		if n > uint32(len(b)) {
			return h, nil, fmt.Errorf("npy: header length %d past end of file", n)
		}
		hlen, start = int(n), 12
	default:
		return h, nil, fmt.Errorf("npy: unsupported format version %d", major)
	}
	if start+hlen > len(b) {
		return h, nil, fmt.Errorf("npy: header length %d past end of file", hlen)
	}
	v, err := parsePyLiteral(string(b[start : start+hlen]))
	if err != nil {
		return h, nil, fmt.Errorf("npy: header: %w", err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return h, nil, errors.New("npy: header is not a dict")
	}
	if h.descr, ok = d["descr"].(string); !ok {
		return h, nil, errors.New("npy: header: 'descr' must be a string (structured dtypes are not supported)")
	}
	if h.fortran, ok = d["fortran_order"].(bool); !ok {
		return h, nil, errors.New("npy: header: 'fortran_order' must be True or False")
	}
	shape, ok := d["shape"].([]any)
	if !ok {
		return h, nil, errors.New("npy: header: 'shape' must be a tuple")
	}
	for _, s := range shape {
		n, ok := s.(int64)
		if !ok || n < 0 {
			return h, nil, fmt.Errorf("npy: header: bad dimension %v", s)
		}
		h.shape = append(h.shape, n)
	}
	return h, b[start+hlen:], nil
}

// parsePyLiteral parses the subset of Python literals npy headers use:
// dicts, tuples, lists, strings, ints, True/False/None.
func parsePyLiteral(s string) (any, error) {
	p := &litParser{s: s}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skip()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("unexpected %q at offset %d", p.s[p.i:min(len(p.s), p.i+10)], p.i)
	}
	return v, nil
}

type litParser struct {
	s string
	i int
}

func (p *litParser) skip() {
	for p.i < len(p.s) && strings.ContainsRune(" \t\r\n", rune(p.s[p.i])) {
		p.i++
	}
}

func (p *litParser) value(depth int) (any, error) {
	if depth > 16 {
		return nil, errors.New("nested too deeply")
	}
	p.skip()
	if p.i >= len(p.s) {
		return nil, errors.New("unexpected end")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		p.i++
		m := map[string]any{}
		for {
			p.skip()
			if p.i < len(p.s) && p.s[p.i] == '}' {
				p.i++
				return m, nil
			}
			k, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("dict key %v is not a string", k)
			}
			p.skip()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return nil, fmt.Errorf("missing ':' after key %q", ks)
			}
			p.i++
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			m[ks] = v
			if err := p.sep('}'); err != nil {
				return nil, err
			}
		}
	case c == '(' || c == '[':
		end := byte(')')
		if c == '[' {
			end = ']'
		}
		p.i++
		var out []any
		for {
			p.skip()
			if p.i < len(p.s) && p.s[p.i] == end {
				p.i++
				if out == nil {
					out = []any{}
				}
				return out, nil
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			if err := p.sep(end); err != nil {
				return nil, err
			}
		}
	case c == '\'' || c == '"':
		j := strings.IndexByte(p.s[p.i+1:], c)
		if j < 0 {
			return nil, errors.New("unterminated string")
		}
		v := p.s[p.i+1 : p.i+1+j]
		p.i += j + 2
		return v, nil
	case c == '-' || (c >= '0' && c <= '9'):
		j := p.i + 1
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		// numpy writes Python ints, which may carry an "L" suffix from Python 2.
		n, err := strconv.ParseInt(p.s[p.i:j], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad integer %q", p.s[p.i:j])
		}
		if j < len(p.s) && p.s[j] == 'L' {
			j++
		}
		p.i = j
		return n, nil
	}
	for _, w := range []struct {
		s string
		v any
	}{{"True", true}, {"False", false}, {"None", nil}} {
		if strings.HasPrefix(p.s[p.i:], w.s) {
			p.i += len(w.s)
			return w.v, nil
		}
	}
	return nil, fmt.Errorf("unexpected %q at offset %d", p.s[p.i:min(len(p.s), p.i+10)], p.i)
}

// sep consumes a ',' or sees the closing bracket.
func (p *litParser) sep(end byte) error {
	p.skip()
	if p.i < len(p.s) && p.s[p.i] == ',' {
		p.i++
		return nil
	}
	if p.i < len(p.s) && p.s[p.i] == end {
		return nil
	}
	return fmt.Errorf("expected ',' or %q at offset %d", end, p.i)
}

// npDType is a parsed numpy type string such as "<f4", "|b1", "U5".
type npDType struct {
	kind   byte // f, i, u, b, U, S, O
	size   int  // bytes per element (U: 4 per character)
	bigEnd bool
}

func parseDescr(descr string) (npDType, error) {
	var d npDType
	s := descr
	if s != "" && strings.ContainsRune("<>|=", rune(s[0])) {
		d.bigEnd = s[0] == '>'
		s = s[1:]
	}
	if s == "" {
		return d, fmt.Errorf("npy: empty dtype %q", descr)
	}
	d.kind = s[0]
	n := 0
	if len(s) > 1 {
		var err error
		if n, err = strconv.Atoi(s[1:]); err != nil || n < 0 || n > 1<<20 {
			return d, fmt.Errorf("npy: unsupported dtype %q", descr)
		}
	}
	switch d.kind {
	case 'f', 'i', 'u', 'b':
		d.size = n
	case 'U':
		d.size = 4 * n
	case 'S', 'a':
		d.kind, d.size = 'S', n
	case 'O':
		d.size = 8
	case '?':
		d.kind, d.size = 'b', 1
	default:
		return d, fmt.Errorf("npy: unsupported dtype %q", descr)
	}
	if _, err := d.tensorType(); err != nil && d.kind != 'O' {
		return d, fmt.Errorf("npy: unsupported dtype %q", descr)
	}
	return d, nil
}

func (d npDType) tensorType() (tensor.DType, error) {
	switch {
	case d.kind == 'f' && d.size == 2:
		return tensor.Float16, nil
	case d.kind == 'f' && d.size == 4:
		return tensor.Float, nil
	case d.kind == 'f' && d.size == 8:
		return tensor.Double, nil
	case d.kind == 'i' && d.size == 1:
		return tensor.Int8, nil
	case d.kind == 'i' && d.size == 2:
		return tensor.Int16, nil
	case d.kind == 'i' && d.size == 4:
		return tensor.Int32, nil
	case d.kind == 'i' && d.size == 8:
		return tensor.Int64, nil
	case d.kind == 'u' && d.size == 1:
		return tensor.Uint8, nil
	case d.kind == 'u' && d.size == 2:
		return tensor.Uint16, nil
	case d.kind == 'u' && d.size == 4:
		return tensor.Uint32, nil
	case d.kind == 'u' && d.size == 8:
		return tensor.Uint64, nil
	case d.kind == 'b' && d.size == 1:
		return tensor.Bool, nil
	case d.kind == 'U' || d.kind == 'S':
		return tensor.String, nil
	}
	return tensor.Invalid, fmt.Errorf("unsupported numpy type %c%d", d.kind, d.size)
}

// numElements multiplies dims, failing instead of overflowing.
func numElements(shape []int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d", d)
		}
		if d != 0 && n > math.MaxInt32*int64(1024)/d {
			return 0, fmt.Errorf("shape %v is too large", shape)
		}
		n *= d
	}
	return n, nil
}

// arrayTensor turns raw numpy array bytes into a tensor (C order,
// little-endian), transposing Fortran-ordered data and swapping big-endian.
func arrayTensor(d npDType, shape []int64, fortran bool, data []byte) (*tensor.Tensor, error) {
	dt, err := d.tensorType()
	if err != nil {
		return nil, err
	}
	n, err := numElements(shape)
	if err != nil {
		return nil, err
	}
	if d.size == 0 && n > 0 && (d.kind == 'f' || d.kind == 'i' || d.kind == 'u' || d.kind == 'b') {
		return nil, errors.New("zero-sized element type")
	}
	need := n * int64(d.size)
	if int64(len(data)) < need {
		return nil, fmt.Errorf("data holds %d bytes, shape %v needs %d", len(data), shape, need)
	}
	data = data[:need]
	if fortran && len(shape) > 1 {
		data = fortranToC(data, d.size, shape)
	}
	t := &tensor.Tensor{DType: dt, Shape: append([]int64{}, shape...)}
	if dt == tensor.String {
		t.Strings = make([]string, n)
		for i := range t.Strings {
			e := data[int64(i)*int64(d.size) : int64(i+1)*int64(d.size)]
			if d.kind == 'S' {
				t.Strings[i] = string(bytes.TrimRight(e, "\x00"))
				continue
			}
			var sb strings.Builder
			for k := 0; k+4 <= len(e); k += 4 {
				var r uint32
				if d.bigEnd {
					r = binary.BigEndian.Uint32(e[k:])
				} else {
					r = binary.LittleEndian.Uint32(e[k:])
				}
				if r == 0 {
					break
				}
				if r > utf8.MaxRune {
					r = utf8.RuneError
				}
				sb.WriteRune(rune(r))
			}
			t.Strings[i] = sb.String()
		}
		return t, nil
	}
	out := append([]byte(nil), data...)
	if d.bigEnd && d.size > 1 {
		for i := 0; i+d.size <= len(out); i += d.size {
			e := out[i : i+d.size]
			for a, b := 0, len(e)-1; a < b; a, b = a+1, b-1 {
				e[a], e[b] = e[b], e[a]
			}
		}
	}
	t.Data = out
	return t, nil
}

// fortranToC reorders column-major elements into row-major order.
func fortranToC(data []byte, size int, shape []int64) []byte {
	strides := make([]int64, len(shape)) // element strides of the Fortran layout
	s := int64(1)
	for i := range shape {
		strides[i] = s
		s *= shape[i]
	}
	return gather(data, size, shape, strides, 0)
}

// gather copies elements at offset + Σ idx[k]·strides[k] (in elements) in
// row-major index order.
func gather(data []byte, size int, shape, strides []int64, offset int64) []byte {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	out := make([]byte, 0, n*int64(size))
	idx := make([]int64, len(shape))
	for e := int64(0); e < n; e++ {
		pos := offset
		for k, i := range idx {
			pos += i * strides[k]
		}
		out = append(out, data[pos*int64(size):(pos+1)*int64(size)]...)
		for k := len(idx) - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < shape[k] {
				break
			}
			idx[k] = 0
		}
	}
	return out
}

// decodeNpyFile reads a .npy: a numeric array (one positional sample) or a
// pickled object array of feed dicts.
func decodeNpyFile(b []byte) (*Dataset, error) {
	h, data, err := parseNpy(b)
	if err != nil {
		return nil, err
	}
	d, err := parseDescr(h.descr)
	if err != nil {
		return nil, err
	}
	if d.kind == 'O' {
		samples, err := unpickleFeeds(data)
		if err != nil {
			return nil, err
		}
		return &Dataset{Samples: samples, Format: FormatNpyPickle}, nil
	}
	t, err := arrayTensor(d, h.shape, h.fortran, data)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	return &Dataset{Samples: []Sample{{Positional: []*tensor.Tensor{t}}}, Format: FormatNpy}, nil
}

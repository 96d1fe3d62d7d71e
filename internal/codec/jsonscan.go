package codec

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/openeas/openeas/internal/tensor"
)

// A hand-written JSON reader: encoding/json would build a []any with one allocation per
// number, which for an image tensor costs more than the inference budget. The reader parses
// nested lists straight into tensor bytes.

// maxDepth bounds nesting so that hostile bodies cannot exhaust the stack.
const maxDepth = 64

type jsonError struct {
	off int
	msg string
}

// Error counts bytes from 1, as editors do.
func (e *jsonError) Error() string { return fmt.Sprintf("invalid JSON at byte %d: %s", e.off+1, e.msg) }

type scanner struct {
	b []byte
	i int
}

func (s *scanner) errf(format string, args ...any) error {
	return &jsonError{off: s.i, msg: fmt.Sprintf(format, args...)}
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func describe(c byte) string {
	switch {
	case c == 0:
		return "end of input"
	case c == '"':
		return "a string"
	case c == '[':
		return "a list"
	case c == '{':
		return "an object"
	case c == 't' || c == 'f':
		return "a bool"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9') || c == 'N' || c == 'I':
		return "a number"
	}
	return strconv.QuoteRune(rune(c))
}

func (s *scanner) expect(c byte) error {
	if got := s.peek(); got != c {
		return s.errf("expected %q, found %s", c, describe(got))
	}
	s.i++
	return nil
}

// end checks that nothing but white space follows the top-level value.
func (s *scanner) end() error {
	if s.peek() != 0 {
		return s.errf("unexpected data after the top-level value")
	}
	return nil
}

// object walks an object, calling fn with each key with the scanner at its value; fn must
// consume the value.
func (s *scanner) object(fn func(key string) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.errf("expected an object key, found %s", describe(s.peek()))
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		s.ws()
		if err := fn(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.errf("expected ',' or '}' in object, found %s", describe(s.peek()))
		}
	}
}

// array walks a list, calling fn with the scanner at each element.
func (s *scanner) array(fn func(i int) error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for i := 0; ; i++ {
		s.ws()
		if err := fn(i); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.errf("expected ',' or ']' in list, found %s", describe(s.peek()))
		}
	}
}

// str reads a string; the scanner must be at its opening quote.
func (s *scanner) str() (string, error) {
	start := s.i
	s.i++
	escaped := false
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			raw := s.b[start:s.i]
			if !escaped && utf8.Valid(raw) {
				return string(raw[1 : len(raw)-1]), nil
			}
			var out string // escapes are rare: let encoding/json apply the full rules
			if err := json.Unmarshal(raw, &out); err != nil {
				s.i = start
				return "", s.errf("bad string: %v", err)
			}
			return out, nil
		case c == '\\':
			escaped = true
			s.i += 2
		case c < 0x20:
			return "", s.errf("control character in string")
		default:
			s.i++
		}
	}
	s.i = start
	return "", s.errf("unterminated string")
}

// number returns the next number token: JSON's grammar plus NaN, Infinity and -Infinity,
// which TensorFlow Serving and Python's json module also use.
func (s *scanner) number() ([]byte, error) {
	start := s.i
	b := s.b
	if c := s.peekAt(s.i); c == 'N' || c == 'I' || (c == '-' && s.peekAt(s.i+1) == 'I') {
		for _, lit := range [...]string{"NaN", "Infinity", "-Infinity"} {
			if s.literal(lit) {
				return b[start:s.i], nil
			}
		}
	}
	i := s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() bool {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > j
	}
	if !digits() {
		return nil, s.errf("expected a number, found %s", describe(s.peekAt(start)))
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			s.i = i
			return nil, s.errf("bad number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			s.i = i
			return nil, s.errf("bad number")
		}
	}
	s.i = i
	return b[start:i], nil
}

func (s *scanner) peekAt(i int) byte {
	if i < len(s.b) {
		return s.b[i]
	}
	return 0
}

func (s *scanner) literal(word string) bool {
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return false
}

// skip consumes one value of any kind, checking its syntax.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return s.errf("nested deeper than %d levels", maxDepth)
	}
	switch c := s.peek(); c {
	case '{':
		return s.object(func(string) error { return s.skip(depth + 1) })
	case '[':
		return s.array(func(int) error { return s.skip(depth + 1) })
	case '"':
		_, err := s.str()
		return err
	case 't', 'f', 'n':
		if s.literal("true") || s.literal("false") || s.literal("null") {
			return nil
		}
		return s.errf("unknown literal")
	default:
		_, err := s.number()
		return err
	}
}

// valueError is a problem with one element of a tensor, reported with its index path.
type valueError struct {
	path []int
	msg  string
}

func (e *valueError) Error() string {
	if len(e.path) == 0 {
		return e.msg
	}
	var b strings.Builder
	b.WriteString("at ")
	for _, i := range e.path {
		fmt.Fprintf(&b, "[%d]", i)
	}
	b.WriteString(": ")
	b.WriteString(e.msg)
	return b.String()
}

// listReader parses a (nested) list of scalars into tensor data of one dtype, taking the
// shape from the nesting and rejecting ragged lists.
type listReader struct {
	s     *scanner
	dt    tensor.DType
	shape []int64 // -1 while the first list at that depth is open
	rank  int     // -1 until the first scalar or empty list fixes it
	path  []int
	data  []byte
	strs  []string
	n     int
}

func readList(s *scanner, dt tensor.DType, sizeHint int) (*tensor.Tensor, error) {
	r := &listReader{s: s, dt: dt, rank: -1}
	if dt != tensor.String && sizeHint > 0 {
		r.data = make([]byte, 0, sizeHint)
	}
	if err := r.value(0); err != nil {
		return nil, err
	}
	t := &tensor.Tensor{DType: dt, Shape: r.shape}
	if dt == tensor.String {
		t.Strings = r.strs
		if t.Strings == nil {
			t.Strings = []string{}
		}
	} else {
		t.Data = r.data
		if t.Data == nil {
			t.Data = []byte{}
		}
	}
	return t, nil
}

func (r *listReader) fail(msg string) error {
	return &valueError{path: append([]int(nil), r.path...), msg: msg}
}

func (r *listReader) value(depth int) error {
	if r.s.peek() != '[' {
		if r.rank == -1 {
			r.rank = depth
		}
		if depth != r.rank {
			return r.fail(fmt.Sprintf("ragged nested list: a scalar where a list of %d was expected", r.shape[depth]))
		}
		return r.scalar()
	}
	if depth >= maxDepth {
		return r.s.errf("nested deeper than %d levels", maxDepth)
	}
	if r.rank != -1 && depth >= r.rank {
		return r.fail("ragged nested list: a list where a scalar was expected")
	}
	if depth == len(r.shape) {
		r.shape = append(r.shape, -1)
	}
	r.path = append(r.path, 0)
	count := 0
	err := r.s.array(func(i int) error {
		r.path[depth] = i
		count = i + 1
		return r.value(depth + 1)
	})
	r.path = r.path[:depth]
	if err != nil {
		return err
	}
	switch {
	case r.shape[depth] == -1:
		r.shape[depth] = int64(count)
		if count == 0 && r.rank == -1 {
			r.rank = depth + 1
		}
	case int64(count) != r.shape[depth]:
		return r.fail(fmt.Sprintf("ragged nested list: %d elements where the first list at this depth has %d", count, r.shape[depth]))
	}
	return nil
}

func (r *listReader) scalar() error {
	s := r.s
	c := s.peek()
	r.n++
	switch kindOf(r.dt) {
	case kindString:
		if c != '"' {
			return r.fail(fmt.Sprintf("expected a string, found %s", describe(c)))
		}
		v, err := s.str()
		if err != nil {
			return err
		}
		r.strs = append(r.strs, v)
		return nil
	case kindBool:
		switch {
		case s.literal("true"):
			r.data = append(r.data, 1)
		case s.literal("false"):
			r.data = append(r.data, 0)
		default:
			return r.fail(fmt.Sprintf("expected true or false, found %s", describe(c)))
		}
		return nil
	case kindFloat, kindInt:
		if c == '"' || c == '{' || c == 't' || c == 'f' || c == 'n' {
			return r.fail(fmt.Sprintf("expected a number (%s), found %s", r.dt, describe(c)))
		}
		tok, err := s.number()
		if err != nil {
			return err
		}
		if r.data, err = appendNumber(r.data, r.dt, tok); err != nil {
			return r.fail(err.Error())
		}
		return nil
	}
	return r.fail(fmt.Sprintf("dtype %s cannot be written in JSON", r.dt))
}

// appendNumber appends the number token tok as one element of dtype dt, refusing values
// that dt cannot hold (a fraction for an integer, an overflow).
func appendNumber(b []byte, dt tensor.DType, tok []byte) ([]byte, error) {
	switch dt {
	case tensor.Float:
		f, err := parseFloat(tok, 32)
		if err != nil {
			return b, err
		}
		return binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(f))), nil
	case tensor.Double:
		f, err := parseFloat(tok, 64)
		if err != nil {
			return b, err
		}
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(f)), nil
	case tensor.Float16, tensor.BFloat16:
		f, err := parseFloat(tok, 32)
		if err != nil {
			return b, err
		}
		var h uint16
		if dt == tensor.Float16 {
			h = tensor.Float32ToFloat16(float32(f))
			if h&0x7fff == 0x7c00 && !math.IsInf(f, 0) {
				return b, fmt.Errorf("value %s overflows %s", tok, dt)
			}
		} else {
			h = tensor.Float32ToBFloat16(float32(f))
		}
		return binary.LittleEndian.AppendUint16(b, h), nil
	}
	// Integers (and the 0/1 of an int tensor written as floats, e.g. 3.0).
	var v int64
	if isPlainInt(tok) {
		var err error
		if v, err = strconv.ParseInt(string(tok), 10, 64); err != nil {
			if dt == tensor.Uint64 {
				u, uerr := strconv.ParseUint(string(tok), 10, 64)
				if uerr == nil {
					return binary.LittleEndian.AppendUint64(b, u), nil
				}
			}
			return b, fmt.Errorf("value %s does not fit %s", tok, dt)
		}
	} else {
		f, err := strconv.ParseFloat(string(tok), 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<63 {
			return b, fmt.Errorf("value %s is not an integer (%s)", tok, dt)
		}
		v = int64(f)
	}
	n := len(b)
	b = append(b, make([]byte, dt.Size())...)
	if err := intWriter(dt)(b[n:], 0, v); err != nil {
		return b[:n], err
	}
	return b, nil
}

func isPlainInt(tok []byte) bool {
	for i, c := range tok {
		if (c < '0' || c > '9') && (i != 0 || c != '-') {
			return false
		}
	}
	return true
}

// parseFloat parses a number token, treating overflow as an error: the value cannot be held.
func parseFloat(tok []byte, bits int) (float64, error) {
	switch string(tok) {
	case "NaN":
		return math.NaN(), nil
	case "Infinity":
		return math.Inf(1), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	f, err := strconv.ParseFloat(string(tok), bits)
	if errors.Is(err, strconv.ErrRange) && math.IsInf(f, 0) {
		return 0, fmt.Errorf("value %s overflows float%d", tok, bits)
	}
	if err != nil && !errors.Is(err, strconv.ErrRange) { // underflow to 0 is fine
		return 0, fmt.Errorf("bad number %s", tok)
	}
	return f, nil
}

// JSON writing.

// appendFloat writes a float in the shortest form that reads back exactly; NaN and the
// infinities as NaN, Infinity and -Infinity (not JSON, but what numpy users' tools read).
func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// elemAppender returns a function that writes element i of t as a JSON scalar.
func elemAppender(t *tensor.Tensor) func(b []byte, i int) []byte {
	d := t.Data
	switch t.DType {
	case tensor.Float:
		return func(b []byte, i int) []byte {
			return appendFloat(b, float64(math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))), 32)
		}
	case tensor.Double:
		return func(b []byte, i int) []byte {
			return appendFloat(b, math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:])), 64)
		}
	case tensor.Float16, tensor.BFloat16:
		return func(b []byte, i int) []byte { return appendFloat(b, readFloat(t.DType, d, i), 32) }
	case tensor.Bool:
		return func(b []byte, i int) []byte { return strconv.AppendBool(b, d[i] != 0) }
	case tensor.String:
		return func(b []byte, i int) []byte { return appendJSONString(b, t.Strings[i]) }
	case tensor.Uint64:
		return func(b []byte, i int) []byte { return strconv.AppendUint(b, binary.LittleEndian.Uint64(d[8*i:]), 10) }
	}
	return func(b []byte, i int) []byte {
		v, _ := readInt(t.DType, d, i)
		return strconv.AppendInt(b, v, 10)
	}
}

// appendNested writes t as nested lists following its shape (a bare scalar for rank 0).
func appendNested(b []byte, t *tensor.Tensor) []byte {
	put := elemAppender(t)
	if len(t.Shape) == 0 {
		return put(b, 0)
	}
	idx := 0
	var rec func(depth int)
	rec = func(depth int) {
		b = append(b, '[')
		n := int(t.Shape[depth])
		for k := range n {
			if k > 0 {
				b = append(b, ',')
			}
			if depth == len(t.Shape)-1 {
				b = put(b, idx)
				idx++
			} else {
				rec(depth + 1)
			}
		}
		b = append(b, ']')
	}
	rec(0)
	return b
}

// appendFlat writes t's elements as one flat list.
func appendFlat(b []byte, t *tensor.Tensor) []byte {
	put := elemAppender(t)
	n := int(tensor.NumElements(t.Shape))
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = put(b, i)
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s for JSON; invalid UTF-8 becomes U+FFFD as in encoding/json.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

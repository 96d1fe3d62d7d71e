package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// A JSON tree: *object, []any, string, json.Number, bool or nil. Objects keep their key
// order so that documents we rewrite (overrides, merges) read like the user's own.

// object is a JSON object with its keys in document order.
type object struct {
	keys []string
	vals map[string]any
}

func newObject() *object { return &object{vals: map[string]any{}} }

func (o *object) get(key string) (any, bool) {
	v, ok := o.vals[key]
	return v, ok
}

func (o *object) set(key string, v any) {
	if _, ok := o.vals[key]; !ok {
		o.keys = append(o.keys, key)
	}
	o.vals[key] = v
}

func (o *object) del(key string) {
	if _, ok := o.vals[key]; !ok {
		return
	}
	delete(o.vals, key)
	for i, k := range o.keys {
		if k == key {
			o.keys = append(o.keys[:i:i], o.keys[i+1:]...)
			break
		}
	}
}

// decodeTree parses one JSON value. Duplicate keys are reported in dups (the last one
// wins, as in encoding/json); syntax errors are returned with a line and column.
func decodeTree(data []byte, dups *Errors) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := readValue(dec, "", dups)
	if err != nil {
		return nil, syntaxError(data, dec, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		line, col := lineCol(data, dec.InputOffset())
		return nil, fmt.Errorf("invalid JSON at line %d, column %d: unexpected data after the top-level value", line, col)
	}
	return v, nil
}

func readValue(dec *json.Decoder, path string, dups *Errors) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := newObject()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key := kt.(string) // the decoder only yields string keys inside objects
				kp := joinKey(path, key)
				v, err := readValue(dec, kp, dups)
				if err != nil {
					return nil, err
				}
				if _, seen := obj.vals[key]; seen {
					dups.add(kp, "duplicate key")
				}
				obj.set(key, v)
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, err
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := readValue(dec, joinIndex(path, len(arr)), dups)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, err
			}
			return arr, nil
		}
		return nil, fmt.Errorf("unexpected %q", rune(t))
	default:
		return t, nil // string, json.Number, bool, nil
	}
}

func syntaxError(data []byte, dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(data, se.Offset)
		return fmt.Errorf("invalid JSON at line %d, column %d: %s", line, col, se.Error())
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		if len(bytes.TrimSpace(data)) == 0 {
			return errors.New("empty document, expected a JSON object")
		}
		return errors.New("invalid JSON: unexpected end of input")
	}
	line, col := lineCol(data, dec.InputOffset())
	return fmt.Errorf("invalid JSON at line %d, column %d: %v", line, col, err)
}

// lineCol turns a byte offset into a 1-based line and column.
func lineCol(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1)
	if col == 0 {
		col = 1
	}
	return line, col
}

// encodeTree writes a tree as compact JSON without HTML escaping.
func encodeTree(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := writeTree(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeTree(buf *bytes.Buffer, v any) error {
	switch t := v.(type) {
	case *object:
		buf.WriteByte('{')
		for i, k := range t.keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, k)
			buf.WriteByte(':')
			if err := writeTree(buf, t.vals[k]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case []any:
		buf.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeTree(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case string:
		writeString(buf, t)
	case json.Number:
		buf.WriteString(t.String())
	case bool:
		if t {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case nil:
		buf.WriteString("null")
	default:
		return fmt.Errorf("spec: internal error: unexpected %T in JSON tree", v)
	}
	return nil
}

func writeString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // a string always encodes
	buf.Truncate(buf.Len() - 1) // Encode's newline
}

// kindOf names a tree value's JSON type for error messages, with a short excerpt of
// scalars so the user sees what they wrote.
func kindOf(v any) string {
	switch t := v.(type) {
	case *object:
		return "object"
	case []any:
		return "array"
	case string:
		q := t
		if len(q) > 40 {
			q = q[:37] + "..."
		}
		return fmt.Sprintf("string %q", q)
	case json.Number:
		return "number " + t.String()
	case bool:
		return fmt.Sprintf("boolean %t", t)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// ApplyOverrides applies eascmd's `-D key=value` overrides to a service.json document and
// returns the new document. Keys are JSON paths ("metadata.instance",
// "metadata.rpc.batching", "plugins[0].gpu"); a leading "-D" is ignored. The value's JSON
// type comes from the field it sets: strings are taken as written ("metadata.cuda=10.0"
// stays a string), integers and booleans are parsed, objects and arrays are JSON. Inside
// a plugin's free-form config the type is guessed: valid JSON is used as such, anything
// else is a string. Missing objects on the way are created; an index one past the end of
// an array appends. Errors name the key. The result is not validated: Parse it.
func ApplyOverrides(doc []byte, overrides []string) ([]byte, error) {
	var ignored Errors // duplicate keys: Parse reports them, if they survive
	tree, err := decodeTree(doc, &ignored)
	if err != nil {
		return nil, fmt.Errorf("apply overrides: %w", err)
	}
	root, ok := tree.(*object)
	if !ok {
		return nil, fmt.Errorf("apply overrides: expected a JSON object, got %s", kindOf(tree))
	}
	for _, ov := range overrides {
		if err := applyOverride(root, strings.TrimPrefix(ov, "-D")); err != nil {
			return nil, err
		}
	}
	return encodeTree(root)
}

// segment is one step of an override key: an object key, or an array index when isIndex.
type segment struct {
	key     string
	index   int
	isIndex bool
}

func applyOverride(root *object, ov string) error {
	key, value, ok := strings.Cut(ov, "=")
	if !ok || key == "" {
		return fmt.Errorf("override %q: expected key=value", ov)
	}
	segs, err := parseKey(key)
	if err != nil {
		return fmt.Errorf("override %s: %w", key, err)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("override %s: %s", key, fmt.Sprintf(format, args...))
	}

	// Walk the schema alongside the document; t is nil inside free-form JSON.
	var cur any = root
	t := serviceType
	path := ""
	for i, seg := range segs {
		last := i == len(segs)-1
		var next reflect.Type
		if t != nil {
			t = deref(t)
			switch {
			case t == rawMessageType:
				t = nil
			case t.Kind() == reflect.Struct && !seg.isIndex:
				ft, known := jsonFields(t)[seg.key]
				if !known {
					return fail("%s", unknownField(joinKey(path, seg.key), seg.key, jsonFields(t)))
				}
				next = ft
			case t.Kind() == reflect.Slice && seg.isIndex:
				next = t.Elem()
			case t.Kind() == reflect.Struct:
				return fail("%s is an object, not an array", pathOr(path))
			case t.Kind() == reflect.Slice:
				return fail("%s is an array: index it like %s[0]", pathOr(path), pathOr(path))
			default:
				return fail("%s is a %s, it has no field %q", pathOr(path), t.Kind(), seg.key)
			}
		}
		if seg.isIndex {
			path = joinIndex(path, seg.index)
		} else {
			path = joinKey(path, seg.key)
		}

		var child any
		var set func(any)
		switch c := cur.(type) {
		case *object:
			if seg.isIndex {
				return fail("%s is an object, not an array", parentPath(path))
			}
			child, _ = c.get(seg.key)
			set = func(v any) { c.set(seg.key, v) }
		case []any:
			if !seg.isIndex {
				return fail("%s is an array: index it like %s[0]", parentPath(path), parentPath(path))
			}
			if seg.index > len(c) {
				return fail("index %d is out of range: %s has %d elements", seg.index, parentPath(path), len(c))
			}
			if seg.index == len(c) {
				c = append(c, nil)
				if err := setParent(root, segs[:i], c); err != nil {
					return fail("%v", err)
				}
			}
			child = c[seg.index]
			set = func(v any) { c[seg.index] = v }
		default:
			return fail("%s is %s, not a container", parentPath(path), kindOf(cur))
		}

		if last {
			v, err := overrideValue(next, value, t == nil)
			if err != nil {
				return fail("%v", err)
			}
			set(v)
			return nil
		}
		if child == nil { // create what is missing on the way
			if segs[i+1].isIndex {
				child = []any{}
			} else {
				child = newObject()
			}
			set(child)
		}
		cur = child
		t = next
	}
	return nil
}

// setParent stores arr at the location segs leads to (arrays grow by reallocation).
func setParent(root *object, segs []segment, arr []any) error {
	var cur any = root
	for i, seg := range segs {
		last := i == len(segs)-1
		switch c := cur.(type) {
		case *object:
			if last {
				c.set(seg.key, arr)
				return nil
			}
			cur, _ = c.get(seg.key)
		case []any:
			if last {
				c[seg.index] = arr
				return nil
			}
			cur = c[seg.index]
		}
	}
	return errors.New("internal error: array has no parent")
}

// overrideValue converts an override's text to the JSON value for a field of type t
// (nil inside free-form JSON, where the type is guessed).
func overrideValue(t reflect.Type, text string, freeForm bool) (any, error) {
	if freeForm || t == nil || deref(t) == rawMessageType {
		var ignored Errors
		if v, err := decodeTree([]byte(text), &ignored); err == nil {
			return v, nil
		}
		return text, nil
	}
	switch deref(t).Kind() {
	case reflect.String:
		return text, nil
	case reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return nil, fmt.Errorf("expected boolean (true or false), got %q", text)
		}
		return b, nil
	case reflect.Int, reflect.Int32, reflect.Int64:
		if _, err := strconv.ParseInt(text, 10, 64); err != nil {
			return nil, fmt.Errorf("expected integer, got %q", text)
		}
		return json.Number(text), nil
	default: // objects and arrays: JSON
		var ignored Errors
		v, err := decodeTree([]byte(text), &ignored)
		if err != nil {
			return nil, fmt.Errorf("expected JSON %s: %v", kindName(t), err)
		}
		return v, nil
	}
}

func kindName(t reflect.Type) string {
	if deref(t).Kind() == reflect.Slice {
		return "array"
	}
	return "object"
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// parseKey splits "plugins[0].config.model_info" into segments. A numeric dotted
// segment ("plugins.0") is an index too.
func parseKey(key string) ([]segment, error) {
	var segs []segment
	for part := range strings.SplitSeq(key, ".") {
		name, idx, hasIdx := strings.Cut(part, "[")
		if name == "" && (!hasIdx || len(segs) == 0) {
			return nil, errors.New("empty key segment")
		}
		if name != "" {
			if n, err := strconv.Atoi(name); err == nil && n >= 0 && len(segs) > 0 {
				segs = append(segs, segment{index: n, isIndex: true})
			} else {
				segs = append(segs, segment{key: name})
			}
		}
		for hasIdx {
			var num string
			var ok bool
			num, idx, ok = strings.Cut(idx, "]")
			n, err := strconv.Atoi(num)
			if !ok || err != nil || n < 0 {
				return nil, fmt.Errorf("bad index in %q: expected [N]", part)
			}
			segs = append(segs, segment{index: n, isIndex: true})
			if idx == "" {
				break
			}
			if idx[0] != '[' {
				return nil, fmt.Errorf("unexpected %q after index in %q", idx, part)
			}
			idx = idx[1:]
		}
	}
	return segs, nil
}

func pathOr(p string) string {
	if p == "" {
		return "the document"
	}
	return p
}

func parentPath(p string) string {
	if i := strings.LastIndexAny(p, ".["); i > 0 {
		return p[:i]
	}
	return "the document"
}

// MergePatch merges patch into base, both JSON objects, and returns the result: objects
// merge key by key, arrays and scalars replace, and null deletes the key (RFC 7386 JSON
// Merge Patch). `eascmd modify` uses it to change part of a service.json. Key order is
// kept; new keys go last. The result is not validated: Parse it.
func MergePatch(base, patch []byte) ([]byte, error) {
	var ignored Errors
	b, err := decodeTree(base, &ignored)
	if err != nil {
		return nil, fmt.Errorf("merge patch: base: %w", err)
	}
	p, err := decodeTree(patch, &ignored)
	if err != nil {
		return nil, fmt.Errorf("merge patch: patch: %w", err)
	}
	bo, ok := b.(*object)
	if !ok {
		return nil, fmt.Errorf("merge patch: base: expected a JSON object, got %s", kindOf(b))
	}
	po, ok := p.(*object)
	if !ok {
		return nil, fmt.Errorf("merge patch: patch: expected a JSON object, got %s", kindOf(p))
	}
	mergeObjects(bo, po)
	return encodeTree(bo)
}

func mergeObjects(base, patch *object) {
	for _, k := range patch.keys {
		pv := patch.vals[k]
		if pv == nil {
			base.del(k)
			continue
		}
		po, pIsObj := pv.(*object)
		bo, bIsObj := base.vals[k].(*object)
		if pIsObj && bIsObj {
			mergeObjects(bo, po)
			continue
		}
		if pIsObj { // a new object: drop nulls inside it as RFC 7386 does
			fresh := newObject()
			mergeObjects(fresh, po)
			pv = fresh
		}
		base.set(k, pv)
	}
}

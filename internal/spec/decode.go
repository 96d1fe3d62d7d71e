package spec

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// Parse decodes service.json strictly, applies defaults and validates. On failure the
// error is an Errors listing every problem with its JSON path (JSON that does not parse
// is one problem with an empty path). Type errors are reported before validation runs.
func Parse(data []byte) (*Service, error) {
	s, err := decode(data)
	if err != nil {
		return nil, err
	}
	s.ApplyDefaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// decode is Parse without defaults and validation.
func decode(data []byte) (*Service, error) {
	var errs Errors
	tree, err := decodeTree(data, &errs)
	if err != nil {
		return nil, Errors{{Msg: err.Error()}}
	}
	if _, ok := tree.(*object); !ok {
		return nil, Errors{{Msg: "expected a JSON object, got " + kindOf(tree)}}
	}
	norm := conform("", tree, serviceType, &errs)
	if len(errs) > 0 {
		return nil, errs
	}
	b, err := encodeTree(norm)
	if err != nil {
		return nil, err
	}
	// Absent (or null) metadata.instance keeps this value: json.Unmarshal leaves it alone.
	s := &Service{Metadata: Metadata{Instance: DefaultInstance}}
	if err := json.Unmarshal(b, s); err != nil {
		// conform has checked every value against the same types, so this is a bug.
		return nil, fmt.Errorf("spec: internal error: decode checked document: %w", err)
	}
	return s, nil
}

var (
	serviceType    = reflect.TypeFor[Service]()
	rawMessageType = reflect.TypeFor[json.RawMessage]()
)

// unsupportedEAS names EAS fields that OpenEAS knows but does not implement, so the user
// reads why instead of "unknown field".
var unsupportedEAS = map[string]string{
	"processor_path":      "custom processors are not supported; use a built-in processor",
	"processor_entry":     "custom processors are not supported; use a built-in processor",
	"processor_mainclass": "custom processors are not supported; use a built-in processor",
	"processor_type":      "custom processors are not supported; use a built-in processor",
	"containers":          "custom-image services are not supported; use a built-in processor",
	"baseimage":           "custom-image services are not supported; use a built-in processor",
	"dockerAuth":          "custom-image services are not supported; use a built-in processor",
	"autoscaler":          "autoscaling is not supported yet; set metadata.instance",
	"storage":             "mounted storage is not supported; use model_path",
	"cloud":               "cloud instance types are not supported; set metadata.cpu, memory and gpu",
}

// conform checks a tree value against the Go type it will decode into and returns it
// normalized (boolean strings become booleans). Problems are added to errs with their
// path; checking goes on so that every problem is reported.
func conform(path string, v any, t reflect.Type, errs *Errors) any {
	if t == rawMessageType || v == nil { // raw: not ours to check; null: treated as absent
		return v
	}
	switch t.Kind() {
	case reflect.Pointer:
		return conform(path, v, t.Elem(), errs)
	case reflect.Struct:
		obj, ok := v.(*object)
		if !ok {
			errs.add(path, "expected object, got %s", kindOf(v))
			return v
		}
		fields := jsonFields(t)
		out := newObject()
		for _, k := range obj.keys {
			kp := joinKey(path, k)
			ft, known := fields[k]
			if !known {
				errs.add(kp, "%s", unknownField(kp, k, fields))
				continue
			}
			out.set(k, conform(kp, obj.vals[k], ft, errs))
		}
		return out
	case reflect.Slice:
		arr, ok := v.([]any)
		if !ok {
			errs.add(path, "expected array, got %s", kindOf(v))
			return v
		}
		out := make([]any, len(arr))
		for i, e := range arr {
			out[i] = conform(joinIndex(path, i), e, t.Elem(), errs)
		}
		return out
	case reflect.String:
		if _, ok := v.(string); !ok {
			errs.add(path, "expected string, got %s", kindOf(v))
		}
		return v
	case reflect.Bool:
		switch b := v.(type) {
		case bool:
			return b
		case string: // EAS writes "generate_token": "true"
			if b == "true" || b == "false" {
				return b == "true"
			}
		}
		errs.add(path, "expected boolean (true or false), got %s", kindOf(v))
		return v
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			errs.add(path, "expected integer, got %s", kindOf(v))
			return v
		}
		i, err := toInt(n, t.Bits())
		if err != nil {
			errs.add(path, "%v", err)
			return v
		}
		return json.Number(strconv.FormatInt(i, 10))
	}
	errs.add(path, "spec: internal error: no check for Go type %s", t)
	return v
}

// toInt accepts integral numbers, also when written 1e3 or 4.0.
func toInt(n json.Number, bits int) (int64, error) {
	i, err := strconv.ParseInt(n.String(), 10, bits)
	if err == nil {
		return i, nil
	}
	f, ferr := strconv.ParseFloat(n.String(), 64)
	if ferr != nil || f != math.Trunc(f) {
		return 0, fmt.Errorf("expected integer, got number %s", n)
	}
	limit := math.Ldexp(1, bits-1)
	if f >= limit || f < -limit {
		return 0, fmt.Errorf("number %s is out of range", n)
	}
	return int64(f), nil
}

// jsonFields maps the JSON names of a struct's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

func unknownField(path, key string, fields map[string]reflect.Type) string {
	if why, ok := unsupportedEAS[path]; ok {
		return "not supported by OpenEAS: " + why
	}
	best, bestDist := "", 3 // suggest only near misses
	for name := range fields {
		d := editDistance(strings.ToLower(key), name)
		if d < bestDist || (d == bestDist && name < best) {
			best, bestDist = name, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown field; did you mean %q?", best)
	}
	return "unknown field"
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

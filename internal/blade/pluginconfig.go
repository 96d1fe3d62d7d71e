package blade

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// PluginRequest is what plugin mode takes from EAS_PLUGIN_CONFIG: the model file to optimize
// (a name inside the input directory) and the options from config.model_info.<file>.
type PluginRequest struct {
	ModelFile string
	// Options carries Level, TestData, CalibrationDataset (as paths relative to the input
	// directory), Inputs, Outputs, InputShapes, InputRanges, WeightAdjustment and Accuracy.
	Options Options
	// Processor is the service's processor name, informational.
	Processor string
}

// ParsePluginConfig decodes the plugin config file ({"config": <plugin config>, "processor":
// …, "metadata": …}) strictly: unknown keys and wrong JSON types inside "config" are errors
// naming the key path. files lists the input directory's regular files (slash-separated
// relative paths); model_info must name one of them, and without model_info the single .onnx
// file is optimized with defaults.
func ParsePluginConfig(data []byte, files []string) (*PluginRequest, error) {
	req := &PluginRequest{}
	var root any
	if len(bytes.TrimSpace(data)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&root); err != nil {
			return nil, fmt.Errorf("plugin config: not valid JSON: %w", err)
		}
		if dec.More() {
			return nil, fmt.Errorf("plugin config: trailing data after the JSON object")
		}
	}
	var modelInfo map[string]any
	if root != nil {
		top, ok := root.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("plugin config: expected a JSON object, found %s", jsonKind(root))
		}
		// The wrapper belongs to the platform, which may add fields: only "config" is strict.
		if p, ok := top["processor"]; ok && p != nil {
			s, ok := p.(string)
			if !ok {
				return nil, fmt.Errorf("processor: expected a string, found %s", jsonKind(p))
			}
			req.Processor = s
		}
		if c, ok := top["config"]; ok && c != nil {
			cfg, ok := c.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("config: expected an object, found %s", jsonKind(c))
			}
			for _, k := range sortedKeys(cfg) {
				if k != "model_info" {
					return nil, fmt.Errorf("config.%s: unknown key (blade's config has only model_info)", k)
				}
			}
			if mi, ok := cfg["model_info"]; ok && mi != nil {
				modelInfo, ok = mi.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("config.model_info: expected an object keyed by model file name, found %s", jsonKind(mi))
				}
			}
		}
	}

	switch len(modelInfo) {
	case 0:
		var onnxFiles []string
		for _, f := range files {
			if strings.HasSuffix(strings.ToLower(f), ".onnx") {
				onnxFiles = append(onnxFiles, f)
			}
		}
		if len(onnxFiles) != 1 {
			return nil, fmt.Errorf("plugin config: no config.model_info and the input has %d .onnx files (%s): name the model in config.model_info",
				len(onnxFiles), strings.Join(onnxFiles, ", "))
		}
		req.ModelFile = onnxFiles[0]
		req.Options.Level = LevelO1
		return req, nil
	case 1:
	default:
		return nil, fmt.Errorf("config.model_info: configures %d models (%s); blade optimizes one model per plugin run",
			len(modelInfo), strings.Join(sortedKeys(modelInfo), ", "))
	}
	name := sortedKeys(modelInfo)[0]
	path := fmt.Sprintf("config.model_info[%s]", strconv.Quote(name))
	if !slices.Contains(files, name) {
		return nil, fmt.Errorf("%s: no such file in the model directory; it holds: %s", path, strings.Join(files, ", "))
	}
	req.ModelFile = name
	opts, err := decodeModelOptions(path, modelInfo[name], files)
	if err != nil {
		return nil, err
	}
	req.Options = opts
	return req, nil
}

func decodeModelOptions(path string, v any, files []string) (Options, error) {
	var o Options
	m, ok := v.(map[string]any)
	if !ok {
		return o, fmt.Errorf("%s: expected an object of optimization options, found %s", path, jsonKind(v))
	}
	o.Level = LevelO1
	for _, k := range sortedKeys(m) {
		kp := path + "." + k
		val := m[k]
		var err error
		switch k {
		case "optimization_level":
			var s string
			if s, err = jsonString(kp, val); err == nil {
				s = strings.ToLower(s)
				if s != LevelO1 && s != LevelO2 {
					err = fmt.Errorf("%s: expected \"o1\" or \"o2\", found %q", kp, s)
				}
				o.Level = s
			}
		case "test_data", "calibration_dataset":
			var s string
			if s, err = jsonString(kp, val); err == nil {
				if !slices.Contains(files, s) {
					err = fmt.Errorf("%s: %q is not a file in the model directory; it holds: %s", kp, s, strings.Join(files, ", "))
				}
				if k == "test_data" {
					o.TestData = s
				} else {
					o.CalibrationDataset = s
				}
			}
		case "inputs":
			o.Inputs, err = jsonStrings(kp, val)
		case "outputs":
			o.Outputs, err = jsonStrings(kp, val)
		case "input_shapes":
			o.InputShapes, err = jsonStringSets(kp, val, `a string like "1*512"`, func(s string) error { _, e := ParseShape(s); return e })
		case "input_ranges":
			o.InputRanges, err = jsonStringSets(kp, val, `a string like "[1.0,2.0]"`, func(s string) error { _, e := ParseRange(s); return e })
		case "quantization":
			o.WeightAdjustment, err = decodeQuantization(kp, val)
		case "accuracy":
			o.Accuracy, err = decodeAccuracy(kp, val)
		default:
			err = fmt.Errorf("%s: unknown key (known: accuracy, calibration_dataset, input_ranges, input_shapes, inputs, optimization_level, outputs, quantization, test_data)", kp)
		}
		if err != nil {
			return o, err
		}
	}
	if err := checkSetWidths(path, "input_shapes", o.InputShapes, len(o.Inputs)); err != nil {
		return o, err
	}
	if err := checkSetWidths(path, "input_ranges", o.InputRanges, len(o.Inputs)); err != nil {
		return o, err
	}
	return o, nil
}

// checkSetWidths checks that every set has one entry per input. The model's own input count is
// checked later (in Optimize) when inputs are not listed here.
func checkSetWidths(path, key string, sets [][]string, nInputs int) error {
	want := nInputs
	for i, set := range sets {
		if want == 0 {
			want = len(set)
		}
		if len(set) != want {
			return fmt.Errorf("%s.%s[%d]: has %d entries, expected %d (one per input)", path, key, i, len(set), want)
		}
	}
	return nil
}

func decodeQuantization(path string, v any) (string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", fmt.Errorf("%s: expected an object like {\"weight_adjustment\": true}, found %s", path, jsonKind(v))
	}
	wa := ""
	for _, k := range sortedKeys(m) {
		kp := path + "." + k
		if k != "weight_adjustment" {
			return "", fmt.Errorf("%s: unknown key (quantization has only weight_adjustment)", kp)
		}
		switch x := m[k].(type) {
		case bool:
			wa = strconv.FormatBool(x)
		case string:
			s := strings.ToLower(x)
			if s != "true" && s != "false" && s != "auto" {
				return "", fmt.Errorf("%s: expected true, false, \"true\", \"false\" or \"auto\", found %q", kp, x)
			}
			wa = s
		default:
			return "", fmt.Errorf("%s: expected true, false, \"true\", \"false\" or \"auto\", found %s", kp, jsonKind(m[k]))
		}
	}
	return wa, nil
}

func decodeAccuracy(path string, v any) (AccuracyBudget, error) {
	var b AccuracyBudget
	m, ok := v.(map[string]any)
	if !ok {
		return b, fmt.Errorf("%s: expected an object like {\"min_cosine\": 0.99}, found %s", path, jsonKind(v))
	}
	for _, k := range sortedKeys(m) {
		kp := path + "." + k
		var dst *float64
		lo, hi := 0.0, 1.0
		switch k {
		case "max_relative_error":
			dst, hi = &b.MaxRelativeError, 1e9
		case "min_cosine":
			dst = &b.MinCosine
		case "min_top1_agreement":
			dst = &b.MinTop1Agreement
		default:
			return b, fmt.Errorf("%s: unknown key (known: max_relative_error, min_cosine, min_top1_agreement)", kp)
		}
		n, ok := m[k].(json.Number)
		if !ok {
			return b, fmt.Errorf("%s: expected a number, found %s", kp, jsonKind(m[k]))
		}
		f, err := n.Float64()
		if err != nil || f < lo || f > hi {
			return b, fmt.Errorf("%s: expected a number in [%g,%g], found %s", kp, lo, hi, n)
		}
		*dst = f
	}
	return b, nil
}

func jsonString(path string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: expected a string, found %s", path, jsonKind(v))
	}
	return s, nil
}

func jsonStrings(path string, v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: expected a list of strings, found %s", path, jsonKind(v))
	}
	out := make([]string, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%s[%d]: expected a string, found %s", path, i, jsonKind(e))
		}
		out[i] = s
	}
	return out, nil
}

// jsonStringSets decodes a list of lists of strings, checking each string with check.
func jsonStringSets(path string, v any, want string, check func(string) error) ([][]string, error) {
	outer, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: expected a list of lists of strings, found %s", path, jsonKind(v))
	}
	out := make([][]string, len(outer))
	for i, e := range outer {
		inner, ok := e.([]any)
		if !ok {
			return nil, fmt.Errorf("%s[%d]: expected a list with one string per input, found %s", path, i, jsonKind(e))
		}
		set := make([]string, len(inner))
		for j, x := range inner {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("%s[%d][%d]: expected %s, found %s", path, i, j, want, jsonKind(x))
			}
			if err := check(s); err != nil {
				return nil, fmt.Errorf("%s[%d][%d]: expected %s, found %q", path, i, j, want, s)
			}
			set[j] = s
		}
		out[i] = set
	}
	return out, nil
}

func jsonKind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "the number " + x.String()
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

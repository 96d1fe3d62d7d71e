package spec

import (
	"strings"
	"testing"
)

const overrideBase = `{"name":"svc","model_path":"/m","processor":"onnx","metadata":{"instance":1,"cuda":"10.0"},` +
	`"plugins":[{"command":"blade --mode eas_plugin --optimize_for cpu","image":"img"}]}`

func TestApplyOverrides(t *testing.T) {
	tests := []struct {
		name      string
		overrides []string
		want      string // the resulting document, exactly
	}{
		{"integer", []string{"metadata.instance=3"},
			`{"name":"svc","model_path":"/m","processor":"onnx","metadata":{"instance":3,"cuda":"10.0"},"plugins":[{"command":"blade --mode eas_plugin --optimize_for cpu","image":"img"}]}`},
		{"-D prefix and a string field that looks like a number", []string{"-Dmetadata.cuda=11.8"},
			`{"name":"svc","model_path":"/m","processor":"onnx","metadata":{"instance":1,"cuda":"11.8"},"plugins":[{"command":"blade --mode eas_plugin --optimize_for cpu","image":"img"}]}`},
		{"new nested object and boolean", []string{"metadata.rpc.batching=true", "metadata.rpc.keepalive=20000"},
			`{"name":"svc","model_path":"/m","processor":"onnx","metadata":{"instance":1,"cuda":"10.0","rpc":{"batching":true,"keepalive":20000}},"plugins":[{"command":"blade --mode eas_plugin --optimize_for cpu","image":"img"}]}`},
		{"value with = and spaces", []string{"model_config=a=b c"},
			`{"name":"svc","model_path":"/m","processor":"onnx","metadata":{"instance":1,"cuda":"10.0"},"plugins":[{"command":"blade --mode eas_plugin --optimize_for cpu","image":"img"}],"model_config":"a=b c"}`},
		{"array element field", []string{"plugins[0].gpu=1"},
			`{"name":"svc","model_path":"/m","processor":"onnx","metadata":{"instance":1,"cuda":"10.0"},"plugins":[{"command":"blade --mode eas_plugin --optimize_for cpu","image":"img","gpu":1}]}`},
		{"dotted index and append", []string{"plugins.1.command=run", "plugins[1].image=local:///bin/p"},
			`{"name":"svc","model_path":"/m","processor":"onnx","metadata":{"instance":1,"cuda":"10.0"},"plugins":[{"command":"blade --mode eas_plugin --optimize_for cpu","image":"img"},{"command":"run","image":"local:///bin/p"}]}`},
		{"free-form plugin config guesses types", []string{
			"plugins[0].config.model_info.m.optimization_level=o2",
			"plugins[0].config.model_info.m.quantization.weight_adjustment=true",
			`plugins[0].config.model_info.m.input_shapes=[["1*512"]]`},
			`{"name":"svc","model_path":"/m","processor":"onnx","metadata":{"instance":1,"cuda":"10.0"},"plugins":[{"command":"blade --mode eas_plugin --optimize_for cpu","image":"img","config":{"model_info":{"m":{"optimization_level":"o2","quantization":{"weight_adjustment":true},"input_shapes":[["1*512"]]}}}}]}`},
		{"whole object as JSON", []string{`metadata={"instance":2}`},
			`{"name":"svc","model_path":"/m","processor":"onnx","metadata":{"instance":2},"plugins":[{"command":"blade --mode eas_plugin --optimize_for cpu","image":"img"}]}`},
		{"no overrides", nil,
			`{"name":"svc","model_path":"/m","processor":"onnx","metadata":{"instance":1,"cuda":"10.0"},"plugins":[{"command":"blade --mode eas_plugin --optimize_for cpu","image":"img"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ApplyOverrides([]byte(overrideBase), tt.overrides)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("\n got %s\nwant %s", got, tt.want)
			}
			if _, err := Parse(got); err != nil {
				t.Errorf("result does not parse: %v", err)
			}
		})
	}
}

func TestApplyOverridesErrors(t *testing.T) {
	tests := []struct {
		override, want string
	}{
		{"metadata.instance", `override "metadata.instance": expected key=value`},
		{"=3", `override "=3": expected key=value`},
		{"metadata.instance=abc", `override metadata.instance: expected integer, got "abc"`},
		{"metadata.rpc.batching=yes", `override metadata.rpc.batching: expected boolean (true or false), got "yes"`},
		{"metadata.instanse=3", `override metadata.instanse: unknown field; did you mean "instance"?`},
		{"nosuch=1", `override nosuch: unknown field`},
		{"plugins[5].gpu=1", `override plugins[5].gpu: index 5 is out of range: plugins has 1 elements`},
		{"plugins.gpu=1", `override plugins.gpu: plugins is an array: index it like plugins[0]`},
		{"metadata[0]=1", `override metadata[0]: metadata is an object, not an array`},
		{"name.first=x", `override name.first: name is a string, it has no field "first"`},
		{"plugins[x].gpu=1", `override plugins[x].gpu: bad index in "plugins[x]": expected [N]`},
		{"metadata..instance=1", `override metadata..instance: empty key segment`},
		{"metadata={", `override metadata: expected JSON object: invalid JSON: unexpected end of input`},
	}
	for _, tt := range tests {
		t.Run(tt.override, func(t *testing.T) {
			_, err := ApplyOverrides([]byte(overrideBase), []string{tt.override})
			if err == nil || err.Error() != tt.want {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := ApplyOverrides([]byte(`[1]`), []string{"a=1"}); err == nil || !strings.Contains(err.Error(), "expected a JSON object") {
		t.Errorf("array document: %v", err)
	}
}

func TestMergePatch(t *testing.T) {
	tests := []struct {
		name, base, patch, want string
	}{
		{"objects merge key by key",
			`{"name":"a","metadata":{"instance":1,"memory":4000,"rpc":{"keepalive":5000}}}`,
			`{"metadata":{"instance":3,"rpc":{"worker_threads":8}}}`,
			`{"name":"a","metadata":{"instance":3,"memory":4000,"rpc":{"keepalive":5000,"worker_threads":8}}}`},
		{"arrays replace",
			`{"plugins":[{"command":"a","image":"i"},{"command":"b","image":"j"}]}`,
			`{"plugins":[{"command":"c"}]}`,
			`{"plugins":[{"command":"c"}]}`},
		{"scalars replace, even with another type",
			`{"processor":"onnx","metadata":{"instance":1}}`,
			`{"processor":"pytorch","metadata":5}`,
			`{"processor":"pytorch","metadata":5}`},
		{"null deletes",
			`{"token":"t","metadata":{"instance":1,"gpu":1}}`,
			`{"token":null,"metadata":{"gpu":null}}`,
			`{"metadata":{"instance":1}}`},
		{"new keys go last, nulls inside new objects vanish",
			`{"name":"a"}`,
			`{"metadata":{"instance":2,"gpu":null}}`,
			`{"name":"a","metadata":{"instance":2}}`},
		{"object replaces scalar",
			`{"metadata":null}`,
			`{"metadata":{"instance":2}}`,
			`{"metadata":{"instance":2}}`},
		{"empty patch", `{"name":"a"}`, `{}`, `{"name":"a"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MergePatch([]byte(tt.base), []byte(tt.patch))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("\n got %s\nwant %s", got, tt.want)
			}
		})
	}
	for _, bad := range []struct{ base, patch, want string }{
		{`[]`, `{}`, "merge patch: base: expected a JSON object, got array"},
		{`{}`, `"x"`, `merge patch: patch: expected a JSON object, got string "x"`},
		{`{}`, `{`, "merge patch: patch: invalid JSON: unexpected end of input"},
	} {
		_, err := MergePatch([]byte(bad.base), []byte(bad.patch))
		if err == nil || err.Error() != bad.want {
			t.Errorf("MergePatch(%s, %s) = %v, want %q", bad.base, bad.patch, err, bad.want)
		}
	}
}

func TestMarshalKeepsHTMLCharacters(t *testing.T) {
	s, err := Parse([]byte(`{"name":"a","model_path":"https://h/m?a=1&b=<2>","processor":"onnx"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"https://h/m?a=1&b=<2>"`) {
		t.Errorf("Marshal escaped the URL: %s", b)
	}
}

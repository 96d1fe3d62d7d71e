package plugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"blade --mode eas_plugin --optimize_for cpu", []string{"blade", "--mode", "eas_plugin", "--optimize_for", "cpu"}, ""},
		{"  a\t b  \n c ", []string{"a", "b", "c"}, ""},
		{`p --name 'two words' "and \"three\" \$x \n"`, []string{"p", "--name", "two words", `and "three" $x \n`}, ""},
		{`p 'it''s' a\ b \'q\'`, []string{"p", "its", "a b", "'q'"}, ""},
		{`p "" ''`, []string{"p", "", ""}, ""},
		{`p x"y"'z'`, []string{"p", "xyz"}, ""},
		{"p a\\\nb", []string{"p", "ab"}, ""},
		{`p '$HOME' "$HOME"`, []string{"p", "$HOME", "$HOME"}, ""},
		{`p 中文 "ü"`, []string{"p", "中文", "ü"}, ""},
		{`p 'open`, nil, "unterminated single quote at column 3"},
		{`p "open`, nil, "unterminated double quote"},
		{`p x\`, nil, "ends with a backslash"},
		{"   ", nil, "command is empty"},
	}
	for _, tc := range tests {
		got, err := Split(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Split(%q) err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Split(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	blade := filepath.Join(dir, "blade")
	exe := filepath.Join(dir, "my-plugin")
	noexec := filepath.Join(dir, "data.txt")
	for p, mode := range map[string]os.FileMode{blade: 0o755, exe: 0o755, noexec: 0o644} {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	with := Resolver{BladeBinary: blade}
	without := Resolver{}
	tests := []struct {
		r       Resolver
		image   string
		want    string
		wantErr string
	}{
		{with, "registry.cn-shanghai.aliyuncs.com/eas/pai-blade-deploy:cpu_latest", blade, ""},
		{with, "registry-vpc.cn-hangzhou.aliyuncs.com/eas/pai-blade-deploy:gpu_latest", blade, ""},
		{with, "registry.ap-southeast-1.aliyuncs.com:443/eas/pai-blade-deploy:cpu_latest", blade, ""},
		{with, "eas/pai-blade-deploy:gpu_latest", blade, ""},
		{without, "registry.cn-beijing.aliyuncs.com/eas/pai-blade-deploy:cpu_latest", "", "blade is not installed: build it with make build"},
		{Resolver{BladeBinary: filepath.Join(dir, "missing")}, "eas/pai-blade-deploy:cpu_latest", "", "blade is not installed"},
		{with, "local://" + exe, exe, ""},
		{with, "local://" + filepath.Join(dir, "missing"), "", "does not exist"},
		{with, "local://" + noexec, "", "is not executable"},
		{with, "local://" + dir, "", "is not a regular file"},
		{with, "local://relative/p", "", "want local:///absolute/path"},
		{with, "registry.cn-shanghai.aliyuncs.com/eas/pai-blade-deploy:v1.2", "", `cannot run on the local backend: only the Blade images and local:///path are supported`},
		{with, "docker.io/library/python:3.11", "", `image "docker.io/library/python:3.11" cannot run on the local backend`},
		{with, "registry.cn-shanghai.aliyuncs.com/evil/pai-blade-deploy:cpu_latest", "", "cannot run on the local backend"},
	}
	for _, tc := range tests {
		got, err := tc.r.Resolve(tc.image)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Resolve(%q) err = %v, want %q", tc.image, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tc.image, got, err, tc.want)
		}
	}
}

func TestDeviceOf(t *testing.T) {
	for cmd, want := range map[string]string{
		"blade --mode eas_plugin --optimize_for cpu": "cpu",
		"blade --mode eas_plugin --optimize_for gpu": "gpu",
		"blade --optimize_for=GPU":                   "gpu",
		"blade --mode eas_plugin":                    "cpu",
		"blade --optimize_for":                       "cpu",
		"blade 'unterminated":                        "cpu",
	} {
		if got := DeviceOf(cmd); got != want {
			t.Errorf("DeviceOf(%q) = %q, want %q", cmd, got, want)
		}
	}
}

func TestKey(t *testing.T) {
	const digest = "sha256:aaaa"
	base := Spec{Image: "eas/pai-blade-deploy:cpu_latest", Command: "blade --mode eas_plugin --optimize_for cpu",
		Config: json.RawMessage(`{"model_info": {"m.onnx": {"optimization_level": "o1"}}}`), Device: "cpu"}
	proc := []byte(`"onnxruntime_cpu"`)
	meta := []byte(`{"instance": 1, "cpu": 4}`)
	k0 := Key(digest, base, proc, meta, "v1")
	if !strings.HasPrefix(k0, "sha256:") || len(k0) != 7+64 {
		t.Fatalf("key format %q", k0)
	}
	if id := ID(k0); id != "eas-plugin-"+k0[7:15] {
		t.Errorf("ID = %q", id)
	}

	same := map[string]string{
		"reformatted config": Key(digest, Spec{Image: base.Image, Command: base.Command, Device: "cpu",
			Config: json.RawMessage(" {\"model_info\":{\"m.onnx\":{\"optimization_level\":\"o1\"}}}\n")}, proc, meta, "v1"),
		"metadata key order":    Key(digest, base, proc, []byte(`{"cpu":4,"instance":1}`), "v1"),
		"scaled (instance)":     Key(digest, base, proc, []byte(`{"cpu": 4, "instance": 10}`), "v1"),
		"index does not matter": Key(digest, Spec{Index: 3, Image: base.Image, Command: base.Command, Config: base.Config, Device: "cpu"}, proc, meta, "v1"),
		"empty device is cpu":   Key(digest, Spec{Image: base.Image, Command: base.Command, Config: base.Config}, proc, meta, "v1"),
	}
	for name, k := range same {
		if k != k0 {
			t.Errorf("%s: key changed", name)
		}
	}
	changed := func(f func(s *Spec) (string, []byte, []byte, string)) string {
		s := base
		d, p, m, v := f(&s)
		return Key(d, s, p, m, v)
	}
	diff := map[string]string{
		"model":   changed(func(s *Spec) (string, []byte, []byte, string) { return "sha256:bbbb", proc, meta, "v1" }),
		"image":   changed(func(s *Spec) (string, []byte, []byte, string) { s.Image = "x"; return digest, proc, meta, "v1" }),
		"command": changed(func(s *Spec) (string, []byte, []byte, string) { s.Command += " "; return digest, proc, meta, "v1" }),
		"config": changed(func(s *Spec) (string, []byte, []byte, string) {
			s.Config = json.RawMessage(`{"model_info": {"m.onnx": {"optimization_level": "o2"}}}`)
			return digest, proc, meta, "v1"
		}),
		"device":    changed(func(s *Spec) (string, []byte, []byte, string) { s.Device = "gpu"; return digest, proc, meta, "v1" }),
		"processor": changed(func(s *Spec) (string, []byte, []byte, string) { return digest, []byte(`"onnxruntime_gpu"`), meta, "v1" }),
		"metadata": changed(func(s *Spec) (string, []byte, []byte, string) {
			return digest, proc, []byte(`{"instance":1,"cpu":8}`), "v1"
		}),
		"version": changed(func(s *Spec) (string, []byte, []byte, string) { return digest, proc, meta, "v2" }),
		// Field boundaries are length-prefixed: moving text between fields changes the key.
		"boundary": Key(digest, Spec{Image: base.Image + "b", Command: "lade --mode eas_plugin --optimize_for cpu", Config: base.Config}, proc, meta, "v1"),
	}
	seen := map[string]string{k0: "base"}
	for name, k := range diff {
		if prev, dup := seen[k]; dup {
			t.Errorf("%s: key equals %s", name, prev)
		}
		seen[k] = name
	}
}

func TestWriteConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.json")
	if err := WriteConfig(p, json.RawMessage(`{"a":1}`), "onnxruntime_cpu", json.RawMessage(`{"instance":2}`)); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	b, _ := os.ReadFile(p)
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"config": map[string]any{"a": 1.0}, "processor": "onnxruntime_cpu", "metadata": map[string]any{"instance": 2.0}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config file = %v, want %v", got, want)
	}
	if err := WriteConfig(p, nil, "onnxruntime_cpu", json.RawMessage("null")); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(p)
	if !strings.Contains(string(b), `"config": {}`) || !strings.Contains(string(b), `"metadata": {}`) {
		t.Errorf("absent config/metadata not written as {}: %s", b)
	}
	if err := WriteConfig(p, json.RawMessage(`[1]`), "x", nil); err == nil || !strings.Contains(err.Error(), "plugin config: want a JSON object") {
		t.Errorf("array config: %v", err)
	}
	if err := WriteConfig(p, nil, "x", json.RawMessage(`{bad`)); err == nil || !strings.Contains(err.Error(), "plugin metadata") {
		t.Errorf("bad metadata: %v", err)
	}
}

func TestReadRuntimeAndOutputEntry(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := ReadRuntime(dir); ok || err != nil {
		t.Errorf("no runtime.json: ok=%v err=%v", ok, err)
	}
	os.WriteFile(filepath.Join(dir, RuntimeFile), []byte(`{"intra_op_threads": 3, "execution_mode": "sequential"}`), 0o644)
	rt, ok, err := ReadRuntime(dir)
	if !ok || err != nil || rt.IntraOpThreads != 3 || rt.ExecutionMode != "sequential" {
		t.Errorf("ReadRuntime = %+v %v %v", rt, ok, err)
	}
	os.WriteFile(filepath.Join(dir, RuntimeFile), []byte(`{"intra_op_thread": 3}`), 0o644)
	if _, _, err := ReadRuntime(dir); err == nil || !strings.Contains(err.Error(), "intra_op_thread") {
		t.Errorf("typo in runtime.json: %v", err)
	}

	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "opt.onnx"), []byte("x"), 0o644)
	if e, err := OutputEntry(dir, "m.onnx"); err != nil || e != "sub/opt.onnx" {
		t.Errorf("renamed output entry = %q, %v", e, err)
	}
	os.WriteFile(filepath.Join(dir, "m.onnx"), []byte("x"), 0o644)
	if e, err := OutputEntry(dir, "m.onnx"); err != nil || e != "m.onnx" {
		t.Errorf("same-name output entry = %q, %v", e, err)
	}
	if _, err := OutputEntry(dir, "other.onnx"); err == nil || !strings.Contains(err.Error(), "several model files") {
		t.Errorf("ambiguous output: %v", err)
	}
}

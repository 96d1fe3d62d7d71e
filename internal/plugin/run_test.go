package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/plugin/plugintest"
)

// scalePlugin is the test plugin binary, built once by TestMain.
var scalePlugin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "scale-plugin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	scalePlugin, err = plugintest.Build(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// setup makes a model input dir and a config file with the given plugin config.
func setup(t *testing.T, config string) RunOptions {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "input")
	t.Cleanup(func() { modelsource.RemoveAll(in) }) // Run makes it read-only
	if err := os.MkdirAll(filepath.Join(in, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(in, "m.onnx"), []byte("model-bytes"), 0o644)
	os.WriteFile(filepath.Join(in, "sub", "vocab.txt"), []byte("a b"), 0o644)
	cfg := filepath.Join(dir, "config.json")
	if err := WriteConfig(cfg, json.RawMessage(config), "onnxruntime_cpu", json.RawMessage(`{"instance":1}`)); err != nil {
		t.Fatal(err)
	}
	args, err := Split(`scale --mode eas_plugin --note "two words"`)
	if err != nil {
		t.Fatal(err)
	}
	return RunOptions{
		Exe: scalePlugin, Args: args,
		InputDir: in, OutputDir: filepath.Join(dir, "output"),
		ConfigFile: cfg, ReportFile: filepath.Join(dir, "report.json"),
		Timeout: 2 * time.Minute,
		Logger:  slog.New(slog.DiscardHandler),
	}
}

type applied struct {
	InputDigest string            `json:"input_digest"`
	Env         map[string]string `json:"env"`
	Environ     []string          `json:"environ"`
	Args        []string          `json:"args"`
	Config      struct {
		Processor string          `json:"processor"`
		Metadata  json.RawMessage `json:"metadata"`
	} `json:"config"`
}

func TestRunSuccess(t *testing.T) {
	o := setup(t, `{"intra_op_threads": 3}`)
	o.Device = "gpu"
	o.Env = []string{"OPENEAS_ORT_LIB=/opt/ort.so", "EAS_PLUGIN_INPUT=/not/this"}
	t.Setenv("OPENEAS_TEST_SECRET", "hunter2") // in our environment, must not reach the plugin
	wantDigest, err := modelsource.TreeDigest(o.InputDir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}

	var a applied
	b, err := os.ReadFile(filepath.Join(o.OutputDir, "plugin-applied.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	if a.InputDigest != wantDigest {
		t.Errorf("plugin saw input %s, want %s", a.InputDigest, wantDigest)
	}
	wantEnv := map[string]string{
		EnvInput: o.InputDir, EnvOutput: o.OutputDir, EnvConfig: o.ConfigFile, EnvReport: o.ReportFile, EnvDevice: "gpu",
	}
	if !reflect.DeepEqual(a.Env, wantEnv) {
		t.Errorf("plugin env = %v\nwant %v", a.Env, wantEnv)
	}
	environ := strings.Join(a.Environ, "\n")
	if !strings.Contains(environ, "OPENEAS_ORT_LIB=/opt/ort.so") || !strings.Contains(environ, "PATH=") {
		t.Errorf("plugin environment lacks the given Env or PATH: %v", a.Environ)
	}
	if strings.Contains(environ, "hunter2") {
		t.Error("the caller's own environment leaked into the plugin")
	}
	if want := []string{"--mode", "eas_plugin", "--note", "two words"}; !reflect.DeepEqual(a.Args, want) {
		t.Errorf("plugin args = %q, want %q", a.Args, want)
	}
	var meta map[string]int
	if err := json.Unmarshal(a.Config.Metadata, &meta); err != nil || a.Config.Processor != "onnxruntime_cpu" || meta["instance"] != 1 {
		t.Errorf("plugin config file = %+v", a.Config)
	}

	// The model was copied and runtime.json written, as the config asked.
	if b, _ := os.ReadFile(filepath.Join(o.OutputDir, "sub", "vocab.txt")); string(b) != "a b" {
		t.Errorf("output model not copied: %q", b)
	}
	rt, ok, err := ReadRuntime(o.OutputDir)
	if !ok || err != nil || rt.IntraOpThreads != 3 {
		t.Errorf("runtime.json = %+v, %v, %v", rt, ok, err)
	}
	var report map[string]any
	if err := json.Unmarshal(res.Report, &report); err != nil || report["input_digest"] != wantDigest {
		t.Errorf("report = %s (%v)", res.Report, err)
	}
	if res.Duration <= 0 {
		t.Errorf("duration %v", res.Duration)
	}
	// The input was made read-only before the plugin ran.
	info, _ := os.Stat(filepath.Join(o.InputDir, "m.onnx"))
	if info.Mode().Perm()&0o222 != 0 {
		t.Errorf("input file still writable: %v", info.Mode())
	}
}

func TestRunFailures(t *testing.T) {
	tests := []struct {
		name     string
		config   string
		edit     func(o *RunOptions)
		want     []string
		tail0    string
		errIsCtx error
	}{
		{name: "non-zero exit", config: `{"fail": "model has unsupported op FooBar"}`,
			want:  []string{"plugin scale-plugin exited with status 3", "last stderr lines:", "progress 30\n  model has unsupported op FooBar"},
			tail0: "progress 12"},
		{name: "empty output", config: `{"empty": true}`, want: []string{"exited with status 0 but wrote no files to EAS_PLUGIN_OUTPUT"}},
		{name: "bad report", config: `{"bad_report": true}`, want: []string{"wrote a report that is not valid JSON"}},
		{name: "plugin error", config: `{"sleep": "bogus"}`, want: []string{"exited with status 1", `scale-plugin: time: invalid duration "bogus"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := setup(t, tc.config)
			if tc.edit != nil {
				tc.edit(&o)
			}
			_, err := Run(context.Background(), o)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
			var re *RunError
			if !errors.As(err, &re) {
				t.Fatalf("err is %T, want *RunError", err)
			}
			if tc.tail0 != "" {
				if len(re.StderrTail) != TailLines || re.StderrTail[0] != tc.tail0 {
					t.Errorf("tail = %q, want %d lines from %q", re.StderrTail, TailLines, tc.tail0)
				}
			}
		})
	}
}

func TestRunBadOptions(t *testing.T) {
	tests := []struct {
		name string
		edit func(t *testing.T, o *RunOptions)
		want string
	}{
		{"relative exe", func(t *testing.T, o *RunOptions) { o.Exe = "scale-plugin" }, "is not an absolute path"},
		{"missing exe", func(t *testing.T, o *RunOptions) { o.Exe = "/nonexistent/plugin" }, "does not exist"},
		{"no args", func(t *testing.T, o *RunOptions) { o.Args = nil }, "no command"},
		{"bad device", func(t *testing.T, o *RunOptions) { o.Device = "tpu" }, `device "tpu": want cpu or gpu`},
		{"missing input", func(t *testing.T, o *RunOptions) { o.InputDir = filepath.Join(t.TempDir(), "x") }, "is not a directory"},
		{"missing config", func(t *testing.T, o *RunOptions) { o.ConfigFile = filepath.Join(t.TempDir(), "x") }, "config file"},
		{"output not empty", func(t *testing.T, o *RunOptions) {
			os.MkdirAll(o.OutputDir, 0o755)
			os.WriteFile(filepath.Join(o.OutputDir, "old"), nil, 0o644)
		}, "must be empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := setup(t, `{}`)
			tc.edit(t, &o)
			_, err := Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRunKillsProcessGroup checks that a timeout and a cancellation kill the plugin and the
// child process it started.
func TestRunKillsProcessGroup(t *testing.T) {
	for _, mode := range []string{"timeout", "cancel"} {
		t.Run(mode, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pids")
			o := setup(t, fmt.Sprintf(`{"sleep": "10m", "pid_file": %q}`, pidFile))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if mode == "timeout" {
				o.Timeout = time.Second
			} else {
				o.Timeout = 0
				go func() {
					waitFor(t, func() bool { b, _ := os.ReadFile(pidFile); return len(strings.Fields(string(b))) == 2 })
					cancel()
				}()
			}
			_, err := Run(ctx, o)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			if mode == "timeout" && (!strings.Contains(err.Error(), "timed out after 1s and was killed") || !errors.Is(err, context.DeadlineExceeded)) {
				t.Errorf("err = %v", err)
			}
			if mode == "cancel" && !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
			b, err := os.ReadFile(pidFile)
			if err != nil {
				t.Fatalf("plugin never wrote its pids: %v", err)
			}
			for _, f := range strings.Fields(string(b)) {
				pid, _ := strconv.Atoi(f)
				waitFor(t, func() bool { return gone(pid) })
			}
		})
	}
}

// gone reports whether pid has exited (a zombie waiting for its reaper counts as exited).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// waitFor polls cond until it holds, failing the test after a generous bound. It is a wait
// for an event, not a timing assertion.
func waitFor(t *testing.T, cond func() bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Error("condition not reached within 30s")
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunShellPlugin runs the minimal plugin shown in docs/plugins.md, so the documented
// example keeps working.
func TestRunShellPlugin(t *testing.T) {
	doc, err := os.ReadFile("../../docs/plugins.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```sh\n#!/bin/sh")
	script, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/plugins.md has no minimal sh plugin")
	}
	exe := filepath.Join(t.TempDir(), "pin-threads")
	if err := os.WriteFile(exe, []byte("#!/bin/sh"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	o := setup(t, `{}`)
	o.Exe, o.Args = exe, []string{"pin-threads"}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rt, ok, err := ReadRuntime(o.OutputDir); !ok || err != nil || rt.IntraOpThreads != 2 {
		t.Errorf("runtime.json = %+v %v %v", rt, ok, err)
	}
	if b, _ := os.ReadFile(filepath.Join(o.OutputDir, "sub", "vocab.txt")); string(b) != "a b" {
		t.Errorf("model not copied: %q", b)
	}
	if !json.Valid(res.Report) || !strings.Contains(string(res.Report), "pin-threads") {
		t.Errorf("report = %s", res.Report)
	}
}

func TestRunDetectsModifiedInput(t *testing.T) {
	o := setup(t, `{"touch_input": true}`)
	d, err := modelsource.TreeDigest(o.InputDir)
	if err != nil {
		t.Fatal(err)
	}
	o.InputDigest = d
	_, err = Run(context.Background(), o)
	// As root the write succeeds and the digest check catches it; otherwise the read-only
	// input stops the plugin itself.
	want := "modified its input directory"
	if os.Geteuid() != 0 {
		want = "permission denied"
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

package blade

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPluginDevice: --optimize_for gpu is honoured only where the platform serves on CPU.
func TestPluginDevice(t *testing.T) {
	for _, tc := range []struct {
		optimizeFor, platform string
		device, err           string // err: a substring of the error; "" = none
		noted                 bool
	}{
		{"cpu", "", "cpu", "", false},
		{"CPU", "cpu", "cpu", "", false},
		{"gpu", "cpu", "cpu", "", true},
		{"gpu", "", "", "no GPU support", false},
		{"gpu", "gpu", "", "no GPU support", false},
		{"tpu", "cpu", "", `--optimize_for "tpu": expected cpu or gpu`, false},
	} {
		device, note, err := PluginDevice(tc.optimizeFor, tc.platform)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("PluginDevice(%q, %q) error = %v, want %q", tc.optimizeFor, tc.platform, err, tc.err)
			}
			continue
		}
		if err != nil || device != tc.device || (note != "") != tc.noted {
			t.Errorf("PluginDevice(%q, %q) = %q, %q, %v", tc.optimizeFor, tc.platform, device, note, err)
		}
	}
	// The refusal comes before anything is read.
	if _, err := RunPlugin(context.Background(), PluginEnv{}, "gpu", Options{}); err == nil || !strings.Contains(err.Error(), "no GPU support") {
		t.Fatalf("RunPlugin gpu without a platform device: %v, want a no-GPU-support failure", err)
	}
}

func TestRunPluginOnOCRClassifier(t *testing.T) {
	needORT(t)
	model, err := os.ReadFile(needModel(t, clsModel))
	if err != nil {
		t.Fatal(err)
	}
	in, out := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(in, "cls.onnx"), model, 0o644)
	os.MkdirAll(filepath.Join(in, "assets"), 0o755)
	os.WriteFile(filepath.Join(in, "assets", "labels.txt"), []byte("0\n180\n"), 0o644)
	cfg := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfg, []byte(`{"config":{"model_info":{"cls.onnx":{"optimization_level":"o1","input_shapes":[["1*3*48*192"]]}}},"processor":"onnxruntime_cpu","metadata":{}}`), 0o644)
	rep := filepath.Join(t.TempDir(), "report.json")
	env := PluginEnv{Input: in, Output: out, Config: cfg, Report: rep, Device: "cpu"}

	res, err := RunPlugin(context.Background(), env, "cpu", Options{Runs: 3, Threads: []int{1}, Samples: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.ModelPath != filepath.Join(out, "cls.onnx") {
		t.Errorf("model path %s", res.ModelPath)
	}
	for _, f := range []string{"cls.onnx", "runtime.json", "assets/labels.txt"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("output lacks %s: %v", f, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, "assets", "labels.txt")); !bytes.Equal(b, []byte("0\n180\n")) {
		t.Errorf("labels.txt changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(out, "report.json")); err == nil {
		t.Errorf("report.json leaked into the model output")
	}
	b, err := os.ReadFile(rep)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		UserConfig map[string]any `json:"user_config"`
		Diagnosis  struct {
			Model string `json:"model"`
		} `json:"diagnosis"`
		ModelInfo struct {
			Outputs []struct{ Name, DType, Shape string } `json:"outputs"`
		} `json:"model_info"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Diagnosis.Model != "cls.onnx" || r.UserConfig["optimization_level"] != "o1" {
		t.Errorf("report diagnosis/user_config wrong: %+v", r)
	}
	if o := r.ModelInfo.Outputs; len(o) != 1 || o[0].DType == "" || o[0].Shape == "" {
		t.Errorf("report model_info outputs %+v: want the output's dtype and shape", o)
	}

	// --optimize_for gpu on a platform serving on CPU: a CPU run whose report says so.
	out2 := t.TempDir()
	env.Output, env.Device = out2, "cpu"
	if _, err := RunPlugin(context.Background(), env, "gpu", Options{Runs: 3, Threads: []int{1}, Samples: 2}); err != nil {
		t.Fatalf("--optimize_for gpu with EAS_PLUGIN_DEVICE=cpu: %v", err)
	}
	var r2 struct {
		HW        map[string]any `json:"hardware_context"`
		Diagnosis struct {
			Message string `json:"message"`
		} `json:"diagnosis"`
	}
	b, _ = os.ReadFile(rep)
	if err := json.Unmarshal(b, &r2); err != nil {
		t.Fatal(err)
	}
	if r2.HW["device"] != "cpu" || r2.HW["requested_device"] != "gpu" || !strings.Contains(r2.Diagnosis.Message, "optimized and verified for CPU") {
		t.Errorf("gpu-on-cpu report: hardware %v, message %q", r2.HW, r2.Diagnosis.Message)
	}
	if _, err := os.Stat(filepath.Join(out2, "cls.onnx")); err != nil {
		t.Errorf("gpu-on-cpu run wrote no model: %v", err)
	}
}

func TestRunPluginBadConfig(t *testing.T) {
	in := t.TempDir()
	os.WriteFile(filepath.Join(in, "model.onnx"), []byte("x"), 0o644)
	cfg := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfg, []byte(`{"config":{"model_info":{"model.onnx":{"input_shapes":[[1]]}}}}`), 0o644)
	_, err := RunPlugin(context.Background(), PluginEnv{Input: in, Output: t.TempDir(), Config: cfg, Report: filepath.Join(t.TempDir(), "r.json")}, "cpu", Options{})
	want := `config.model_info["model.onnx"].input_shapes[0][0]: expected a string like "1*512", found the number 1`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want %s", err, want)
	}
}

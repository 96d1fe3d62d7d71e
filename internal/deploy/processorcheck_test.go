package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/plugin"
	"github.com/openeas/openeas/internal/spec"
)

// TestProcessorCheck: the installation's check refuses a processor at create time, with its message.
func TestProcessorCheck(t *testing.T) {
	h := newHarness(t, "")
	var asked []string
	h.m.opts.ProcessorCheck = func(p spec.ProcessorInfo) error {
		asked = append(asked, p.Name)
		if p.Runtime == "libtorch" {
			return errors.New("libtorch is not installed; apt-get install libtorch-dev")
		}
		return nil
	}
	_, err := h.m.Create(context.Background(), []byte(`{"name":"pt","model_path":"/m.pt","processor":"pytorch_cpu_1.10"}`))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "processor: libtorch is not installed; apt-get install libtorch-dev") {
		t.Fatalf("create: %v; want ErrInvalid with the check's message", err)
	}
	if len(asked) != 1 || asked[0] != "pytorch_cpu" {
		t.Errorf("check asked about %v, want [pytorch_cpu]", asked)
	}
}

// TestGPUFallback: a GPU processor on an installation without a GPU runtime for it is served
// on CPU (bundle processor, Warning event, EAS_PLUGIN_DEVICE=cpu for its plugins) when
// GPUFallback is on, and refused at create with the reason when it is off. A GPU the
// installation has is used as asked.
func TestGPUFallback(t *testing.T) {
	tests := []struct {
		name, processor string
		hasGPU          bool
		fallback        bool
		wantErr         string // "" = the service runs
		wantServed      string // the bundle's processor
		wantDevice      string // what the plugin was told
	}{
		{"fallback", "onnxruntime_gpu", false, true, "", "onnxruntime_cpu", "cpu"},
		{"pytorch fallback", "pytorch_gpu_1.10", false, true, "", "pytorch_cpu", "cpu"},
		{"refused", "onnxruntime_gpu", false, false,
			"processor: onnxruntime_gpu needs a GPU runtime: no CUDA here; use onnxruntime_cpu, or start easd with --gpu-fallback=cpu", "", ""},
		{"gpu present", "pytorch_gpu", true, true, "", "pytorch_gpu", "gpu"},
		{"cpu processor untouched", "onnx_cpu", false, false, "", "onnxruntime_cpu", "gpu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "")
			h.m.opts.GPUFallback = tt.fallback
			h.m.opts.GPUCheck = func(p spec.ProcessorInfo) error {
				if !p.GPU {
					t.Errorf("GPUCheck asked about CPU processor %s", p.Name)
				}
				if tt.hasGPU {
					return nil
				}
				return errors.New("no CUDA here")
			}
			var device string
			h.m.opts.RunPlugin = func(ctx context.Context, service, key string, ps plugin.Spec, o plugin.RunOptions) (plugin.Result, error) {
				device = o.Device
				return plugin.Result{}, os.WriteFile(filepath.Join(o.OutputDir, "m.bin"), []byte("optimized"), 0o644)
			}
			model := writeModel(t, t.TempDir(), "m.bin", "model")
			doc := fmt.Sprintf(`{"name":"g","model_path":%q,"model_entry":"m.bin","processor":%q,
				"plugins":[{"image":"registry/eas/pai-blade-deploy:gpu_latest","command":"blade --mode eas_plugin --optimize_for gpu"}]}`, model, tt.processor)
			_, err := h.m.Create(context.Background(), []byte(doc))
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("create: %v; want ErrInvalid with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := h.wait("g")
			if s.Status != api.StatusRunning {
				t.Fatalf("status %s: %s", s.Status, h.events("g"))
			}
			if fellBack := tt.wantDevice == "cpu"; (s.ServedBy == tt.wantServed) != fellBack || (!fellBack && s.ServedBy != "") {
				t.Errorf("desc ServedBy %q; want %q when serving on CPU instead, else empty", s.ServedBy, tt.wantServed)
			}
			var man bundle.Manifest
			b, err := os.ReadFile(filepath.Join(h.sched.lastApply().BundleDir, bundle.ManifestFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &man); err != nil {
				t.Fatal(err)
			}
			if man.Processor != tt.wantServed || device != tt.wantDevice {
				t.Errorf("bundle processor %q, plugin device %q; want %q, %q", man.Processor, device, tt.wantServed, tt.wantDevice)
			}
			warned := strings.Contains(h.events("g"), "serving on CPU as "+tt.wantServed)
			if fellBack := tt.wantDevice == "cpu"; warned != fellBack {
				t.Errorf("fallback warning shown: %v, want %v: %s", warned, fellBack, h.events("g"))
			}
		})
	}
}

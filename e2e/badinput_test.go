package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/api"
)

// TestBadInputs: each bad service.json, model or plugin ends in a clear error or a Failed
// service naming the cause, and a service already running is never touched.
func TestBadInputs(t *testing.T) {
	e := requireEnv(t)
	plugin := buildTestPlugin(t, e)
	d := startEasd(t, e, "")
	ctx := context.Background()
	model := filepath.Join(e.repo, clsModel)

	// A healthy service that must keep serving throughout.
	good, _ := json.Marshal(map[string]any{"name": "healthy", "model_path": model, "processor": "onnx_cpu"})
	if _, err := d.client.Create(ctx, good); err != nil {
		t.Fatal(err)
	}
	healthy := d.waitStatus("healthy", api.StatusRunning, time.Minute)

	t.Run("rejected at create", func(t *testing.T) {
		cases := []struct {
			name, doc string
			says      []string
		}{
			{"not JSON", `{"name": "x",`, []string{"JSON"}},
			{"unknown field", `{"name":"x","model_path":"` + model + `","processor":"onnx_cpu","modle_entry":"a"}`, []string{"modle_entry"}},
			{"plugin without image", `{"name":"x","model_path":"` + model + `","processor":"onnx_cpu","plugins":[{"command":"blade --mode eas_plugin"}]}`, []string{"plugins[0].image", "required"}},
			{"unknown processor", `{"name":"x","model_path":"` + model + `","processor":"caffe_gpu"}`, []string{"processor", "caffe_gpu"}},
			{"bad instance", `{"name":"x","model_path":"` + model + `","processor":"onnx_cpu","metadata":{"instance":-1}}`, []string{"metadata.instance"}},
			{"wrong type", `{"name":"x","model_path":"` + model + `","processor":"onnx_cpu","metadata":{"instance":"2"}}`, []string{"metadata.instance"}},
			{"bad name", `{"name":"Bad Name","model_path":"` + model + `","processor":"onnx_cpu"}`, []string{"name"}},
			{"object storage not yet", `{"name":"x","model_path":"ftp://h/m.onnx","processor":"onnx_cpu"}`, []string{"model_path"}},
			{"duplicate name", string(good), []string{"healthy"}},
		}
		for _, c := range cases {
			_, err := d.client.Create(ctx, []byte(c.doc))
			var se *api.StatusError
			if !errors.As(err, &se) || (se.StatusCode != 400 && se.StatusCode != 409) {
				t.Errorf("%s: got %v, want a 400/409 StatusError", c.name, err)
				continue
			}
			for _, s := range c.says {
				if !strings.Contains(se.Message, s) {
					t.Errorf("%s: message %q does not mention %q", c.name, se.Message, s)
				}
			}
		}
	})

	t.Run("fail during deploy", func(t *testing.T) {
		dir := t.TempDir()
		corrupt := filepath.Join(dir, "corrupt.onnx")
		b, _ := os.ReadFile(model)
		os.WriteFile(corrupt, b[:len(b)/3], 0o644)
		notONNX := filepath.Join(dir, "text", "model.onnx")
		os.MkdirAll(filepath.Dir(notONNX), 0o755)
		os.WriteFile(notONNX, []byte("this is not a model"), 0o644)
		two := filepath.Join(dir, "two")
		os.MkdirAll(two, 0o755)
		os.WriteFile(filepath.Join(two, "a.onnx"), b, 0o644)
		os.WriteFile(filepath.Join(two, "b.onnx"), b, 0o644)

		cases := []struct {
			name string
			svc  map[string]any
			says []string
		}{
			{"missing model", map[string]any{"model_path": filepath.Join(dir, "nope.onnx")}, []string{"nope.onnx"}},
			{"truncated model", map[string]any{"model_path": corrupt}, []string{"corrupt.onnx"}},
			{"not a model", map[string]any{"model_path": notONNX}, []string{"model.onnx"}},
			{"several models, no model_entry", map[string]any{"model_path": two}, []string{"model_entry"}},
			{"failing plugin", map[string]any{"model_path": model, "plugins": []any{map[string]any{
				"command": "scale-plugin", "image": "local://" + plugin, "config": map[string]any{"fail": "calibration exploded"}}}},
				[]string{"calibration exploded", "plugins[0]"}},
			{"plugin image not runnable here", map[string]any{"model_path": model, "plugins": []any{map[string]any{
				"command": "opt", "image": "docker.io/someone/optimizer:latest"}}}, []string{"docker.io/someone/optimizer:latest"}},
		}
		for i, c := range cases {
			name := "bad" + strconv.Itoa(i)
			c.svc["name"] = name
			c.svc["processor"] = "onnxruntime_cpu"
			doc, _ := json.Marshal(c.svc)
			if _, err := d.client.Create(ctx, doc); err != nil {
				t.Errorf("%s: create refused (%v); want it accepted and then Failed", c.name, err)
				continue
			}
			s := d.waitStatus(name, api.StatusFailed, time.Minute)
			for _, want := range c.says {
				if !strings.Contains(s.Message, want) {
					t.Errorf("%s: message %q does not mention %q", c.name, s.Message, want)
				}
			}
			if s.RunningInstance != 0 {
				t.Errorf("%s: %d instances running for a Failed service", c.name, s.RunningInstance)
			}
		}
	})

	// Nothing above touched the healthy service.
	s, err := d.client.Describe(ctx, "healthy")
	if err != nil || s.Status != api.StatusRunning || s.Image != healthy.Image || s.RunningInstance != 1 {
		t.Fatalf("healthy service changed: %+v %v", s, err)
	}
	code, _, _ := predictJSON(d, "healthy", healthy.AccessToken, "x", clsInput(1))
	if code != 200 {
		t.Fatalf("healthy service answers %d", code)
	}
}

// TestKill9MidDeploy: easd killed with SIGKILL while a plugin runs leaves no orphan, and the
// restarted easd resumes the deploy to Running.
func TestKill9MidDeploy(t *testing.T) {
	e := requireEnv(t)
	plugin := buildTestPlugin(t, e)
	d := startEasd(t, e, "")
	pidFile := filepath.Join(t.TempDir(), "pids")
	doc, _ := json.Marshal(map[string]any{
		"name": "slow", "model_path": filepath.Join(e.repo, clsModel), "processor": "onnxruntime_cpu",
		"plugins": []any{map[string]any{"command": "scale-plugin", "image": "local://" + plugin,
			"config": map[string]any{"sleep": "3s", "pid_file": pidFile}}},
	})
	if _, err := d.client.Create(context.Background(), doc); err != nil {
		t.Fatal(err)
	}
	var pids []int
	waitFor(t, 30*time.Second, "the plugin to start", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		for _, f := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(f); err == nil {
				pids = append(pids, p)
			}
		}
		return len(pids) == 2
	})
	d.kill9()
	waitFor(t, 10*time.Second, "the plugin and its child to die with easd", func() bool {
		for _, p := range pids {
			if syscall.Kill(p, 0) == nil && !isZombie(p) {
				return false
			}
		}
		return true
	})
	d2 := startEasd(t, e, d.dataDir)
	s := d2.waitStatus("slow", api.StatusRunning, 2*time.Minute)
	if !strings.HasPrefix(s.Image, "sha256:") {
		t.Fatalf("resumed deploy: image %q", s.Image)
	}
	if !strings.Contains(d2.eventText("slow"), "resuming") {
		t.Errorf("no event says the deploy was resumed:\n%s", d2.eventText("slow"))
	}

	// Workers die with easd too, however it exits.
	workers := workerPIDs(t, "slow")
	if len(workers) != 1 {
		t.Fatalf("worker processes %v, want one", workers)
	}
	d2.kill9()
	waitFor(t, 10*time.Second, "the worker to die with easd", func() bool { return len(workerPIDs(t, "slow")) == 0 })
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	return err != nil || strings.Contains(string(b), ") Z ")
}

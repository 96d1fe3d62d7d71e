package scheduler

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/frame"
)

// TestRealWorker checks the process contract between this package and cmd/eas-worker: the
// real worker's failed event reaches Apply's error, and (with ONNX Runtime available) a real
// model becomes ready, is routed, answers, and drains on Stop.
func TestRealWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/eas-worker")
	}
	exe := filepath.Join(t.TempDir(), "eas-worker")
	if out, err := exec.Command("go", "build", "-o", exe, "../../cmd/eas-worker").CombinedOutput(); err != nil {
		t.Fatalf("build eas-worker: %v\n%s", err, out)
	}
	sockets := t.TempDir()
	h := start(t, func(o *Options) { o.WorkerBinary, o.SocketDir = exe, sockets })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	tf := realBundle(t, "tensorflow_cpu_1.15", "")
	err := h.l.Apply(ctx, Deployment{Service: "tf", Version: 1, BundleDir: tf, Replicas: 1})
	if err == nil || !strings.Contains(err.Error(), "processor tensorflow_cpu_1.15 is not available in this worker") {
		t.Errorf("Apply of an unavailable processor: %v", err)
	}

	lib := os.Getenv("OPENEAS_ORT_LIB")
	model, _ := filepath.Abs("../../.cache/models/ocr-1.4.2/ch_ppocr_mobile_v2.0_cls_infer.onnx")
	if _, err := os.Stat(model); lib == "" || err != nil {
		t.Skip("set OPENEAS_ORT_LIB and run scripts/fetch-deps.sh to serve a real model")
	}
	d := Deployment{Service: "cls", Version: 1, BundleDir: realBundle(t, "onnxruntime_cpu", model), Replicas: 2,
		Args: []string{"--ort-lib", lib}}
	if err := h.l.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	eps := h.router.last("cls")
	if len(eps) != 2 {
		t.Fatalf("routed %+v", eps)
	}
	for _, ep := range eps {
		resp, err := client.Get("http://" + ep.Addr + "/predict/v2/models/cls")
		if err != nil {
			t.Fatal(err)
		}
		var meta struct{ Name string }
		json.NewDecoder(resp.Body).Decode(&meta)
		resp.Body.Close()
		if resp.StatusCode != 200 || meta.Name != "cls" {
			t.Errorf("%s metadata: %d %+v", ep.Addr, resp.StatusCode, meta)
		}
		// The same through the framed protocol on the worker's private socket.
		fi, err := os.Stat(ep.Socket)
		if err != nil || filepath.Dir(ep.Socket) != sockets || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm()&0o077 != 0 {
			t.Fatalf("endpoint socket %q: %v %v; want a socket only its owner may use, in %s", ep.Socket, fi, err, sockets)
		}
		req, _ := http.NewRequest("GET", "http://worker/predict/v2/models/cls", nil)
		fresp, err := frame.NewTransport(ep.Socket).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		var fmeta struct{ Name string }
		json.NewDecoder(fresp.Body).Decode(&fmeta)
		if fresp.StatusCode != 200 || fmeta.Name != "cls" {
			t.Errorf("%s metadata over the socket: %d %+v", ep.Socket, fresp.StatusCode, fmeta)
		}
	}
	pids := h.started()
	if err := h.l.Stop(ctx, "cls"); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d alive after Stop", pid)
		}
	}
	h.events.mu.Lock()
	defer h.events.mu.Unlock()
	for _, e := range h.events.list {
		if strings.HasPrefix(e, "Warning") {
			t.Errorf("unexpected warning: %s", e) // a drained worker must not look like a crash
		}
	}
}

func realBundle(t *testing.T, proc, model string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "model"), 0o755)
	if model != "" {
		b, err := os.ReadFile(model)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "model", "m.onnx"), b, 0o644)
	}
	m, _ := json.Marshal(map[string]any{"schema": 1, "processor": proc, "model_entry": "m.onnx"})
	os.WriteFile(filepath.Join(dir, "bundle.json"), m, 0o644)
	return dir
}

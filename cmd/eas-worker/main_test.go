package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/bundle"
)

func TestCheckListen(t *testing.T) {
	for _, c := range []struct {
		addr   string
		remote bool
		ok     bool
	}{
		{"127.0.0.1:0", false, true},
		{"[::1]:8080", false, true},
		{"localhost:0", false, true},
		{"0.0.0.0:8080", false, false},
		{":8080", false, false},
		{"10.1.2.3:80", false, false},
		{"0.0.0.0:8080", true, true},
		{"nonsense", true, false},
	} {
		if err := checkListen(c.addr, c.remote); (err == nil) != c.ok {
			t.Errorf("checkListen(%q, %v) = %v, want ok=%v", c.addr, c.remote, err, c.ok)
		}
	}
}

// TestRealModel runs the real binary on a bundle holding PaddleOCR's orientation classifier.
func TestRealModel(t *testing.T) {
	lib := os.Getenv(envORTLib)
	if lib == "" {
		t.Skip("set OPENEAS_ORT_LIB to the ONNX Runtime library (scripts/fetch-deps.sh makes .cache/libonnxruntime.so) to run this test")
	}
	model, _ := filepath.Abs("../../.cache/models/ocr-1.4.2/ch_ppocr_mobile_v2.0_cls_infer.onnx")
	if _, err := os.Stat(model); err != nil {
		t.Skipf("model missing (run scripts/fetch-deps.sh): %v", err)
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "eas-worker")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	bdir := filepath.Join(dir, "bundle")
	os.MkdirAll(filepath.Join(bdir, "model"), 0o755)
	data, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(bdir, "model", "cls.onnx"), data, 0o644)
	m, _ := json.Marshal(bundle.Manifest{Schema: 1, Processor: "onnxruntime_cpu", ModelEntry: "cls.onnx"})
	os.WriteFile(filepath.Join(bdir, bundle.ManifestFile), m, 0o644)

	cmd := exec.Command(exe, "--bundle", bdir, "--name", "cls", "--ort-lib", lib)
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	var addr string
	for sc.Scan() {
		var ev struct{ Event, Addr, Error string }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("stdout line %q is not an event", sc.Text())
		}
		if ev.Event == "listening" {
			addr = ev.Addr
		}
		if ev.Event == "failed" {
			t.Fatalf("worker failed: %s\n%s", ev.Error, stderr.String())
		}
		if ev.Event == "ready" {
			break
		}
	}
	if addr == "" {
		t.Fatalf("no listening event; stderr:\n%s", stderr.String())
	}
	client := &http.Client{Timeout: time.Minute}

	// The signature, from the v2 metadata.
	resp, err := client.Get("http://" + addr + "/predict/v2/models/cls")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Inputs []struct {
			Name  string
			Shape []int64
		}
	}
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if len(meta.Inputs) != 1 || len(meta.Inputs[0].Shape) != 4 {
		t.Fatalf("metadata inputs %+v, want one 4-d input", meta.Inputs)
	}
	in := meta.Inputs[0]
	shape := in.Shape
	for i, d := range []int64{1, 3, 48, 192} { // the classifier's usual input size
		if shape[i] < 0 {
			shape[i] = d
		}
	}
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	zeros := strings.TrimSuffix(strings.Repeat("0.5,", int(n)), ",")
	sh, _ := json.Marshal(shape)
	body := `{"inputs":[{"name":"` + in.Name + `","datatype":"FP32","shape":` + string(sh) + `,"data":[` + zeros + `]}]}`
	resp, err = client.Post("http://"+addr+"/predict/v2/models/cls/infer", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Outputs []struct {
			Shape []int64
			Data  []float64
		}
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("infer: %d %s", resp.StatusCode, raw)
	}
	json.Unmarshal(raw, &out)
	if len(out.Outputs) != 1 || len(out.Outputs[0].Data) != 2 {
		t.Fatalf("infer answer %s, want one output of two class scores", raw)
	}
	if s := out.Outputs[0].Data[0] + out.Outputs[0].Data[1]; s < 0.99 || s > 1.01 {
		t.Errorf("class probabilities %v do not sum to 1", out.Outputs[0].Data)
	}

	// A wrong shape is the client's mistake: 400 naming the input.
	resp, err = client.Post("http://"+addr+"/predict", "application/json", strings.NewReader(`{"inputs":{"`+in.Name+`":[[1,2]]}}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(raw), in.Name) {
		t.Errorf("bad shape: %d %s", resp.StatusCode, raw)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
}

func TestBadRPCFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--worker-threads", "0"},
		{"--max-queue", "0"},
		{"--max-batch-size", "0"},
		{"--max-batch-timeout", "-1ms"},
		{"--timeout", "-1s"},
		{"--batching=maybe"},
	} {
		if code := run(append([]string{"--bundle", t.TempDir(), "--name", "svc"}, args...)); code != 2 {
			t.Errorf("eas-worker %v: exit %d, want 2 (usage)", args, code)
		}
	}
}

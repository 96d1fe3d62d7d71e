package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/easpb/tfpb"
	"github.com/openeas/openeas/internal/easpb/torchpb"
	"github.com/openeas/openeas/internal/gateway"
	"github.com/openeas/openeas/internal/ort"
	"github.com/openeas/openeas/internal/tensor"
)

const clsModel = ".cache/models/ocr-1.4.2/ch_ppocr_mobile_v2.0_cls_infer.onnx"

// model is a reference copy of a deployed ONNX model, run directly with ONNX Runtime.
type model struct {
	path    string
	in, out string
	sess    *ort.Session
}

func openModel(t *testing.T, e env, path string) *model {
	t.Helper()
	if err := ort.Init(e.ortLib); err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewSession(path, ort.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &model{path: path, in: s.Inputs()[0].Name, out: s.Outputs()[0].Name, sess: s}
}

// clsInput is a deterministic 1x3x48x192 image.
func clsInput(seed int) []float32 {
	x := make([]float32, 3*48*192)
	for i := range x {
		x[i] = float32(math.Sin(float64(i*(seed+3))*0.001)) * 0.9
	}
	return x
}

func (m *model) reference(t *testing.T, x []float32) []float32 {
	t.Helper()
	in := &tensor.Tensor{DType: tensor.Float, Shape: []int64{1, 3, 48, 192}, Data: f32bytes(x)}
	out, err := m.sess.Run(context.Background(), map[string]*tensor.Tensor{m.in: in}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return bytesF32(out[m.out].Data)
}

func assertClose(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > tol*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("%s: value %d = %g, ORT directly gives %g", what, i, got[i], want[i])
		}
	}
}

// predictJSON posts the plain JSON format with plain token auth.
func predictJSON(d *easd, name, token, input string, x []float32) (int, []byte, error) {
	nested := make([][][][]float32, 1)
	nested[0] = make([][][]float32, 3)
	for c := range 3 {
		nested[0][c] = make([][]float32, 48)
		for y := range 48 {
			nested[0][c][y] = x[(c*48+y)*192 : (c*48+y+1)*192]
		}
	}
	body, _ := json.Marshal(map[string]any{"inputs": map[string]any{input: nested}})
	req, _ := http.NewRequest("POST", d.url("/api/predict/"+name), bytes.NewReader(body))
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", "application/json")
	return do(req)
}

func do(req *http.Request) (int, []byte, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func jsonOutput(t *testing.T, body []byte, name string) []float32 {
	t.Helper()
	var resp struct {
		Outputs map[string][][]float32 `json:"outputs"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("decode JSON answer %q: %v", tail(string(body), 3), err)
	}
	var out []float32
	for _, row := range resp.Outputs[name] {
		out = append(out, row...)
	}
	return out
}

func TestServiceLifecycle(t *testing.T) {
	e := requireEnv(t)
	plugin := buildTestPlugin(t, e)
	top := t // easd restarts below must live as long as this test, not the subtest
	d := startEasd(t, e, "")
	ref := openModel(t, e, filepath.Join(e.repo, clsModel))
	ctx := context.Background()

	svcFile := writeJSON(t, filepath.Join(t.TempDir(), "service.json"), map[string]any{
		"name":       "cls",
		"model_path": filepath.Join(e.repo, clsModel),
		"processor":  "onnxruntime_cpu",
		"metadata":   map[string]any{"instance": 1},
		"plugins":    []any{map[string]any{"command": "scale-plugin --mode eas_plugin", "image": "local://" + plugin}},
	})
	out, err := d.eascmd("create", svcFile)
	if err != nil {
		t.Fatalf("eascmd create: %v\n%s", err, out)
	}
	for _, want := range []string{"Internet Endpoint", "Token", "[OK] Service is now creating", "[OK] Executing plugin eas-plugin-", "with ONNX Runtime 1.30.0", "[OK] Service is running"} {
		if !strings.Contains(out, want) {
			t.Fatalf("eascmd create output lacks %q:\n%s", want, out)
		}
	}
	svc := d.waitStatus("cls", api.StatusRunning, 2*time.Minute)
	if !strings.HasPrefix(svc.Image, "sha256:") || svc.AccessToken == "" {
		t.Fatalf("describe: Image %q, token %q: want a sha256 digest and a token", svc.Image, svc.AccessToken)
	}
	token, image := svc.AccessToken, svc.Image

	t.Run("predict in every format", func(t *testing.T) {
		x := clsInput(1)
		want := ref.reference(t, x)

		code, body, err := predictJSON(d, "cls", token, ref.in, x)
		if err != nil || code != 200 {
			t.Fatalf("plain JSON: %d %v %s", code, err, body)
		}
		assertClose(t, "plain JSON", jsonOutput(t, body, ref.out), want, 1e-5)

		// EAS TensorFlow protobuf, named inputs, signed the way the EAS SDKs sign.
		tfReq := &tfpb.PredictRequest{Inputs: map[string]*tfpb.ArrayProto{ref.in: {
			Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: &tfpb.ArrayShape{Dim: []int64{1, 3, 48, 192}}, FloatVal: x}}}
		pb, _ := proto.Marshal(tfReq)
		req, _ := http.NewRequest("POST", d.url("/api/predict/cls"), bytes.NewReader(pb))
		sum := md5.Sum(pb)
		md5hex := hex.EncodeToString(sum[:])
		date := time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-MD5", md5hex)
		req.Header.Set("Date", date)
		req.Header.Set("Authorization", gateway.Sign(token, "POST", md5hex, "application/octet-stream", date, "/api/predict/cls"))
		code, body, err = do(req)
		if err != nil || code != 200 {
			t.Fatalf("TF protobuf (signed): %d %v %s", code, err, body)
		}
		var tfResp tfpb.PredictResponse
		if err := proto.Unmarshal(body, &tfResp); err != nil {
			t.Fatal(err)
		}
		assertClose(t, "TF protobuf", tfResp.Outputs[ref.out].GetFloatVal(), want, 1e-5)

		// A signature made with another token is refused.
		req, _ = http.NewRequest("POST", d.url("/api/predict/cls"), bytes.NewReader(pb))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-MD5", md5hex)
		req.Header.Set("Date", date)
		req.Header.Set("Authorization", gateway.Sign("wrong", "POST", md5hex, "application/octet-stream", date, "/api/predict/cls"))
		if code, _, _ = do(req); code != 401 {
			t.Fatalf("signed with a wrong token: status %d, want 401", code)
		}

		// EAS PyTorch protobuf, positional inputs.
		ptReq := &torchpb.PredictRequest{Inputs: []*torchpb.ArrayProto{{
			Dtype: torchpb.ArrayDataType_DT_FLOAT, ArrayShape: &torchpb.ArrayShape{Dim: []int64{1, 3, 48, 192}}, FloatVal: x}}}
		pb, _ = proto.Marshal(ptReq)
		req, _ = http.NewRequest("POST", d.url("/api/predict/cls"), bytes.NewReader(pb))
		req.Header.Set("Authorization", token)
		req.Header.Set("X-EAS-Request-Format", "pytorch")
		code, body, err = do(req)
		if err != nil || code != 200 {
			t.Fatalf("PyTorch protobuf: %d %v %s", code, err, body)
		}
		var ptResp torchpb.PredictResponse
		if err := proto.Unmarshal(body, &ptResp); err != nil || len(ptResp.Outputs) == 0 {
			t.Fatalf("PyTorch answer: %v (%d outputs)", err, len(ptResp.Outputs))
		}
		assertClose(t, "PyTorch protobuf", ptResp.Outputs[0].GetFloatVal(), want, 1e-5)

		// Open Inference Protocol v2.
		v2 := map[string]any{"inputs": []any{map[string]any{"name": ref.in, "shape": []int{1, 3, 48, 192}, "datatype": "FP32", "data": x}}}
		vb, _ := json.Marshal(v2)
		req, _ = http.NewRequest("POST", d.url("/api/predict/cls/v2/models/cls/infer"), bytes.NewReader(vb))
		req.Header.Set("Authorization", token)
		req.Header.Set("Content-Type", "application/json")
		code, body, err = do(req)
		if err != nil || code != 200 {
			t.Fatalf("v2 infer: %d %v %s", code, err, body)
		}
		var v2Resp struct {
			Outputs []struct {
				Name string    `json:"name"`
				Data []float32 `json:"data"`
			} `json:"outputs"`
		}
		if err := json.Unmarshal(body, &v2Resp); err != nil || len(v2Resp.Outputs) == 0 {
			t.Fatalf("v2 answer %s: %v", body, err)
		}
		assertClose(t, "v2 infer", v2Resp.Outputs[0].Data, want, 1e-5)

		req, _ = http.NewRequest("GET", d.url("/api/predict/cls/v2/models/cls"), nil)
		req.Header.Set("Authorization", token)
		if code, body, _ = do(req); code != 200 || !strings.Contains(string(body), ref.in) {
			t.Fatalf("v2 model metadata: %d %s", code, body)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		x := clsInput(2)
		cases := []struct {
			name, service, token, input string
			status                      int
			says                        string
		}{
			{"wrong input name", "cls", token, "nope", 400, "nope"},
			{"wrong token", "cls", "not-the-token", ref.in, 401, ""},
			{"no token", "cls", "", ref.in, 401, ""},
			{"unknown service", "nosuch", token, ref.in, 404, ""},
		}
		for _, c := range cases {
			code, body, err := predictJSON(d, c.service, c.token, c.input, x)
			if err != nil || code != c.status || !strings.Contains(string(body), c.says) {
				t.Errorf("%s: status %d body %q err %v; want %d mentioning %q", c.name, code, tail(string(body), 2), err, c.status, c.says)
			}
		}
		// A malformed body is a 400 too, and the instance keeps serving.
		req, _ := http.NewRequest("POST", d.url("/api/predict/cls"), strings.NewReader(`{"inputs": {"x": [[1, 2], [3]]}}`))
		req.Header.Set("Authorization", token)
		req.Header.Set("Content-Type", "application/json")
		if code, body, _ := do(req); code != 400 {
			t.Errorf("ragged JSON: status %d %s, want 400", code, body)
		}
		if code, _, _ := predictJSON(d, "cls", token, ref.in, x); code != 200 {
			t.Errorf("after bad requests: status %d, want 200", code)
		}
	})

	t.Run("scale 1 to 3 to 1 reuses the bundle", func(t *testing.T) {
		for _, n := range []int{3, 1} {
			if out, err := d.eascmd("modify", "cls", fmt.Sprintf("-Dmetadata.instance=%d", n)); err != nil {
				t.Fatalf("modify -Dmetadata.instance=%d: %v\n%s", n, err, out)
			}
			s := d.waitStatus("cls", api.StatusRunning, time.Minute)
			if s.RunningInstance != n || s.Image != image {
				t.Fatalf("after scaling to %d: %d running, image %s (was %s)", n, s.RunningInstance, s.Image, image)
			}
			waitFor(t, 10*time.Second, fmt.Sprintf("%d worker processes", n), func() bool { return len(workerPIDs(t, "cls")) == n })
		}
		if runs := countEvents(t, d, "cls", "Executing plugin"); runs != 1 {
			t.Fatalf("the plugin ran %d times, want once:\n%s", runs, d.eventText("cls"))
		}
	})

	t.Run("a killed worker comes back", func(t *testing.T) {
		pids := workerPIDs(t, "cls")
		if len(pids) != 1 {
			t.Fatalf("worker processes: %v, want one", pids)
		}
		if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "a new worker", func() bool {
			p := workerPIDs(t, "cls")
			return len(p) == 1 && p[0] != pids[0]
		})
		d.waitStatus("cls", api.StatusRunning, time.Minute)
		waitFor(t, 30*time.Second, "a prediction after the restart", func() bool {
			code, _, _ := predictJSON(d, "cls", token, ref.in, clsInput(3))
			return code == 200
		})
		if countEvents(t, d, "cls", "exited") == 0 {
			t.Errorf("no event tells of the worker's exit:\n%s", d.eventText("cls"))
		}
	})

	t.Run("easd restart keeps token and bundle without refetching", func(t *testing.T) {
		before := lastEventID(t, d, "cls")
		d.stop()
		if p := workerPIDs(t, "cls"); len(p) != 0 {
			t.Fatalf("workers outlived easd: %v", p)
		}
		d2 := startEasd(top, e, d.dataDir)
		*d = *d2
		s := d.waitStatus("cls", api.StatusRunning, time.Minute)
		if s.AccessToken != token || s.Image != image {
			t.Fatalf("after restart: token changed %v, image %s (was %s)", s.AccessToken != token, s.Image, image)
		}
		evs, _ := d.client.Events(ctx, "cls", before)
		for _, ev := range evs {
			if strings.Contains(ev.Message, "Executing plugin") || strings.Contains(ev.Message, "Downloading model") {
				t.Fatalf("restart redid a deploy step: %q", ev.Message)
			}
		}
		code, body, _ := predictJSON(d, "cls", token, ref.in, clsInput(4))
		if code != 200 {
			t.Fatalf("predict after restart: %d %s", code, body)
		}
	})

	t.Run("modify to a new model under load has no failed request", func(t *testing.T) {
		v2 := filepath.Join(t.TempDir(), "cls_v2.onnx")
		scaleOutputs(t, filepath.Join(e.repo, clsModel), v2, 0.5)
		x := clsInput(5)
		old := ref.reference(t, x)

		var okCount, bad atomic.Int64
		var badMsg atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					code, body, err := predictJSON(d, "cls", token, ref.in, x)
					if err != nil || code != 200 {
						bad.Add(1)
						badMsg.Store(fmt.Sprintf("%d %v %s", code, err, tail(string(body), 2)))
						continue
					}
					okCount.Add(1)
				}
			}()
		}
		time.Sleep(300 * time.Millisecond)
		patch := writeJSON(t, filepath.Join(t.TempDir(), "v2.json"), map[string]any{"model_path": v2})
		if out, err := d.eascmd("modify", "cls", "-s", patch); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("modify: %v\n%s", err, out)
		}
		s := d.waitStatus("cls", api.StatusRunning, 2*time.Minute)
		time.Sleep(300 * time.Millisecond)
		close(stop)
		wg.Wait()
		if bad.Load() != 0 {
			t.Fatalf("%d of %d requests failed during the update, e.g. %v", bad.Load(), bad.Load()+okCount.Load(), badMsg.Load())
		}
		if s.Version != 2 || s.Image == image {
			t.Fatalf("after modify: version %d image %s; want version 2 with a new image", s.Version, s.Image)
		}
		_, body, _ := predictJSON(d, "cls", token, ref.in, x)
		got := jsonOutput(t, body, ref.out)
		for i := range old {
			old[i] *= 0.5
		}
		assertClose(t, "new model", got, old, 1e-5)
		t.Logf("%d requests served during the update, none failed", okCount.Load())
		waitFor(t, 10*time.Second, "only the new version's bundle on disk", func() bool {
			return slices.Equal(bundleDirs(t, d), []string{strings.TrimPrefix(s.Image, "sha256:")})
		})
	})

	t.Run("delete", func(t *testing.T) {
		if out, err := d.eascmd("delete", "-y", "cls"); err != nil {
			t.Fatalf("delete: %v\n%s", err, out)
		}
		waitFor(t, time.Minute, "the service to be gone", func() bool {
			_, err := d.client.Describe(ctx, "cls")
			return api.IsNotFound(err)
		})
		if code, _, _ := predictJSON(d, "cls", token, ref.in, clsInput(6)); code != 404 {
			t.Fatalf("predict after delete: %d, want 404", code)
		}
		waitFor(t, 10*time.Second, "no worker left", func() bool { return len(workerPIDs(t, "cls")) == 0 })
		waitFor(t, 10*time.Second, "its bundle removed", func() bool { return len(bundleDirs(t, d)) == 0 })
	})
}

// bundleDirs lists DATA/bundles.
func bundleDirs(t *testing.T, d *easd) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(d.dataDir, "bundles"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func countEvents(t *testing.T, d *easd, name, substr string) int {
	t.Helper()
	evs, err := d.client.Events(context.Background(), name, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if strings.Contains(e.Message, substr) {
			n++
		}
	}
	return n
}

func lastEventID(t *testing.T, d *easd, name string) int64 {
	t.Helper()
	evs, err := d.client.Events(context.Background(), name, 0)
	if err != nil || len(evs) == 0 {
		t.Fatalf("events: %v", err)
	}
	return evs[len(evs)-1].ID
}

func f32bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		u := math.Float32bits(v)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return b
}

func bytesF32(b []byte) []float32 {
	x := make([]float32, len(b)/4)
	for i := range x {
		x[i] = math.Float32frombits(uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
	}
	return x
}

var _ = os.Getenv

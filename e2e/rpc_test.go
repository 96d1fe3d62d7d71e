package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/easpb/tfpb"
)

// TestServingSettings deploys services with metadata.rpc settings and warm-up data and checks
// what clients see: batched answers equal to ONNX Runtime's own, warm-up before Running, a
// broken warm-up file or an unbatchable model failing the deploy with a clear message, 450
// from a full queue and 408 past the keepalive with the inference cancelled.
func TestServingSettings(t *testing.T) {
	e := requireEnv(t)
	d := startEasd(t, e, "")
	ref := openModel(t, e, filepath.Join(e.repo, clsModel))
	slow := filepath.Join(e.repo, "e2e", "testdata", "slow.onnx")
	dir := t.TempDir()

	create := func(t *testing.T, svc map[string]any) {
		t.Helper()
		svc["processor"] = "onnxruntime_cpu"
		b, _ := json.Marshal(svc)
		if _, err := d.client.Create(context.Background(), b); err != nil {
			t.Fatalf("create %s: %v", svc["name"], err)
		}
	}
	token := func(name string) string {
		s, err := d.client.Describe(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		return s.AccessToken
	}
	// clsJSON is a plain JSON request for the classifier.
	clsJSON := func(seed int) string {
		x := clsInput(seed)
		nested := make([][][]float32, 3)
		for c := range 3 {
			nested[c] = make([][]float32, 48)
			for y := range 48 {
				nested[c][y] = x[(c*48+y)*192 : (c*48+y+1)*192]
			}
		}
		b, _ := json.Marshal(map[string]any{"inputs": map[string]any{ref.in: [][][][]float32{nested}}})
		return string(b)
	}

	t.Run("batching gives ORT's own answers", func(t *testing.T) {
		create(t, map[string]any{"name": "batched", "model_path": filepath.Join(e.repo, clsModel),
			"metadata": map[string]any{"instance": 1, "rpc": map[string]any{
				"batching": true, "max_batch_size": 8, "max_batch_timeout": 20, "worker_threads": 2}}})
		tok := token("batched")
		d.waitStatus("batched", api.StatusRunning, 2*time.Minute)
		// metadata.rpc reaches the worker as flags.
		pids := workerPIDs(t, "batched")
		if len(pids) != 1 {
			t.Fatalf("%d workers, want 1", len(pids))
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pids[0]))
		args := strings.Join(strings.Split(string(cmdline), "\x00"), " ")
		for _, want := range []string{"--worker-threads 2 ", "--max-queue 64 ", "--batching --max-batch-size 8 --max-batch-timeout 20ms "} {
			if !strings.Contains(args, want) {
				t.Errorf("worker command line %q lacks %q", args, want)
			}
		}
		var wg sync.WaitGroup
		for c := range 8 {
			wg.Go(func() {
				for round := range 3 {
					x := clsInput(100 + 10*c + round)
					want := ref.reference(t, x)
					pb, _ := proto.Marshal(&tfpb.PredictRequest{Inputs: map[string]*tfpb.ArrayProto{ref.in: {
						Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: &tfpb.ArrayShape{Dim: []int64{1, 3, 48, 192}}, FloatVal: x}}})
					req, _ := http.NewRequest("POST", d.url("/api/predict/batched"), bytes.NewReader(pb))
					req.Header.Set("Authorization", tok)
					code, body, err := do(req)
					if err != nil || code != 200 {
						t.Errorf("client %d: %d %v %s", c, code, err, body)
						return
					}
					var resp tfpb.PredictResponse
					if err := proto.Unmarshal(body, &resp); err != nil {
						t.Error(err)
						return
					}
					if got := resp.Outputs[ref.out].GetFloatVal(); !slices.Equal(got, want) {
						t.Errorf("client %d round %d: %v, ORT directly gives %v", c, round, got, want)
					}
				}
			})
		}
		wg.Wait()
		// The batch size histogram counts every answer with the size of its inference.
		m := scrapeMetrics(t, d)
		n := metricValue(t, m, "eas_batch_size_count", `service="batched"`)
		sum := metricValue(t, m, "eas_batch_size_sum", `service="batched"`)
		if n != 24 || sum < n || sum > 8*n {
			t.Errorf("eas_batch_size: count %v, sum %v; want 24 answers with sizes 1–8", n, sum)
		}
		t.Logf("mean batch size seen by 24 answers from 8 clients: %.2f", sum/n)
	})

	t.Run("warm-up runs before the service is running", func(t *testing.T) {
		warm := filepath.Join(dir, "warm.jsonl")
		os.WriteFile(warm, []byte(clsJSON(1)+"\n"+clsJSON(2)+"\n"+clsJSON(3)+"\n"), 0o644)
		create(t, map[string]any{"name": "warm", "model_path": filepath.Join(e.repo, clsModel),
			"warm_up_data_path": warm, "metadata": map[string]any{"instance": 1}})
		d.waitStatus("warm", api.StatusRunning, 2*time.Minute)
		evs, err := d.client.Events(context.Background(), "warm", 0)
		if err != nil {
			t.Fatal(err)
		}
		warmAt, runningAt := -1, -1
		for i, ev := range evs {
			if strings.HasPrefix(ev.Message, "warm-up: 3 request(s) in ") && warmAt < 0 {
				warmAt = i
			}
			if ev.Message == "Service is running" {
				runningAt = i
			}
		}
		if warmAt < 0 || runningAt < warmAt {
			t.Fatalf("want the warm-up event before \"Service is running\"; events:\n%s", d.eventText("warm"))
		}
	})

	t.Run("a broken warm-up file fails the deploy", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.jsonl")
		os.WriteFile(bad, []byte(clsJSON(1)+"\n"+`{"inputs":{"`+ref.in+`":[[1,2]]}}`+"\n"), 0o644)
		create(t, map[string]any{"name": "badwarm", "model_path": filepath.Join(e.repo, clsModel),
			"warm_up_data_path": bad, "metadata": map[string]any{"instance": 1}})
		s := d.waitStatus("badwarm", api.StatusFailed, 2*time.Minute)
		if want := "warm_up_data_path: warmup/bad.jsonl request 2 (line 2) was rejected by the model"; !strings.Contains(s.Message, want) {
			t.Fatalf("message %q does not contain %q", s.Message, want)
		}
	})

	t.Run("batching needs a dynamic batch dimension", func(t *testing.T) {
		create(t, map[string]any{"name": "fixedbatch", "model_path": filepath.Join(e.repo, "e2e", "testdata", "fixed_batch.onnx"),
			"metadata": map[string]any{"instance": 1, "rpc": map[string]any{"batching": true}}})
		s := d.waitStatus("fixedbatch", api.StatusFailed, 2*time.Minute)
		if want := `metadata.rpc.batching: input "x" has a fixed batch dimension 1`; !strings.Contains(s.Message, want) {
			t.Fatalf("message %q does not contain %q", s.Message, want)
		}
	})

	// slowBody keeps the model busy for max(x) loop iterations: 1e7 is minutes.
	slowBody := func(v float64) string { return fmt.Sprintf(`{"inputs":{"x":[[%g,%g,%g,%g]]}}`, v, v, v, v) }
	post := func(ctx context.Context, name, tok, body string) (int, string, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", d.url("/api/predict/"+name), strings.NewReader(body))
		req.Header.Set("Authorization", tok)
		req.Header.Set("Content-Type", "application/json")
		code, b, err := do(req)
		return code, string(b), err
	}

	t.Run("450 when the queue is full", func(t *testing.T) {
		create(t, map[string]any{"name": "queue", "model_path": slow, "metadata": map[string]any{"instance": 1,
			"rpc": map[string]any{"worker_threads": 1, "max_queue_size": 1, "keepalive": 600000}}})
		tok := token("queue")
		d.waitStatus("queue", api.StatusRunning, 2*time.Minute)
		// Six slow requests at once: one runs, one waits, four are refused at once.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		type answer struct {
			code int
			body string
			err  error
		}
		ans := make(chan answer, 6)
		for range 6 {
			go func() {
				code, body, err := post(ctx, "queue", tok, slowBody(1e7))
				ans <- answer{code, body, err}
			}()
		}
		for range 4 {
			a := <-ans
			if a.err != nil || a.code != 450 || !strings.Contains(a.body, "max_queue_size 1") {
				t.Fatalf("answer %d %q %v, want 450 naming max_queue_size", a.code, a.body, a.err)
			}
		}
		// The other two are held (running, waiting) until their clients give up.
		time.Sleep(500 * time.Millisecond)
		cancel()
		for range 2 {
			if a := <-ans; !errors.Is(a.err, context.Canceled) {
				t.Errorf("held request answered %d %q %v; want it still held when its client gave up", a.code, a.body, a.err)
			}
		}
	})

	t.Run("408 past the keepalive cancels the inference", func(t *testing.T) {
		create(t, map[string]any{"name": "keepalive", "model_path": slow, "metadata": map[string]any{"instance": 1,
			"rpc": map[string]any{"worker_threads": 1, "keepalive": 1000}}})
		tok := token("keepalive")
		d.waitStatus("keepalive", api.StatusRunning, 2*time.Minute)
		code, body, err := post(context.Background(), "keepalive", tok, slowBody(1e7))
		if err != nil || code != 408 {
			t.Fatalf("slow request: %d %q %v, want 408", code, body, err)
		}
		// The only worker thread is free again: the 408 request's inference (minutes long)
		// was cancelled, or this one would wait behind it past its own keepalive.
		code, body, err = post(context.Background(), "keepalive", tok, slowBody(1))
		if err != nil || code != 200 || !strings.Contains(body, "[[1,1,1,1]]") {
			t.Fatalf("next request: %d %q %v, want 200", code, body, err)
		}
	})
}

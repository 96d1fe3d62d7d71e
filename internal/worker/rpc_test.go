package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/easpb/tfpb"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// gateProc is a slow model: every Predict waits until release is closed (or, when honourCtx,
// until its context ends) and then doubles "x" like fakeProc. It records how many ran at once
// and the contexts it saw cancelled.
type gateProc struct {
	*fakeProc
	honourCtx bool
	release   chan struct{}

	mu        sync.Mutex
	ctxs      []context.Context // of every Predict, in order
	running   int
	maxRun    int
	cancelled []error // ctx.Err() of the Predicts that ended through their context
}

func newGateProc(honourCtx bool) *gateProc {
	return &gateProc{fakeProc: newFakeProc(), honourCtx: honourCtx, release: make(chan struct{})}
}

func (g *gateProc) Predict(ctx context.Context, in map[string]*tensor.Tensor, out []string) (map[string]*tensor.Tensor, error) {
	g.mu.Lock()
	g.ctxs = append(g.ctxs, ctx)
	g.running++
	g.maxRun = max(g.maxRun, g.running)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.running--
		g.mu.Unlock()
	}()
	var done <-chan struct{}
	if g.honourCtx {
		done = ctx.Done()
	}
	select {
	case <-g.release:
	case <-done:
		g.mu.Lock()
		g.cancelled = append(g.cancelled, ctx.Err())
		g.mu.Unlock()
		return nil, ctx.Err()
	}
	return g.fakeProc.Predict(ctx, in, out)
}

func (g *gateProc) stats() (running, maxRun int, cancelled []error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running, g.maxRun, append([]error(nil), g.cancelled...)
}

// serve loads proc into a server with opts and serves it.
func serve(t *testing.T, opts Options, proc processor.Processor) (*Server, *httptest.Server) {
	t.Helper()
	if opts.BundleDir == "" {
		opts.BundleDir = makeBundle(t, "onnxruntime_cpu")
	}
	opts.Name = "svc"
	opts.Openers = map[string]Opener{"onnxruntime_cpu": func(string, processor.Runtime) (processor.Processor, error) { return proc, nil }}
	s := New(opts)
	if _, err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

// waitUntil polls cond: the states it waits for are reached by goroutines the test started,
// with no deadline of their own.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type answer struct {
	code int
	body string
}

// post sends n requests in the background; their answers arrive on the channel.
func post(t *testing.T, url string, n int, body string) <-chan answer {
	ans := make(chan answer, n)
	for range n {
		go func() {
			code, b, _ := do(t, "POST", url+"/predict", "application/json", body)
			ans <- answer{code, b}
		}()
	}
	return ans
}

func TestQueueFullAnswers450(t *testing.T) {
	g := newGateProc(false)
	s, ts := serve(t, Options{WorkerThreads: 1, MaxQueueSize: 2}, g)
	held := post(t, ts.URL, 3, `{"inputs":{"x":[[1,2]]}}`) // one runs, two wait
	waitUntil(t, "one request runs and two wait", func() bool {
		st := s.Stats()
		return st.Running == 1 && st.Held == 3
	})
	for i := range 4 {
		code, body, _ := do(t, "POST", ts.URL+"/predict", "application/json", `{"inputs":{"x":[[1,2]]}}`)
		if code != StatusQueueFull || !strings.Contains(body, "max_queue_size 2") {
			t.Errorf("request %d beyond the queue: %d %q, want 450 naming max_queue_size", i, code, body)
		}
	}
	// v2 requests share the queue.
	code, body, _ := do(t, "POST", ts.URL+"/predict/v2/models/svc/infer", "application/json",
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,2]}]}`)
	if code != StatusQueueFull || !strings.Contains(body, `{"error":`) {
		t.Errorf("v2 request beyond the queue: %d %q", code, body)
	}
	close(g.release)
	for range 3 {
		if a := <-held; a.code != 200 || !strings.Contains(a.body, "[[2,4]]") {
			t.Errorf("admitted request: %d %q", a.code, a.body)
		}
	}
	if _, maxRun, _ := g.stats(); maxRun != 1 {
		t.Errorf("%d inferences ran at once, worker_threads is 1", maxRun)
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Errorf("stats after every answer: %+v, want zero", st)
	}
}

func TestWorkerThreadsNeverExceeded(t *testing.T) {
	g := newGateProc(false)
	s, ts := serve(t, Options{WorkerThreads: 3, MaxQueueSize: 100}, g)
	ans := post(t, ts.URL, 20, `{"inputs":{"x":[[1,2]]}}`)
	waitUntil(t, "all 20 requests are admitted", func() bool { return s.Stats().Held == 20 })
	waitUntil(t, "3 inferences run", func() bool { r, _, _ := g.stats(); return r == 3 })
	close(g.release)
	for range 20 {
		if a := <-ans; a.code != 200 {
			t.Errorf("request: %d %q", a.code, a.body)
		}
	}
	if _, maxRun, _ := g.stats(); maxRun != 3 {
		t.Errorf("at most %d inferences ran at once, want exactly worker_threads = 3", maxRun)
	}
}

func TestKeepaliveAnswers408AndCancels(t *testing.T) {
	t.Run("inference cancelled", func(t *testing.T) {
		g := newGateProc(true)
		_, ts := serve(t, Options{RequestTimeout: 200 * time.Millisecond}, g)
		code, body, _ := do(t, "POST", ts.URL+"/predict", "application/json", `{"inputs":{"x":[[1,2]]}}`)
		if code != 408 || !strings.Contains(body, "deadline exceeded") {
			t.Fatalf("slow request: %d %q, want 408", code, body)
		}
		_, _, cancelled := g.stats()
		if len(cancelled) != 1 || !errors.Is(cancelled[0], context.DeadlineExceeded) {
			t.Errorf("the processor saw contexts end with %v, want one DeadlineExceeded", cancelled)
		}
	})
	t.Run("time in the queue counts", func(t *testing.T) {
		// The runtime ignores cancellation here: the first request holds the only thread.
		g := newGateProc(false)
		s, ts := serve(t, Options{WorkerThreads: 1, RequestTimeout: 300 * time.Millisecond}, g)
		first := post(t, ts.URL, 1, `{"inputs":{"x":[[1,2]]}}`)
		waitUntil(t, "the first request runs", func() bool { return s.Stats().Running == 1 })
		code, body, _ := do(t, "POST", ts.URL+"/predict", "application/json", `{"inputs":{"x":[[3,4]]}}`)
		if code != 408 || !strings.Contains(body, "waiting in the queue") {
			t.Errorf("queued request: %d %q, want 408 from the queue", code, body)
		}
		// The first one's keepalive passes too before the runtime answers: its result is dropped.
		waitUntil(t, "the first request's keepalive passes", func() bool {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.ctxs[0].Err() != nil
		})
		close(g.release)
		if a := <-first; a.code != 408 {
			t.Errorf("request answered after its keepalive: %d %q, want 408", a.code, a.body)
		}
	})
}

func TestBatchingMergesRequests(t *testing.T) {
	p := newFakeProc()
	s, ts := serve(t, Options{Batching: true, MaxBatchSize: 4, MaxBatchWait: time.Hour, WorkerThreads: 1, MaxQueueSize: 1}, p)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			body := fmt.Sprintf(`{"inputs":{"x":[[%d,%d]]}}`, i, 10*i)
			code, got, h := do(t, "POST", ts.URL+"/predict", "application/json", body)
			if want := fmt.Sprintf("[[%d,%d]]", 2*i, 20*i); code != 200 || !strings.Contains(got, want) {
				t.Errorf("request %d: %d %q, want %s", i, code, got, want)
			}
			if b := h.Get(BatchSizeHeader); b != "4" {
				t.Errorf("request %d: %s %q, want 4 (the gateway's batch size metric)", i, BatchSizeHeader, b)
			}
		})
	}
	wg.Wait()
	p.mu.Lock()
	calls := p.calls
	p.mu.Unlock()
	if calls != 1 {
		t.Errorf("%d inferences for 4 one-row requests with max_batch_size 4, want 1", calls)
	}
	// A bad request is refused alone and does not join a batch.
	if code, body, _ := do(t, "POST", ts.URL+"/predict", "application/json", `{"inputs":{"x":[[1,2,3]]}}`); code != 400 {
		t.Errorf("bad request with batching: %d %q", code, body)
	}
	// Capacity with batching: worker_threads×max_batch_size running + max_queue_size waiting.
	if n := cap(s.lim.admitted); n != 1*4+1 {
		t.Errorf("instance holds %d requests, want 5", n)
	}
}

// fixedProc is fakeProc with a fixed batch dimension.
type fixedProc struct{ *fakeProc }

func (f fixedProc) Signature() processor.Signature {
	return processor.Signature{
		Inputs:  []tensor.Info{{Name: "x", DType: tensor.Float, Shape: []int64{1, 2}}},
		Outputs: []tensor.Info{{Name: "y", DType: tensor.Float, Shape: []int64{1, 2}}},
	}
}

func TestBatchingRefusedForFixedBatch(t *testing.T) {
	p := fixedProc{newFakeProc()}
	s := New(Options{BundleDir: makeBundle(t, "onnxruntime_cpu"), Name: "svc", Batching: true,
		Openers: map[string]Opener{"onnxruntime_cpu": func(string, processor.Runtime) (processor.Processor, error) { return p, nil }}})
	_, err := s.Load(context.Background())
	if err == nil || err.Error() != `metadata.rpc.batching: input "x" has a fixed batch dimension 1` {
		t.Fatalf("Load: %v", err)
	}
	if !p.closed {
		t.Error("the processor was not closed after the refused load")
	}
}

// withWarmUp adds warm-up files (name → content) to a bundle made by makeBundle.
func withWarmUp(t *testing.T, dir string, files ...[2]string) string {
	t.Helper()
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, bundle.WarmUpDir), 0o755)
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, bundle.WarmUpDir, f[0]), []byte(f[1]), 0o644); err != nil {
			t.Fatal(err)
		}
		m.WarmUpData = append(m.WarmUpData, bundle.WarmUpDir+"/"+f[0])
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, bundle.ManifestFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tfRequest is an EAS TensorFlow PredictRequest body, as an EAS SDK writes a .bin warm-up file.
func tfRequest(t *testing.T, shape []int64, vals ...float32) string {
	t.Helper()
	b, err := proto.Marshal(&tfpb.PredictRequest{Inputs: map[string]*tfpb.ArrayProto{
		"x": {Dtype: tfpb.ArrayDataType_DT_FLOAT, ArrayShape: &tfpb.ArrayShape{Dim: shape}, FloatVal: vals},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWarmUpRunsBeforeReady(t *testing.T) {
	p := newFakeProc()
	var path string
	dir := withWarmUp(t, makeBundle(t, "onnxruntime_cpu"),
		[2]string{"a.jsonl", `{"inputs":{"x":[[1,2]]}}` + "\n\n" + `{"inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[1,2,3,4]}]}` + "\n" + `{"inputs":{"x":[[5,6]]}}` + "\n"},
		[2]string{"b.bin", tfRequest(t, []int64{1, 2}, 7.5, 8)},
		[2]string{"c.json", "{\n  \"inputs\": {\"x\": [[0, 0]]}\n}\n"},
	)
	evc, cancel, result := runWorker(t, Options{BundleDir: dir, Name: "svc", Openers: openerFor(p, &path), WarmUp: true,
		Batching: true, MaxBatchWait: time.Millisecond})
	if ev := next(t, evc); ev["event"] != "listening" {
		t.Fatalf("first event %v", ev)
	}
	ev := next(t, evc)
	p.mu.Lock()
	calls := p.calls
	p.mu.Unlock()
	if ev["event"] != "ready" || ev["warmup_requests"] != float64(5) || ev["warmup_ms"] == nil {
		t.Fatalf("event %v, want ready with warmup_requests 5 and warmup_ms", ev)
	}
	if calls != 5 {
		t.Errorf("%d inferences before ready, want the 5 warm-up requests (and no synthetic one)", calls)
	}
	cancel()
	if err := <-result; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestBadWarmUpFailsLoad(t *testing.T) {
	cases := []struct {
		name  string
		files [][2]string
		want  string
	}{
		{"bad json line", [][2]string{{"w.jsonl", `{"inputs":{"x":[[1,2]]}}` + "\n" + `{"inputs":` + "\n"}},
			"warm_up_data_path: warmup/w.jsonl request 2 (line 2): not valid JSON"},
		{"no inputs", [][2]string{{"w.json", `{"x":[[1,2]]}`}}, `warm_up_data_path: warmup/w.json request 1: no "inputs"`},
		{"empty", [][2]string{{"ok.json", `{"inputs":{"x":[[1,2]]}}`}, {"w.bin", " \n"}}, "warm-up file warmup/w.bin is empty"},
		{"undecodable protobuf", [][2]string{{"w.bin", "\x0a\xff\xff"}}, "warmup/w.bin request 1 (protobuf) cannot be decoded"},
		{"rejected by the model", [][2]string{{"w.jsonl", `{"inputs":{"x":[[1,2]]}}` + "\n" + `{"inputs":{"x":[[1,2,3]]}}`}},
			`warmup/w.jsonl request 2 (line 2) was rejected by the model: input "x": shape [1 3]`},
		{"model fails", [][2]string{{"w.bin", tfRequest(t, []int64{1, 2}, 500, 0)}}, "warmup/w.bin request 1 (protobuf) failed: runtime exploded"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newFakeProc()
			var path string
			dir := withWarmUp(t, makeBundle(t, "onnxruntime_cpu"), c.files...)
			evc, _, result := runWorker(t, Options{BundleDir: dir, Name: "svc", Openers: openerFor(p, &path)})
			next(t, evc) // listening
			ev := next(t, evc)
			if msg, _ := ev["error"].(string); ev["event"] != "failed" || !strings.Contains(msg, c.want) {
				t.Fatalf("event %v, want failed with %q", ev, c.want)
			}
			if err := <-result; err == nil {
				t.Error("Run returned nil after a failed warm-up")
			}
		})
	}
}

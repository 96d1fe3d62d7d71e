package worker

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// fakeProc doubles input "x" (float32 [?,2]) into output "y". A first element of 500 makes it
// fail, 408 makes it wait for ctx, and 7 makes it wait for release (after signalling entered).
type fakeProc struct {
	rt      processor.Runtime
	entered chan struct{}
	release chan struct{}

	mu       sync.Mutex
	inFlight int
	closed   bool
	closedIn bool // Close was called while a Predict ran
	calls    int
}

func newFakeProc() *fakeProc {
	return &fakeProc{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (f *fakeProc) Signature() processor.Signature {
	return processor.Signature{
		Inputs:  []tensor.Info{{Name: "x", DType: tensor.Float, Shape: []int64{-1, 2}}},
		Outputs: []tensor.Info{{Name: "y", DType: tensor.Float, Shape: []int64{-1, 2}}},
	}
}

func (f *fakeProc) Predict(ctx context.Context, in map[string]*tensor.Tensor, out []string) (map[string]*tensor.Tensor, error) {
	if err := processor.CheckInputs(f.Signature(), in); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.inFlight++
	f.calls++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	x := in["x"]
	vals := make([]float32, len(x.Data)/4)
	for i := range vals {
		vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(x.Data[4*i:]))
	}
	if len(vals) > 0 {
		switch vals[0] {
		case 500:
			return nil, errors.New("runtime exploded")
		case 408:
			<-ctx.Done()
			return nil, ctx.Err()
		case 7:
			f.entered <- struct{}{}
			<-f.release
		}
	}
	y := &tensor.Tensor{DType: tensor.Float, Shape: x.Shape, Data: make([]byte, len(x.Data))}
	for i, v := range vals {
		binary.LittleEndian.PutUint32(y.Data[4*i:], math.Float32bits(2*v))
	}
	return map[string]*tensor.Tensor{"y": y}, nil
}

func (f *fakeProc) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.closedIn = f.inFlight > 0
	return nil
}

// makeBundle writes a bundle directory for processor with an empty model file.
func makeBundle(t *testing.T, proc string) string {
	t.Helper()
	dir := t.TempDir()
	m := bundle.Manifest{Schema: 1, Processor: proc, ModelEntry: "sub/model.onnx",
		Runtime: processor.Runtime{IntraOpThreads: 2}}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, bundle.ManifestFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "model", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model", "sub", "model.onnx"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// openerFor returns an opener that hands out p and records what it was asked to open.
func openerFor(p *fakeProc, gotPath *string) map[string]Opener {
	return map[string]Opener{"onnxruntime_cpu": func(path string, rt processor.Runtime) (processor.Processor, error) {
		*gotPath = path
		p.rt = rt
		return p, nil
	}}
}

func loadedServer(t *testing.T, opts Options) (*httptest.Server, *fakeProc) {
	t.Helper()
	p := newFakeProc()
	var path string
	opts.BundleDir = makeBundle(t, "onnxruntime_cpu")
	opts.Name = "svc"
	opts.Openers = openerFor(p, &path)
	s := New(opts)
	if _, err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(opts.BundleDir, "model", "sub", "model.onnx"); path != want || p.rt.IntraOpThreads != 2 {
		t.Fatalf("opened %q with %+v; want %q with the bundle's runtime", path, p.rt, want)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts, p
}

func do(t *testing.T, method, url, contentType, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestStatusCodes(t *testing.T) {
	// The keepalive runs from arrival (reading, decoding and queueing included), so it must
	// leave room for the other requests on a busy machine; only the "timeout" case waits it out.
	ts, _ := loadedServer(t, Options{MaxBody: 200, RequestTimeout: 500 * time.Millisecond})
	const js = "application/json"
	cases := []struct {
		name, method, path, ctype, body string
		code                            int
		want                            []string // substrings of the body
	}{
		{"json predict", "POST", "/predict", js, `{"inputs":{"x":[[1,2],[3,4]]}}`, 200, []string{`"y"`, "[[2,4],[6,8]]"}},
		{"sub path", "POST", "/predict/some/sub", "", `{"inputs":{"x":[[0.5,1]]}}`, 200, []string{"[[1,2]]"}},
		{"unknown input", "POST", "/predict", js, `{"inputs":{"q":[[1,2]]}}`, 400, []string{`"q"`, "unknown input"}},
		{"missing input", "POST", "/predict", js, `{"inputs":{}}`, 400, []string{`"x"`, "missing"}},
		{"wrong shape", "POST", "/predict", js, `{"inputs":{"x":[[1,2,3]]}}`, 400, []string{`"x"`, "shape"}},
		{"bad json", "POST", "/predict", js, `{"inputs":`, 400, []string{`"inputs"`}},
		{"processor error", "POST", "/predict", js, `{"inputs":{"x":[[500,0]]}}`, 500, []string{"runtime exploded"}},
		{"timeout", "POST", "/predict", js, `{"inputs":{"x":[[408,0]]}}`, 408, []string{"deadline"}},
		{"too large", "POST", "/predict", js, `{"inputs":{"x":[` + strings.Repeat("[1,2],", 40) + `[1,2]]}}`, 413, []string{"exceeds 200 bytes"}},
		{"healthz", "GET", "/healthz", "", "", 200, nil},
		{"ready", "GET", "/ready", "", "", 200, nil},
		{"predict by GET", "GET", "/predict", "", "", 405, nil},

		{"v2 live", "GET", "/predict/v2/health/live", "", "", 200, nil},
		{"v2 ready", "GET", "/predict/v2/health/ready", "", "", 200, nil},
		{"v2 model ready", "GET", "/predict/v2/models/svc/ready", "", "", 200, nil},
		{"v2 metadata", "GET", "/predict/v2/models/svc", "", "", 200, []string{`"name":"svc"`, `"datatype":"FP32"`, `"shape":[-1,2]`}},
		{"v2 unknown model", "GET", "/predict/v2/models/other", "", "", 404, []string{`"error"`, "other"}},
		{"v2 infer", "POST", "/predict/v2/models/svc/infer", js,
			`{"id":"r1","inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,2]}]}`, 200,
			[]string{`"id":"r1"`, `"model_name":"svc"`, `"name":"y"`, `[2,4]`}},
		{"v2 infer bad input", "POST", "/predict/v2/models/svc/infer", js,
			`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}`, 400, []string{`{"error":`, "shape"}},
		{"v2 infer processor error", "POST", "/predict/v2/models/svc/infer", js,
			`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[500,2]}]}`, 500, []string{`{"error":"runtime exploded"}`}},
		{"v2 infer unknown model", "POST", "/predict/v2/models/nope/infer", js, `{}`, 404, []string{"nope"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body, _ := do(t, c.method, ts.URL+c.path, c.ctype, c.body)
			if code != c.code {
				t.Fatalf("status %d, want %d; body %q", code, c.code, body)
			}
			for _, w := range c.want {
				if !strings.Contains(body, w) {
					t.Errorf("body %q does not contain %q", body, w)
				}
			}
		})
	}
}

func TestNotReadyBeforeLoad(t *testing.T) {
	s := New(Options{Name: "svc"})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	for path, want := range map[string]int{
		"GET /healthz": 200, "GET /ready": 503, "POST /predict": 503, "POST /predict/x": 503,
		"GET /predict/v2/health/live": 200, "GET /predict/v2/health/ready": 503,
		"GET /predict/v2/models/svc": 503, "POST /predict/v2/models/svc/infer": 503,
	} {
		method, p, _ := strings.Cut(path, " ")
		if code, body, _ := do(t, method, ts.URL+p, "", "{}"); code != want {
			t.Errorf("%s: %d %q, want %d", path, code, body, want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	p := newFakeProc()
	var path string
	noManifest := t.TempDir()
	badEntry := makeBundle(t, "onnxruntime_cpu")
	os.WriteFile(filepath.Join(badEntry, bundle.ManifestFile), []byte(`{"schema":1,"processor":"onnxruntime_cpu","model_entry":"../x.onnx"}`), 0o644)
	cases := []struct {
		name, dir string
		openers   map[string]Opener
		want      string
	}{
		{"unavailable processor", makeBundle(t, "pytorch_cpu_1.10"), openerFor(p, &path), "processor pytorch_cpu_1.10 is not available in this worker"},
		{"no manifest", noManifest, openerFor(p, &path), "bundle.json"},
		{"entry escapes model dir", badEntry, openerFor(p, &path), `model_entry "../x.onnx"`},
		{"opener fails", makeBundle(t, "onnxruntime_cpu"), map[string]Opener{"onnxruntime_cpu": func(string, processor.Runtime) (processor.Processor, error) {
			return nil, errors.New("ort: load ONNX Runtime library: no such file")
		}}, "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := New(Options{BundleDir: c.dir, Name: "svc", Openers: c.openers})
			_, err := s.Load(context.Background())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load: %v, want an error containing %q", err, c.want)
			}
			if s.Ready() {
				t.Error("ready after a failed load")
			}
		})
	}
}

// runWorker starts Run on a loopback listener and returns the event lines as they come.
func runWorker(t *testing.T, opts Options) (events <-chan map[string]any, cancel func(), result <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	opts.Events = pw
	evc := make(chan map[string]any, 10)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var ev map[string]any
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = map[string]any{"bad line": sc.Text()}
			}
			evc <- ev
		}
		close(evc)
	}()
	ctx, cancelCtx := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		err := Run(ctx, ln, opts)
		pw.Close()
		res <- err
	}()
	t.Cleanup(cancelCtx)
	return evc, cancelCtx, res
}

func next(t *testing.T, evc <-chan map[string]any) map[string]any {
	t.Helper()
	select {
	case ev, ok := <-evc:
		if !ok {
			t.Fatal("event stream ended")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no event")
	}
	return nil
}

func TestRunEventsAndDrain(t *testing.T) {
	p := newFakeProc()
	var path string
	evc, cancel, result := runWorker(t, Options{BundleDir: makeBundle(t, "onnxruntime_cpu"), Name: "svc", Openers: openerFor(p, &path), WarmUp: true})

	ev := next(t, evc)
	addr, _ := ev["addr"].(string)
	if ev["event"] != "listening" || addr == "" {
		t.Fatalf("first event %v, want listening with an address", ev)
	}
	ev = next(t, evc)
	if _, ok := ev["load_ms"].(float64); ev["event"] != "ready" || !ok {
		t.Fatalf("second event %v, want ready with load_ms", ev)
	}
	p.mu.Lock()
	warmed := p.calls
	p.mu.Unlock()
	if warmed != 1 {
		t.Errorf("warm-up made %d Predict calls, want 1", warmed)
	}
	if code, _, _ := do(t, "GET", "http://"+addr+"/ready", "", ""); code != 200 {
		t.Fatalf("/ready = %d after the ready event", code)
	}

	// A request in flight when the worker is told to stop still gets its answer.
	type answer struct {
		code int
		body string
	}
	ans := make(chan answer, 1)
	go func() {
		code, body, _ := do(t, "POST", "http://"+addr+"/predict", "application/json", `{"inputs":{"x":[[7,1]]}}`)
		ans <- answer{code, body}
	}()
	<-p.entered
	cancel()
	// Shutdown first closes the listener; once new connections are refused, release the request.
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(5 * time.Millisecond)
	}
	close(p.release)
	if a := <-ans; a.code != 200 || !strings.Contains(a.body, "[[14,2]]") {
		t.Errorf("in-flight request during drain: %d %q", a.code, a.body)
	}
	if err := <-result; err != nil {
		t.Errorf("Run: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed || p.closedIn {
		t.Errorf("processor closed=%v, closed during a request=%v; want closed after the drain", p.closed, p.closedIn)
	}
	if _, ok := <-evc; ok {
		t.Error("events after ready besides none expected")
	}
}

func TestRunFailedEvent(t *testing.T) {
	evc, _, result := runWorker(t, Options{BundleDir: makeBundle(t, "tensorflow_cpu_1.15"), Name: "svc"})
	if ev := next(t, evc); ev["event"] != "listening" {
		t.Fatalf("first event %v", ev)
	}
	ev := next(t, evc)
	if ev["event"] != "failed" || ev["error"] != "processor tensorflow_cpu_1.15 is not available in this worker" {
		t.Fatalf("second event %v, want failed naming the processor", ev)
	}
	if err := <-result; err == nil {
		t.Error("Run returned nil after a failed load")
	}
}

func TestReportFailureIsOneLine(t *testing.T) {
	var b strings.Builder
	ReportFailure(&b, fmt.Errorf("line one\nline two"))
	if got := b.String(); strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
		t.Errorf("event %q is not exactly one line", got)
	}
}

func TestProcessorTimeHeader(t *testing.T) {
	ts, _ := loadedServer(t, Options{})
	for _, c := range []struct{ path, body string }{
		{"/predict", `{"inputs":{"x":[[1,2]]}}`},
		{"/predict/v2/models/svc/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,2]}]}`},
	} {
		resp, err := http.Post(ts.URL+c.path, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		v := resp.Header.Get(ProcessorTimeHeader)
		if n, err := strconv.ParseInt(v, 10, 64); resp.StatusCode != 200 || err != nil || n < 0 {
			t.Errorf("%s: status %d, %s = %q: want a non-negative count of microseconds", c.path, resp.StatusCode, ProcessorTimeHeader, v)
		}
		if b := resp.Header.Get(BatchSizeHeader); b != "" {
			t.Errorf("%s: %s %q without batching, want none", c.path, BatchSizeHeader, b)
		}
	}
}

func TestServingRuntime(t *testing.T) {
	off, on := false, true
	cases := []struct {
		name string
		in   processor.Runtime
		spin *bool
	}{
		{"untuned bundle: spinning off", processor.Runtime{}, &off},
		{"plugin settings kept", processor.Runtime{IntraOpThreads: 2}, nil},
		{"plugin chose spinning", processor.Runtime{AllowSpinning: &on}, &on},
	}
	for _, c := range cases {
		got := servingRuntime(c.in)
		if (got.AllowSpinning == nil) != (c.spin == nil) || (got.AllowSpinning != nil && *got.AllowSpinning != *c.spin) {
			t.Errorf("%s: AllowSpinning %v, want %v", c.name, got.AllowSpinning, c.spin)
		}
	}
}

package gateway

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/frame"
)

type fakeServices map[string]string

func (f fakeServices) Lookup(name string) (string, bool) {
	t, ok := f[name]
	return t, ok
}

const token = "tok-123"

// worker is a fake eas-worker: it records what it saw and answers with its name.
type worker struct {
	name string
	srv  *httptest.Server
	hits atomic.Int64
	// hold, when non-nil, makes each request wait for a value (or its context end).
	hold    chan struct{}
	arrived chan struct{}
	mu      sync.Mutex
	last    *http.Request
	body    string
}

func newWorker(t *testing.T, name string, hold bool) *worker {
	t.Helper()
	wk := &worker{name: name, arrived: make(chan struct{}, 100)}
	if hold {
		wk.hold = make(chan struct{})
	}
	wk.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		wk.mu.Lock()
		wk.last, wk.body = r, string(b)
		wk.mu.Unlock()
		wk.hits.Add(1)
		wk.arrived <- struct{}{}
		if wk.hold != nil {
			select {
			case <-wk.hold:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("X-Worker", wk.name)
		io.WriteString(w, wk.name)
	}))
	t.Cleanup(wk.srv.Close)
	return wk
}

func (wk *worker) ep() Endpoint {
	return Endpoint{ID: wk.name, Addr: strings.TrimPrefix(wk.srv.URL, "http://"), Version: 1}
}

func newGateway(t *testing.T, svcs fakeServices) (*Gateway, *httptest.Server) {
	t.Helper()
	g := New(Options{Services: svcs})
	front := httptest.NewServer(g)
	t.Cleanup(func() { front.Close(); g.Close() })
	return g, front
}

func post(t *testing.T, url, auth string, hdr map[string]string, body string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestAuth(t *testing.T) {
	wk := newWorker(t, "w1", false)
	g, front := newGateway(t, fakeServices{"m1": token})
	g.SetEndpoints("m1", []Endpoint{wk.ep()})

	const body = `{"x":[1,2,3]}`
	const date = "Mon, 02 Jan 2006 15:04:05 GMT"
	const ct = "application/octet-stream"
	signedHdr := func(md5sum string) map[string]string {
		return map[string]string{"Content-MD5": md5sum, "Date": date, "Content-Type": ct}
	}
	tests := []struct {
		name     string
		path     string
		auth     string
		hdr      map[string]string
		wantCode int
		wantBody string
	}{
		{"plain ok", "/api/predict/m1", token, nil, 200, "w1"},
		{"plain wrong", "/api/predict/m1", "tok-124", nil, 401, "invalid access token\n"},
		{"plain prefix of token", "/api/predict/m1", "tok", nil, 401, "invalid access token\n"},
		{"missing header", "/api/predict/m1", "", nil, 401, "missing Authorization header\n"},
		{"signed ok", "/api/predict/m1",
			Sign(token, "POST", md5hex(body), ct, date, "/api/predict/m1"), signedHdr(md5hex(body)), 200, "w1"},
		{"signed ok with sub path", "/api/predict/m1/v2/models/m/infer",
			Sign(token, "POST", md5hex(body), ct, date, "/api/predict/m1/v2/models/m/infer"), signedHdr(md5hex(body)), 200, "w1"},
		{"signed ok without Content-MD5", "/api/predict/m1",
			Sign(token, "POST", "", ct, date, "/api/predict/m1"), map[string]string{"Date": date, "Content-Type": ct}, 200, "w1"},
		// EAS does not check the Date against the clock (see authorize): an old date still passes.
		{"signed old date", "/api/predict/m1",
			Sign(token, "POST", md5hex(body), ct, "Thu, 01 Jan 1970 00:00:00 GMT", "/api/predict/m1"),
			map[string]string{"Content-MD5": md5hex(body), "Date": "Thu, 01 Jan 1970 00:00:00 GMT", "Content-Type": ct}, 200, "w1"},
		{"signed wrong token", "/api/predict/m1",
			Sign("other", "POST", md5hex(body), ct, date, "/api/predict/m1"), signedHdr(md5hex(body)), 401, "invalid signature\n"},
		{"signed for another service", "/api/predict/m1",
			Sign(token, "POST", md5hex(body), ct, date, "/api/predict/m2"), signedHdr(md5hex(body)), 401, "invalid signature\n"},
		{"signed date differs from header", "/api/predict/m1",
			Sign(token, "POST", md5hex(body), ct, "Tue, 03 Jan 2006 15:04:05 GMT", "/api/predict/m1"), signedHdr(md5hex(body)), 401, "invalid signature\n"},
		{"signed md5 of another body", "/api/predict/m1",
			Sign(token, "POST", md5hex("other"), ct, date, "/api/predict/m1"), signedHdr(md5hex("other")), 401, "Content-MD5 does not match the body\n"},
		{"signed md5 not hex", "/api/predict/m1",
			Sign(token, "POST", "zz", ct, date, "/api/predict/m1"), signedHdr("zz"), 401, "Content-MD5 does not match the body\n"},
		{"signed not base64", "/api/predict/m1", "EAS !!!", signedHdr(md5hex(body)), 401, "malformed signature\n"},
		// HTTP trims the trailing space, so "EAS " arrives as a (wrong) plain token.
		{"signed empty", "/api/predict/m1", "EAS ", signedHdr(md5hex(body)), 401, "invalid access token\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, got, _ := post(t, front.URL+tt.path, tt.auth, tt.hdr, body)
			if code != tt.wantCode || got != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", code, got, tt.wantCode, tt.wantBody)
			}
			if strings.Contains(got, token) {
				t.Errorf("answer echoes the token: %q", got)
			}
		})
	}
}

func TestNotFoundAndUnavailable(t *testing.T) {
	wk := newWorker(t, "w1", false)
	g, front := newGateway(t, fakeServices{"m1": token, "m2": token, "m3": token})
	g.SetEndpoints("m2", nil)
	g.SetEndpoints("m3", []Endpoint{wk.ep()})
	g.SetEndpoints("m3", []Endpoint{}) // all instances gone
	tests := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/api/predict/nope", 404, "service not found\n"},
		{"/api/predict/", 404, "service not found\n"},
		{"/api/predict//x", 404, "service not found\n"},
		{"/other", 404, "service not found\n"},
		{"/api/predict/m1", 503, "no ready instance\n"}, // never had endpoints
		{"/api/predict/m2", 503, "no ready instance\n"},
		{"/api/predict/m3/sub", 503, "no ready instance\n"},
	}
	for _, tt := range tests {
		code, got, _ := post(t, front.URL+tt.path, token, nil, "x")
		if code != tt.wantCode || got != tt.wantBody {
			t.Errorf("%s: got %d %q, want %d %q", tt.path, code, got, tt.wantCode, tt.wantBody)
		}
	}
	if wk.hits.Load() != 0 {
		t.Errorf("worker got %d requests, want 0", wk.hits.Load())
	}
}

// serveWorker serves h as a worker does: HTTP on a loopback port, and with frame also the
// framed protocol on a unix socket, which the returned Endpoint then names.
func serveWorker(t *testing.T, id string, h http.Handler, withFrame bool) Endpoint {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ep := Endpoint{ID: id, Addr: strings.TrimPrefix(srv.URL, "http://")}
	if withFrame {
		ep.Socket = filepath.Join(t.TempDir(), "w.sock")
		ln, err := net.Listen("unix", ep.Socket)
		if err != nil {
			t.Fatal(err)
		}
		fs := &frame.Server{Handler: h}
		go fs.Serve(ln)
		t.Cleanup(func() { fs.Close() })
	}
	return ep
}

// TestForwarding: what reaches the worker and what comes back, over HTTP and over the
// framed unix socket alike.
func TestForwarding(t *testing.T) {
	for _, transport := range []string{"http", "frame"} {
		t.Run(transport, func(t *testing.T) {
			var seen *http.Request
			var seenBody string
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				seen, seenBody = r, string(b)
				w.Header().Set("Content-Type", "application/x-protobuf")
				w.Header().Set("X-Answer", "yes")
				w.WriteHeader(450) // queue full passes through unchanged
				io.WriteString(w, "queue is full")
			})
			g, front := newGateway(t, fakeServices{"m1": token})
			g.SetEndpoints("m1", []Endpoint{serveWorker(t, "i1", h, transport == "frame")})

			code, body, hdr := post(t, front.URL+"/api/predict/m1/v2/models/m1/infer?a=1&b=2", token, map[string]string{
				"Content-Type":                    "application/octet-stream",
				"Inference-Header-Content-Length": "12",
				"X-EAS-Debug":                     "1",
				"Cookie":                          "secret",
			}, "binary\x00payload")
			if code != 450 || body != "queue is full" || hdr.Get("X-Answer") != "yes" || hdr.Get("Content-Type") != "application/x-protobuf" {
				t.Errorf("answer = %d %q %v", code, body, hdr)
			}
			if seen.URL.Path != "/predict/v2/models/m1/infer" || seen.URL.RawQuery != "a=1&b=2" || seen.Method != "POST" {
				t.Errorf("worker saw %s %s?%s", seen.Method, seen.URL.Path, seen.URL.RawQuery)
			}
			if seenBody != "binary\x00payload" || seen.ContentLength != int64(len(seenBody)) {
				t.Errorf("worker body = %q (len %d)", seenBody, seen.ContentLength)
			}
			for k, want := range map[string]string{
				"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "12",
				"X-Eas-Debug": "1", "Authorization": "", "Cookie": "",
			} {
				if got := seen.Header.Get(k); got != want {
					t.Errorf("worker header %s = %q, want %q", k, got, want)
				}
			}

			// A bare /api/predict/{name} goes to /predict; GET works too.
			req, _ := http.NewRequest("GET", front.URL+"/api/predict/m1", nil)
			req.Header.Set("Authorization", token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if seen.URL.Path != "/predict" || seen.Method != "GET" {
				t.Errorf("worker saw %s %s", seen.Method, seen.URL.Path)
			}
		})
	}
}

// TestFrameSocketGone: a worker whose socket cannot be reached is a dial error, retried on
// another instance; an instance that leaves the ready set has its idle connections closed.
func TestFrameSocketGone(t *testing.T) {
	live := newWorker(t, "live", false)
	g, front := newGateway(t, fakeServices{"m1": token})
	dead := Endpoint{ID: "dead", Addr: deadAddr(t), Socket: filepath.Join(t.TempDir(), "gone.sock")}
	g.SetEndpoints("m1", []Endpoint{dead, live.ep()})
	for i := range 4 {
		if code, b, _ := post(t, front.URL+"/api/predict/m1", token, nil, "payload"); code != 200 || b != "live" {
			t.Fatalf("request %d: %d %q, want the live worker after a retry", i, code, b)
		}
	}

	ok := serveWorker(t, "f1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "framed") }), true)
	g.SetEndpoints("m1", []Endpoint{ok})
	if code, b, _ := post(t, front.URL+"/api/predict/m1", token, nil, "x"); code != 200 || b != "framed" {
		t.Fatalf("framed worker: %d %q", code, b)
	}
	b := (*(*g.pools.Load())["m1"].backends.Load())[0]
	g.SetEndpoints("m1", []Endpoint{live.ep()})
	if code, body, _ := post(t, front.URL+"/api/predict/m1", token, nil, "x"); code != 200 || body != "live" {
		t.Fatalf("after the framed worker left: %d %q", code, body)
	}
	if !b.frame.Closed() {
		t.Error("the framed worker left the ready set but its transport stays open")
	}
}

func TestBodyTooLarge(t *testing.T) {
	wk := newWorker(t, "w1", false)
	g := New(Options{Services: fakeServices{"m1": token}, MaxBodyBytes: 4})
	defer g.Close()
	g.SetEndpoints("m1", []Endpoint{wk.ep()})
	front := httptest.NewServer(g)
	defer front.Close()
	if code, _, _ := post(t, front.URL+"/api/predict/m1", token, nil, "12345"); code != 413 {
		t.Errorf("5-byte body with a 4-byte limit: %d, want 413", code)
	}
	if code, _, _ := post(t, front.URL+"/api/predict/m1", token, nil, "1234"); code != 200 {
		t.Errorf("4-byte body: %d, want 200", code)
	}
}

func TestLeastOutstanding(t *testing.T) {
	slow := newWorker(t, "slow", true)
	fast := newWorker(t, "fast", false)
	g, front := newGateway(t, fakeServices{"m1": token})
	g.SetEndpoints("m1", []Endpoint{slow.ep(), fast.ep()})

	// Send until one request sits in the slow worker (ties go round-robin, so at most
	// two tries).
	done := make(chan string, 2)
	for slow.hits.Load() == 0 {
		go func() { _, b, _ := post(t, front.URL+"/api/predict/m1", token, nil, "x"); done <- b }()
		select {
		case <-slow.arrived:
		case <-fast.arrived:
			<-done
		}
	}
	if got := g.InFlight("m1"); got != 1 {
		t.Errorf("InFlight = %d, want 1 while the slow worker holds a request", got)
	}
	fastBefore := fast.hits.Load()
	for i := 0; i < 10; i++ {
		if code, b, _ := post(t, front.URL+"/api/predict/m1", token, nil, "x"); code != 200 || b != "fast" {
			t.Fatalf("request %d: %d %q, want the idle fast worker", i, code, b)
		}
		<-fast.arrived
	}
	if n := fast.hits.Load() - fastBefore; n != 10 {
		t.Errorf("fast worker got %d of 10", n)
	}
	close(slow.hold)
	if b := <-done; b != "slow" {
		t.Errorf("held request answered %q", b)
	}
	if got := g.InFlight("m1"); got != 0 {
		t.Errorf("InFlight = %d after all answers, want 0", got)
	}
}

func TestTiesRoundRobin(t *testing.T) {
	a, b, c := newWorker(t, "a", false), newWorker(t, "b", false), newWorker(t, "c", false)
	g, front := newGateway(t, fakeServices{"m1": token})
	g.SetEndpoints("m1", []Endpoint{a.ep(), b.ep(), c.ep()})
	for i := 0; i < 30; i++ {
		if code, _, _ := post(t, front.URL+"/api/predict/m1", token, nil, "x"); code != 200 {
			t.Fatalf("code %d", code)
		}
	}
	for _, wk := range []*worker{a, b, c} {
		if n := wk.hits.Load(); n != 10 {
			t.Errorf("worker %s got %d of 30 sequential requests, want 10", wk.name, n)
		}
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestDialErrorRetry(t *testing.T) {
	live := newWorker(t, "live", false)
	g, front := newGateway(t, fakeServices{"m1": token, "m2": token})
	g.SetEndpoints("m1", []Endpoint{{ID: "dead", Addr: deadAddr(t)}, live.ep()})
	g.SetEndpoints("m2", []Endpoint{{ID: "dead", Addr: deadAddr(t)}})
	for i := 0; i < 6; i++ {
		if code, b, _ := post(t, front.URL+"/api/predict/m1", token, nil, "payload"); code != 200 || b != "live" {
			t.Fatalf("request %d: %d %q, want the live worker after a retry", i, code, b)
		}
		live.mu.Lock()
		lb := live.body
		live.mu.Unlock()
		if lb != "payload" {
			t.Fatalf("retried body = %q", lb)
		}
	}
	if code, b, _ := post(t, front.URL+"/api/predict/m2", token, nil, "x"); code != 502 || b != "instance unavailable\n" {
		t.Errorf("only a dead worker: %d %q, want 502", code, b)
	}
}

func TestNoRetryAfterRequestSent(t *testing.T) {
	// This worker reads the request then drops the connection: it may have executed the
	// request, so the gateway must answer 502 without trying the other worker.
	var dropped atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
				dropped.Add(1)
			}
			c.Close()
		}
	}()
	other := newWorker(t, "other", false)
	g, front := newGateway(t, fakeServices{"m1": token})
	g.SetEndpoints("m1", []Endpoint{{ID: "dropper", Addr: ln.Addr().String()}, other.ep()})
	var bad int
	for i := 0; i < 4; i++ {
		code, _, _ := post(t, front.URL+"/api/predict/m1", token, nil, "x")
		if code == 502 {
			bad++
		}
	}
	if int64(bad) != dropped.Load() || bad == 0 {
		t.Errorf("502 answers = %d, requests the dropper read = %d; want equal and > 0", bad, dropped.Load())
	}
	if other.hits.Load()+dropped.Load() != 4 {
		t.Errorf("other got %d, dropper %d: a request was sent twice", other.hits.Load(), dropped.Load())
	}
}

func TestRetryWhenRetiredWorkerDrops(t *testing.T) {
	// A worker withdrawn from the ready set while a request is on its way to it: the
	// draining worker closes the connection without answering, and the gateway resends
	// the request to a current worker instead of answering 502.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	read, retire := make(chan struct{}, 1), make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			read <- struct{}{}
			<-retire
		}
		c.Close()
	}()
	other := newWorker(t, "other", false)
	g, front := newGateway(t, fakeServices{"m1": token})
	g.SetEndpoints("m1", []Endpoint{{ID: "retiring", Addr: ln.Addr().String()}})
	go func() {
		<-read
		g.SetEndpoints("m1", []Endpoint{other.ep()})
		close(retire)
	}()
	if code, b, _ := post(t, front.URL+"/api/predict/m1", token, nil, "payload"); code != 200 || b != "other" {
		t.Fatalf("request on a retired worker: %d %q, want 200 from the current worker", code, b)
	}
	if n := other.hits.Load(); n != 1 {
		t.Errorf("current worker got %d requests, want 1", n)
	}
}

func TestClientCancel(t *testing.T) {
	wk := newWorker(t, "w1", true)
	g, front := newGateway(t, fakeServices{"m1": token})
	g.SetEndpoints("m1", []Endpoint{wk.ep()})

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", front.URL+"/api/predict/m1", strings.NewReader("x"))
	req.Header.Set("Authorization", token)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-wk.arrived
	cancel()
	if err := <-errc; err == nil {
		t.Error("cancelled request succeeded")
	}
	// The worker's request context ends too (the handler returns without hold closing),
	// and the gateway's count drains.
	waitFor(t, "in-flight count to drain", func() bool { return g.InFlight("m1") == 0 })
}

func TestStreamingAnswer(t *testing.T) {
	release := make(chan struct{})
	wsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	}))
	defer wsrv.Close()
	g, front := newGateway(t, fakeServices{"m1": token})
	g.SetEndpoints("m1", []Endpoint{{ID: "i", Addr: strings.TrimPrefix(wsrv.URL, "http://")}})
	req, _ := http.NewRequest("POST", front.URL+"/api/predict/m1", nil)
	req.Header.Set("Authorization", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	line, err := rd.ReadString('\n') // arrives while the worker is still writing
	if err != nil || line != "first\n" {
		t.Fatalf("first line = %q, %v", line, err)
	}
	if g.InFlight("m1") != 1 {
		t.Errorf("InFlight = %d while streaming, want 1", g.InFlight("m1"))
	}
	close(release)
	rest, _ := io.ReadAll(rd)
	if string(rest) != "second\n" {
		t.Errorf("rest = %q", rest)
	}
}

func TestSetEndpointsRace(t *testing.T) {
	a, b := newWorker(t, "a", false), newWorker(t, "b", false)
	g, front := newGateway(t, fakeServices{"m1": token})
	sets := [][]Endpoint{{a.ep()}, {b.ep()}, {a.ep(), b.ep()}, {b.ep(), a.ep()}}
	g.SetEndpoints("m1", sets[0])

	stop := make(chan struct{})
	var setter sync.WaitGroup
	setter.Add(1)
	go func() {
		defer setter.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			g.SetEndpoints("m1", sets[i%len(sets)])
			g.SetEndpoints(fmt.Sprintf("other-%d", i%3), sets[i%len(sets)])
			runtime.Gosched()
		}
	}()
	var wg sync.WaitGroup
	var failures atomic.Int64
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				req, _ := http.NewRequest("POST", front.URL+"/api/predict/m1", strings.NewReader("x"))
				req.Header.Set("Authorization", token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					failures.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
				}
				_ = g.InFlight("m1")
			}
		}()
	}
	wg.Wait()
	close(stop)
	setter.Wait()
	if n := failures.Load(); n != 0 {
		t.Errorf("%d of 100 requests failed while the ready set changed", n)
	}
	if g.InFlight("m1") != 0 {
		t.Errorf("InFlight = %d after all answers", g.InFlight("m1"))
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		wk := newWorkerNoCleanup("w")
		defer wk.srv.Close()
		g := New(Options{Services: fakeServices{"m1": token}})
		front := httptest.NewServer(g)
		g.SetEndpoints("m1", []Endpoint{wk.ep()})
		cl := &http.Client{Transport: &http.Transport{}}
		for i := 0; i < 20; i++ {
			req, _ := http.NewRequest("POST", front.URL+"/api/predict/m1", strings.NewReader("x"))
			req.Header.Set("Authorization", token)
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		cl.CloseIdleConnections()
		front.Close()
		g.Close()
	}()
	waitFor(t, fmt.Sprintf("goroutines to return to %d", base), func() bool { return runtime.NumGoroutine() <= base })
}

func newWorkerNoCleanup(name string) *worker {
	wk := &worker{name: name}
	wk.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, name)
	}))
	return wk
}

// waitFor polls cond until it holds; the deadline only bounds a broken test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("timed out waiting for %s\n%s", what, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readSpy records whether anyone read the body.
type readSpy struct {
	r    io.Reader
	read bool
}

func (s *readSpy) Read(p []byte) (int, error) { s.read = true; return s.r.Read(p) }

func TestUnauthorizedBodyNotRead(t *testing.T) {
	g := New(Options{Services: fakeServices{"m1": token}})
	defer g.Close()
	for _, auth := range []string{"", "wrong", Sign("wrong", "POST", "", "", "", "/api/predict/m1")} {
		spy := &readSpy{r: strings.NewReader("a large body")}
		req := httptest.NewRequest("POST", "/api/predict/m1", spy)
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		if rec.Code != 401 || spy.read {
			t.Errorf("auth %q: code %d, body read %v; want 401 before reading", auth, rec.Code, spy.read)
		}
	}
}

// A worker that answers before reading the body leaves the transport still writing it
// after RoundTrip returns; the pooled buffer must not be reused meanwhile (-race checks).
func TestEarlyAnswerKeepsBodyBuffer(t *testing.T) {
	wsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "refused early")
	}))
	defer wsrv.Close()
	g, front := newGateway(t, fakeServices{"m1": token})
	g.SetEndpoints("m1", []Endpoint{{ID: "i", Addr: strings.TrimPrefix(wsrv.URL, "http://")}})
	big := strings.Repeat("x", 1<<20)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 3; j++ {
				req, _ := http.NewRequest("POST", front.URL+"/api/predict/m1", strings.NewReader(big))
				req.Header.Set("Authorization", token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 400 || string(b) != "refused early" {
					t.Errorf("answer %d %q", resp.StatusCode, b)
				}
			}
		}()
	}
	wg.Wait()
}

package frame

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// echo answers with what it received: method, target, a header and the body.
func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	switch r.URL.Path {
	case "/status":
		http.Error(w, "teapot", http.StatusTeapot)
		return
	case "/block":
		<-r.Context().Done()
		return
	case "/panic":
		panic("handler bug")
	case "/slow":
		time.Sleep(200 * time.Millisecond)
	}
	w.Header().Set("Content-Type", "application/x-echo")
	w.Header()["X-Multi"] = []string{"a", "b"}
	w.Header().Set("Content-Length", "999") // stale on purpose: the frame carries the truth
	fmt.Fprintf(w, "%s %s %s \"%d\"|", r.Method, r.URL.RequestURI(), r.Header.Get("X-Eas-Test"), r.ContentLength)
	w.Write(b)
}

func start(t *testing.T, h http.HandlerFunc, maxBody int64) (*Server, *Transport, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "w.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, MaxBody: maxBody, WatchAfter: 10 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	tr := NewTransport(path)
	t.Cleanup(func() {
		tr.Close()
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, tr, path
}

func send(t *testing.T, tr *Transport, ctx context.Context, method, target string, body []byte) (*http.Response, string, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, method, "http://worker"+target, bytes.NewReader(body))
	req.Header.Set("X-Eas-Test", "yes")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), nil
}

func TestRoundTrips(t *testing.T) {
	_, tr, _ := start(t, echo, 1<<20)
	big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 200_000) // 800 KB
	for _, tt := range []struct {
		name, method, target string
		body                 []byte
		status               int
		want                 string // prefix of the answer
	}{
		{"post", "POST", "/predict", []byte("hello"), 200, `POST /predict yes "5"|hello`},
		{"query and empty body", "GET", "/predict/v2/models/m?x=1&y=%20", nil, 200, `GET /predict/v2/models/m?x=1&y=%20 yes "0"|`},
		{"large body", "POST", "/p", big, 200, `POST /p yes "800000"|`},
		{"status and error text", "POST", "/status", nil, 418, "teapot"},
		{"too large", "POST", "/p", make([]byte, 1<<20+1), 413, "request body too large"},
		{"usable after 413", "POST", "/p", []byte("x"), 200, `POST /p yes "1"|x`},
	} {
		resp, got, err := send(t, tr, context.Background(), tt.method, tt.target, tt.body)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if resp.StatusCode != tt.status || !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s: %d %.80q, want %d %.80q", tt.name, resp.StatusCode, got, tt.status, tt.want)
		}
		if tt.status == 200 {
			if resp.Header.Get("Content-Type") != "application/x-echo" || strings.Join(resp.Header["X-Multi"], ",") != "a,b" ||
				resp.Header.Get("Content-Length") != "" || resp.ContentLength != int64(len(got)) {
				t.Errorf("%s: header %v, length %d", tt.name, resp.Header, resp.ContentLength)
			}
		}
		if tt.name == "large body" && !bytes.Equal([]byte(got[len(tt.want):]), big) {
			t.Errorf("large body: answer differs from the request body")
		}
	}
	// Header names arrive canonical, however the sender spelled them.
	req, _ := http.NewRequest("POST", "http://worker/p", nil)
	req.Header["x-eas-test"] = []string{"lower"}
	if resp, err := tr.RoundTrip(req); err != nil {
		t.Fatal(err)
	} else if b, _ := io.ReadAll(resp.Body); !strings.HasPrefix(string(b), `POST /p lower`) {
		t.Errorf("non-canonical header name: %q", b)
	}
	if n := len(tr.idleList); n != 1 {
		t.Errorf("%d idle connections after sequential requests, want 1 (reused)", n)
	}
}

func TestRequestBodies(t *testing.T) {
	s, tr, _ := start(t, echo, 1<<20)
	for _, tt := range []struct {
		name    string
		body    io.Reader
		length  int64
		stale   bool   // the server dropped the idle connection first: the body is resent
		want    string // answer suffix; "" when RoundTrip must fail
		wantErr string
	}{
		{"known length", strings.NewReader("abc"), 3, false, `"3"|abc`, ""},
		{"unknown length is read first", io.MultiReader(strings.NewReader("ab"), strings.NewReader("cd")), -1, false, `"4"|abcd`, ""},
		{"unknown length resent", io.MultiReader(strings.NewReader("xyz")), -1, true, `"3"|xyz`, ""},
		{"known length resent", strings.NewReader("resent"), 6, true, `"6"|resent`, ""},
		{"shorter than its length", io.MultiReader(strings.NewReader("ab")), 5, false, "", "request body has 2 bytes, its length says 5"},
		{"usable afterwards", strings.NewReader("ok"), 2, false, `"2"|ok`, ""},
	} {
		if tt.stale {
			s.mu.Lock()
			for c := range s.conns {
				c.Close()
			}
			s.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
		req, _ := http.NewRequest("POST", "http://worker/p", tt.body)
		req.ContentLength = tt.length
		resp, err := tr.RoundTrip(req)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: %v, want error %q", tt.name, err, tt.wantErr)

			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if !strings.HasSuffix(string(b), tt.want) {
			t.Errorf("%s: answer %q, want suffix %q", tt.name, b, tt.want)
		}
	}
}

func TestConcurrentRequests(t *testing.T) {
	_, tr, _ := start(t, echo, 1<<20)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				body := fmt.Sprintf("g%d-i%d", g, i)
				resp, got, err := send(t, tr, context.Background(), "POST", "/predict", []byte(body))
				if err != nil || resp.StatusCode != 200 || !strings.HasSuffix(got, "|"+body) {
					t.Errorf("%s: %v %q", body, err, got)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestCancelClosesTheRequest(t *testing.T) {
	_, tr, _ := start(t, echo, 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// /block answers only when the server closes: only the cancellation can end this.
	if _, _, err := send(t, tr, ctx, "POST", "/block", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled request: %v, want context.DeadlineExceeded", err)
	}
	if _, got, err := send(t, tr, context.Background(), "POST", "/p", []byte("after")); err != nil || !strings.HasSuffix(got, "|after") {
		t.Errorf("request after a cancelled one: %v %q", err, got)
	}
}

// TestClientGoneCancelsTheRequest: a request still running when its client goes away has its
// context cancelled, as net/http does; a slow request whose client waits is answered on the
// same connection as usual.
func TestClientGoneCancelsTheRequest(t *testing.T) {
	cancelled := make(chan struct{}, 1)
	h := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			select {
			case <-r.Context().Done():
				cancelled <- struct{}{}
			case <-time.After(time.Minute):
			}
			return
		}
		echo(w, r)
	}
	_, tr, _ := start(t, h, 1<<20)
	if resp, got, err := send(t, tr, context.Background(), "POST", "/slow", []byte("slow")); err != nil || resp.StatusCode != 200 || !strings.HasSuffix(got, "|slow") {
		t.Fatalf("slow request: %v %q", err, got)
	}
	if _, got, err := send(t, tr, context.Background(), "POST", "/p", []byte("next")); err != nil || !strings.HasSuffix(got, "|next") {
		t.Fatalf("request after a watched one: %v %q", err, got)
	}
	if n := len(tr.idleList); n != 1 {
		t.Errorf("%d idle connections, want the one reused", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := send(t, tr, ctx, "POST", "/wait", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request given up by its client: %v", err)
	}
	select {
	case <-cancelled:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler's context was not cancelled when the client went away")
	}
}

// TestHandlerPanicCostsTheConnection: a panicking handler fails its request (the connection
// closes without an answer) and the server goes on serving, as net/http does.
func TestHandlerPanicCostsTheConnection(t *testing.T) {
	_, tr, _ := start(t, echo, 1<<20)
	if _, _, err := send(t, tr, context.Background(), "POST", "/panic", nil); err == nil {
		t.Fatal("a request whose handler panicked got an answer")
	}
	if _, got, err := send(t, tr, context.Background(), "POST", "/p", []byte("still here")); err != nil || !strings.HasSuffix(got, "|still here") {
		t.Fatalf("request after a handler panic: %v %q", err, got)
	}
}

func TestStaleIdleConnectionIsReplaced(t *testing.T) {
	s, tr, _ := start(t, echo, 1<<20)
	if _, _, err := send(t, tr, context.Background(), "POST", "/p", nil); err != nil {
		t.Fatal(err)
	}
	// The server drops its idle connection (as a restarting worker would).
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	if _, got, err := send(t, tr, context.Background(), "POST", "/p", []byte("again")); err != nil || !strings.HasSuffix(got, "|again") {
		t.Fatalf("request on a dead idle connection: %v %q, want a transparent retry", err, got)
	}
}

// waitActive waits until s is serving a request.
func waitActive(t *testing.T, s *Server) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		s.mu.Lock()
		active := slices.Contains(slices.Collect(maps.Values(s.conns)), true)
		s.mu.Unlock()
		if active {
			return
		}
	}
	t.Fatal("no request reached the server")
}

func TestShutdownDrains(t *testing.T) {
	// The slow request's arrival is signalled by the handler: waitActive could still see the
	// first request's connection marked active for a moment after its answer.
	slowArrived := make(chan struct{}, 1)
	s, tr, path := start(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			slowArrived <- struct{}{}
		}
		echo(w, r)
	}, 1<<20)
	// An idle connection, and a request in flight.
	if _, _, err := send(t, tr, context.Background(), "POST", "/p", nil); err != nil {
		t.Fatal(err)
	}
	tr2 := NewTransport(path)
	defer tr2.Close()
	answered := make(chan string, 1)
	go func() {
		_, got, err := send(t, tr2, context.Background(), "POST", "/slow", []byte("in flight"))
		if err != nil {
			got = err.Error()
		}
		answered <- got
	}()
	select {
	case <-slowArrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request never reached the server")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-answered:
		if !strings.HasSuffix(got, "|in flight") {
			t.Errorf("in-flight request during shutdown: %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the in-flight request was never answered")
	}
	_, _, err := send(t, NewTransport(path), context.Background(), "POST", "/p", nil)
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Errorf("request after shutdown: %v, want a dial error (safe to send elsewhere)", err)
	}
}

func TestShutdownGivesUpAtDeadline(t *testing.T) {
	s, tr, _ := start(t, echo, 1<<20)
	go send(t, tr, context.Background(), "POST", "/block", nil)
	waitActive(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a request that never ends: %v", err)
	}
}

func TestMalformedFramesCloseTheConnection(t *testing.T) {
	_, _, path := start(t, echo, 1<<20)
	for _, raw := range [][]byte{
		{9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},                  // unknown version
		{1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0},      // meta too large
		{1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0},            // truncated request line
		{1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 'x'}, // a header name without value... and EOF
	} {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(raw)
		c.(*net.UnixConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || len(b) != 0 {
			t.Errorf("frame % x: answer %q, err %v; want the connection closed without an answer", raw, b, err)
		}
	}
}

// BenchmarkLargeBody sends a 2 MB body (a ResNet-50 input as JSON is about that size) and
// reads a small answer.
func BenchmarkLargeBody(b *testing.B) {
	path := filepath.Join(b.TempDir(), "w.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	}), MaxBody: 8 << 20}
	go s.Serve(ln)
	defer s.Close()
	tr := NewTransport(path)
	defer tr.Close()
	body := bytes.Repeat([]byte("0.123456, "), 200_000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("POST", "http://worker/p", bytes.NewReader(body))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
	}
}

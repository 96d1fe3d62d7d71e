package loadgen

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentile(t *testing.T) {
	oneTo100 := make([]time.Duration, 100)
	for i := range oneTo100 {
		oneTo100[i] = ms(100 - i) // unsorted on purpose
	}
	tests := []struct {
		name string
		in   []time.Duration
		want Summary
	}{
		{"empty", nil, Summary{}},
		{"one", []time.Duration{ms(7)}, Summary{Count: 1, Min: ms(7), Mean: ms(7), P50: ms(7), P90: ms(7), P99: ms(7), Max: ms(7)}},
		{"1..100ms", oneTo100, Summary{Count: 100, Min: ms(1), Mean: 50500 * time.Microsecond, P50: ms(50), P90: ms(90), P99: ms(99), Max: ms(100)}},
		// Nearest rank on 10 values: p50 → rank 5, p90 → rank 9, p99 → rank 10.
		{"ten with an outlier", []time.Duration{ms(1), ms(2), ms(3), ms(4), ms(5), ms(6), ms(7), ms(8), ms(9), ms(1000)},
			Summary{Count: 10, Min: ms(1), Mean: 104500 * time.Microsecond, P50: ms(5), P90: ms(9), P99: ms(1000), Max: ms(1000)}},
		// Three values: p50 → rank ceil(1.5)=2, p90 → rank ceil(2.7)=3.
		{"three", []time.Duration{ms(30), ms(10), ms(20)}, Summary{Count: 3, Min: ms(10), Mean: ms(20), P50: ms(20), P90: ms(30), P99: ms(30), Max: ms(30)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Summarize(tt.in); got != tt.want {
				t.Errorf("Summarize = %+v\nwant        %+v", got, tt.want)
			}
		})
	}
	// Exact ranks at sizes where floating point would round the wrong way.
	thousand := make([]time.Duration, 1000)
	for i := range thousand {
		thousand[i] = time.Duration(i + 1)
	}
	for p, want := range map[float64]time.Duration{50: 500, 90: 900, 99: 990, 99.9: 999, 100: 1000, 0.1: 1} {
		if got := Percentile(thousand, p); got != want {
			t.Errorf("Percentile(1..1000, %v) = %d, want %d", p, got, want)
		}
	}
}

// stepClock is a clock that only moves when told to.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *stepClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestRunScripted drives a server that answers request i (from 1) with a scripted status
// and advances a fake clock by a scripted latency, so counts and percentiles are exact.
func TestRunScripted(t *testing.T) {
	clock := &stepClock{t: time.Unix(1_700_000_000, 0)}
	var n atomic.Int64
	var gotAuth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1))
		gotAuth.Store(r.Header.Get("Authorization") + "|" + r.Header.Get("Content-Type"))
		b, _ := io.ReadAll(r.Body)
		if string(b) != "payload" {
			t.Errorf("request %d body %q", i, b)
		}
		clock.add(ms(i)) // request i takes i ms
		switch {
		case i%10 == 0:
			http.Error(w, "queue is full", 450)
		case i%25 == 0:
			http.Error(w, "rate limit exceeded", http.StatusTooManyRequests)
		default:
			io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()

	res, err := Run(context.Background(), Options{
		Request: Request{URL: srv.URL, Body: []byte("payload"), ContentType: "application/json",
			Header: http.Header{"Authorization": {"tok"}}},
		Concurrency: 1, Requests: 100, Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	// 10,20,…,100 → 450 (10); 25 and 75 → 429 (50 and 100 are already 450).
	wantCodes := map[int]int{200: 88, 450: 10, 429: 2}
	if len(res.Codes) != len(wantCodes) {
		t.Errorf("codes %v, want %v", res.Codes, wantCodes)
	}
	for c, k := range wantCodes {
		if res.Codes[c] != k {
			t.Errorf("code %d: %d answers, want %d (all: %v)", c, res.Codes[c], k, res.Codes)
		}
	}
	if res.Requests != 100 || res.OK() != 88 || res.Failed() != 12 || len(res.Errors) != 0 {
		t.Errorf("requests %d ok %d failed %d errors %v; want 100, 88, 12, none", res.Requests, res.OK(), res.Failed(), res.Errors)
	}
	want := Summary{Count: 100, Min: ms(1), Mean: 50500 * time.Microsecond, P50: ms(50), P90: ms(90), P99: ms(99), Max: ms(100)}
	if res.Latency != want {
		t.Errorf("latency %+v\nwant    %+v", res.Latency, want)
	}
	if res.Elapsed != ms(5050) || res.Throughput != 100/5.05 {
		t.Errorf("elapsed %s throughput %v; want 5.05s and %v/s", res.Elapsed, res.Throughput, 100/5.05)
	}
	if res.Samples["450"] != "queue is full" || res.Samples["429"] != "rate limit exceeded" {
		t.Errorf("samples %q", res.Samples)
	}
	if got := gotAuth.Load(); got != "tok|application/json" {
		t.Errorf("server saw Authorization|Content-Type %q", got)
	}
}

func TestRunConcurrentCount(t *testing.T) {
	var n, peak, cur atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if c <= p || peak.CompareAndSwap(p, c) {
				break
			}
		}
		n.Add(1)
		time.Sleep(time.Millisecond)
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Options{Request: Request{URL: srv.URL}, Concurrency: 8, Requests: 203})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 203 || res.Codes[200] != 203 || n.Load() != 203 || res.Latency.Count != 203 {
		t.Errorf("sent %d, 200s %d, server saw %d, latencies %d; want 203 each", res.Requests, res.Codes[200], n.Load(), res.Latency.Count)
	}
	if peak.Load() > 8 {
		t.Errorf("%d requests in flight at once with 8 workers", peak.Load())
	}
}

func TestRunDuration(t *testing.T) {
	clock := &stepClock{t: time.Unix(1_700_000_000, 0)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { clock.add(ms(10)) }))
	defer srv.Close()
	res, err := Run(context.Background(), Options{Request: Request{URL: srv.URL}, Duration: time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	// Requests start at 0, 10, …, 990 ms of the fake clock: 100 of them.
	if res.Requests != 100 || res.Elapsed != time.Second {
		t.Errorf("%d requests in %s, want 100 in 1s", res.Requests, res.Elapsed)
	}
}

func TestRunErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()

	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)

	tests := []struct {
		name, url, kind string
	}{
		{"refused", dead, "connection refused"},
		{"hung server", hang.URL, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Run(context.Background(), Options{Request: Request{URL: tt.url}, Concurrency: 2, Requests: 4, Timeout: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != 4 || res.Errors[tt.kind] != 4 || res.OK() != 0 || res.Latency.Count != 0 {
				t.Errorf("requests %d errors %v ok %d; want 4 %q errors", res.Requests, res.Errors, res.OK(), tt.kind)
			}
			if res.Samples[tt.kind] == "" {
				t.Errorf("no sample error text for %q", tt.kind)
			}
		})
	}
}

func TestRunCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 5 {
			cancel()
		}
	}))
	defer srv.Close()
	res, err := Run(ctx, Options{Request: Request{URL: srv.URL}, Requests: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests >= 1000 || res.Requests < 4 {
		t.Errorf("cancelled run sent %d requests", res.Requests)
	}
}

func TestOptionErrors(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		says string
	}{
		{"no url", Options{Requests: 1}, "URL is required"},
		{"neither", Options{Request: Request{URL: "http://x"}}, "either a number of requests or a duration"},
		{"both", Options{Request: Request{URL: "http://x"}, Requests: 1, Duration: time.Second}, "either"},
		{"negative", Options{Request: Request{URL: "http://x"}, Requests: -1}, "requests must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %v, want one saying %q", err, tt.says)
			}
		})
	}
}

func TestContentTypeFor(t *testing.T) {
	tests := []struct {
		path, body, want string
	}{
		{"req.json", "x", "application/json"},
		{"req.pb", "{", "application/octet-stream"},
		{"req", "  {\"inputs\":1}", "application/json"},
		{"req", "[1]", "application/json"},
		{"req.dat", "\x0a\x03abc", "application/octet-stream"},
		{"req.TXT", "hello", "text/plain"},
	}
	for _, tt := range tests {
		if got := ContentTypeFor(tt.path, []byte(tt.body)); got != tt.want {
			t.Errorf("ContentTypeFor(%q, %q) = %q, want %q", tt.path, tt.body, got, tt.want)
		}
	}
}

package gateway

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu       sync.Mutex
	requests []observed
	retries  map[string]int
	limited  map[string]int
}

type observed struct {
	service   string
	code      int
	processor time.Duration
	batch     int
}

func (r *recorder) ObserveRequest(service string, code int, total, processor time.Duration, batch int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, observed{service, code, processor, batch})
}

func (r *recorder) Retry(service string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retries[service]++
}

func (r *recorder) RateLimited(service string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.limited[service]++
}

func (r *recorder) codes(service string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, o := range r.requests {
		if o.service == service {
			out = append(out, o.code)
		}
	}
	return out
}

func newObservedGateway(t *testing.T, svcs fakeServices, clock *fakeClock) (*Gateway, *httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{retries: map[string]int{}, limited: map[string]int{}}
	opts := Options{Services: svcs, Observer: rec}
	if clock != nil {
		opts.Now = clock.Now
	}
	g := New(opts)
	front := httptest.NewServer(g)
	t.Cleanup(func() { front.Close(); g.Close() })
	return g, front, rec
}

func TestRateLimit(t *testing.T) {
	wk := newWorker(t, "w1", false)
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	g, front, rec := newObservedGateway(t, fakeServices{"m1": token, "free": token}, clock)
	g.SetEndpoints("m1", []Endpoint{wk.ep()})
	g.SetEndpoints("free", []Endpoint{wk.ep()})
	g.SetRateLimit("m1", 3)

	send := func(svc, auth string) int {
		code, body, hdr := post(t, front.URL+"/api/predict/"+svc, auth, nil, "x")
		if code == http.StatusTooManyRequests {
			if !strings.Contains(body, "rate limit exceeded") || !strings.Contains(body, "3 requests per second") {
				t.Errorf("429 body %q does not say which limit was hit", body)
			}
			if hdr.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		}
		return code
	}
	// The clock stands still: a full bucket holds exactly 3 requests.
	// Unauthenticated requests come first and must not use any of them.
	for range 10 {
		if code := send("m1", "wrong"); code != 401 {
			t.Fatalf("wrong token: %d, want 401", code)
		}
	}
	var got []int
	for range 5 {
		got = append(got, send("m1", token))
	}
	want := []int{200, 200, 200, 429, 429}
	if !slices.Equal(got, want) {
		t.Fatalf("codes at a standing clock %v, want %v", got, want)
	}
	// Another service is not limited.
	for range 5 {
		if code := send("free", token); code != 200 {
			t.Fatalf("service without rate_limit: %d", code)
		}
	}
	// At 3 QPS, 0.35 s refills one token (and a bit).
	clock.add(350 * time.Millisecond)
	if got := []int{send("m1", token), send("m1", token)}; !slices.Equal(got, []int{200, 429}) {
		t.Fatalf("after 0.35 s: %v, want [200 429]", got)
	}
	// A long pause refills to the burst, never beyond.
	clock.add(time.Hour)
	got = got[:0]
	for range 4 {
		got = append(got, send("m1", token))
	}
	if !slices.Equal(got, []int{200, 200, 200, 429}) {
		t.Fatalf("after an hour: %v, want [200 200 200 429]", got)
	}
	// Setting the same limit again keeps the bucket (still empty); changing it refills.
	g.SetRateLimit("m1", 3)
	if code := send("m1", token); code != 429 {
		t.Fatalf("same limit set again: %d, want 429 (bucket kept)", code)
	}
	g.SetRateLimit("m1", 0)
	for range 5 {
		if code := send("m1", token); code != 200 {
			t.Fatalf("limit removed: %d, want 200", code)
		}
	}
	rec.mu.Lock()
	limited := rec.limited["m1"]
	rec.mu.Unlock()
	if limited != 5 {
		t.Errorf("Observer.RateLimited: %d calls, want 5", limited)
	}
}

func TestObserver(t *testing.T) {
	wk := newWorker(t, "w1", false)
	reporting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(ProcessorTimeHeader, "1234")
		w.Header().Set(BatchSizeHeader, "4")
		w.WriteHeader(http.StatusBadRequest)
	}))
	t.Cleanup(reporting.Close)
	g, front, rec := newObservedGateway(t, fakeServices{"m1": token, "m2": token, "idle": token}, nil)
	g.SetEndpoints("m1", []Endpoint{{ID: "dead", Addr: deadAddr(t)}, wk.ep()})
	g.SetEndpoints("m2", []Endpoint{{ID: "r", Addr: strings.TrimPrefix(reporting.URL, "http://")}})

	post(t, front.URL+"/api/predict/nosuch", token, nil, "x")
	post(t, front.URL+"/api/predict/m1", "bad", nil, "x")
	for range 4 {
		if code, _, _ := post(t, front.URL+"/api/predict/m1", token, nil, "x"); code != 200 {
			t.Fatalf("m1: %d", code)
		}
	}
	post(t, front.URL+"/api/predict/m2", token, nil, "x")
	post(t, front.URL+"/api/predict/idle", token, nil, "x")

	if got := rec.codes("m1"); !slices.Equal(got, []int{401, 200, 200, 200, 200}) {
		t.Errorf("m1 codes %v, want [401 200 200 200 200]", got)
	}
	if got := rec.codes("idle"); !slices.Equal(got, []int{503}) {
		t.Errorf("idle codes %v, want [503]", got)
	}
	if got := rec.codes("nosuch"); len(got) != 0 {
		t.Errorf("an unknown service was reported: %v", got)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	// Least-outstanding ties go round-robin, so the dead instance is picked about half
	// the time; every such pick is resent to the live one.
	if rec.retries["m1"] == 0 {
		t.Error("no retry reported although one instance refuses connections")
	}
	var m2 *observed
	for i := range rec.requests {
		if rec.requests[i].service == "m2" {
			m2 = &rec.requests[i]
		}
	}
	if m2 == nil || m2.code != 400 || m2.processor != 1234*time.Microsecond || m2.batch != 4 {
		t.Errorf("m2 observed %+v, want code 400, processor 1.234ms, batch 4", m2)
	}
	for _, o := range rec.requests {
		if o.service == "m1" && (o.processor != -1 || o.batch != 0) {
			t.Errorf("a worker that reports nothing gave processor %v batch %d, want -1 and 0", o.processor, o.batch)
		}
	}
}

func TestEachInFlight(t *testing.T) {
	wk := newWorker(t, "w1", true)
	g, front := newGateway(t, fakeServices{"m1": token})
	g.SetEndpoints("m1", []Endpoint{wk.ep()})
	done := make(chan struct{})
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			req, _ := http.NewRequest("POST", front.URL+"/api/predict/m1", strings.NewReader("x"))
			req.Header.Set("Authorization", token)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	<-wk.arrived
	<-wk.arrived
	seen := map[string]int{}
	g.EachInFlight(func(s string, n int) { seen[s] = n })
	if seen["m1"] != 2 || len(seen) != 1 {
		t.Errorf("EachInFlight %v, want m1=2", seen)
	}
	close(wk.hold)
	<-done
	<-done
}

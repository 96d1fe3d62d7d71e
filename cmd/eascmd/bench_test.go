package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/openeas/openeas/internal/api"
)

// predictServer is a fake gateway: every 4th request gets 450, the rest 200; it records
// the credentials and body type it saw.
type predictServer struct {
	n    atomic.Int64
	mu   sync.Mutex
	seen map[string]int // "PATH AUTH CONTENT-TYPE BODY" → count
}

func (p *predictServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.seen[r.URL.Path+" "+r.Header.Get("Authorization")+" "+r.Header.Get("Content-Type")+" "+r.Header.Get("X-Eas-Request-Format")+" "+string(b)]++
	p.mu.Unlock()
	if p.n.Add(1)%4 == 0 {
		http.Error(w, "queue is full", 450)
		return
	}
	io.WriteString(w, `{"outputs":{}}`)
}

func TestBench(t *testing.T) {
	f, srv := newFakeServer(t)
	ps := &predictServer{seen: map[string]int{}}
	predict := httptest.NewServer(ps)
	t.Cleanup(predict.Close)
	f.services["mlp"] = api.Service{ServiceName: "mlp", Status: "Running", AccessToken: "svc-token",
		InternetEndpoint: predict.URL + "/api/predict/mlp"}
	data := writeFile(t, "req.json", `{"inputs":{"x":[[1,2]]}}`)

	out, _, err := run(t, srv, "", "bench", "mlp", "-c", "3", "-n", "40", "--data", data, "-o", "json")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	var res struct {
		ContentType string `json:"content_type"`
		Requests    int
		Codes       map[string]int
		Latency     struct{ Count int }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("-o json output is not JSON: %v\n%s", err, out)
	}
	if res.Requests != 40 || res.Codes["200"] != 30 || res.Codes["450"] != 10 || res.Latency.Count != 40 {
		t.Errorf("json result: %+v; want 40 requests, 30×200, 10×450", res)
	}
	if res.ContentType != "application/json" {
		t.Errorf("content type %q, want application/json guessed from the .json file", res.ContentType)
	}
	want := `/api/predict/mlp svc-token application/json  {"inputs":{"x":[[1,2]]}}`
	if ps.seen[want] != 40 || len(ps.seen) != 1 {
		t.Errorf("predict server saw %v, want 40× %q", ps.seen, want)
	}

	// Table output, another content type, a sub path, an extra header, a duration.
	ps.seen = map[string]int{}
	out, _, err = run(t, srv, "", "bench", "mlp", "-d", "50ms", "--data", data, "--content-type", "application/octet-stream",
		"--path", "/v2/x", "-H", "X-EAS-Request-Format: pytorch")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	for _, s := range []string{"| Concurrency | 1", "| Throughput  |", "| Latency p99 |", "| 450 Queue Full | ", "queue is full"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	for k := range ps.seen {
		if !strings.HasPrefix(k, "/api/predict/mlp/v2/x svc-token application/octet-stream pytorch ") {
			t.Errorf("predict server saw %q", k)
		}
	}
}

func TestBenchUsage(t *testing.T) {
	data := writeFile(t, "req.pb", "x")
	tests := []struct {
		args []string
		says string
	}{
		{[]string{"bench", "mlp", "-n", "5"}, "--data FILE is required"},
		{[]string{"bench", "mlp", "--data", data}, "either -n REQUESTS or -d DURATION"},
		{[]string{"bench", "mlp", "--data", data, "-n", "5", "-d", "1s"}, "either -n"},
		{[]string{"bench", "mlp", "--data", data, "-n", "5", "-c", "0"}, "-c 0: expected at least 1"},
		{[]string{"bench", "mlp", "--data", data, "-n", "5", "-o", "yaml"}, `-o "yaml"`},
		{[]string{"bench", "mlp", "--data", data, "-n", "5", "-H", "nocolon"}, "expected 'Name: value'"},
		{[]string{"bench", "--data", data, "-n", "5"}, "takes one argument"},
	}
	for _, tt := range tests {
		_, _, err := run(t, nil, "", tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%v: error %v, want one saying %q", tt.args, err, tt.says)
		}
	}
	_, _, err := run(t, nil, "", "bench", "mlp", "--data", "/no/such/file", "-n", "1")
	if err == nil || !strings.Contains(err.Error(), "request data file") {
		t.Errorf("missing data file: %v", err)
	}
}

package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// has reports whether text has line as one of its lines.
func has(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func TestSeries(t *testing.T) {
	m := New()
	m.ObserveRequest("a", 200, 2*time.Millisecond, 1500*time.Microsecond, 4)
	m.ObserveRequest("a", 200, 3*time.Millisecond, -1, 0)
	m.ObserveRequest("a", 429, 50*time.Microsecond, -1, 0)
	m.ObserveRequest("b", 502, time.Second, -1, 0)
	m.Retry("b")
	m.RateLimited("a")
	m.SetReady("a", 2)
	m.WorkerRestart("b")
	m.WorkerRestart("b")
	m.SetInFlightSource(func(yield func(string, int)) { yield("a", 3); yield("b", 0) })

	text := scrape(t, m)
	for _, want := range []string{
		`eas_requests_total{code="200",service="a"} 2`,
		`eas_requests_total{code="429",service="a"} 1`,
		`eas_requests_total{code="502",service="b"} 1`,
		`eas_request_duration_seconds_count{service="a"} 3`,
		`eas_request_duration_seconds_bucket{service="a",le="0.0025"} 2`, // 50µs and 2ms
		`eas_processor_duration_seconds_count{service="a"} 1`,
		`eas_processor_duration_seconds_sum{service="a"} 0.0015`,
		`eas_batch_size_count{service="a"} 1`,
		`eas_batch_size_bucket{service="a",le="2"} 0`,
		`eas_batch_size_bucket{service="a",le="4"} 1`,
		`eas_gateway_retries_total{service="b"} 1`,
		`eas_rate_limited_total{service="a"} 1`,
		`eas_ready_instances{service="a"} 2`,
		`eas_worker_restarts_total{service="b"} 2`,
		`eas_inflight_requests{service="a"} 3`,
		`eas_inflight_requests{service="b"} 0`,
	} {
		if !has(text, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if !strings.Contains(text, "go_goroutines") || !strings.Contains(text, "process_cpu_seconds_total") {
		t.Error("scrape lacks the Go runtime or process collectors")
	}

	m.Forget("a")
	m.SetInFlightSource(func(yield func(string, int)) { yield("b", 0) }) // the gateway forgets it too
	if text = scrape(t, m); strings.Contains(text, `service="a"`) {
		t.Errorf("series of the forgotten service remain:\n%s", grep(text, `service="a"`))
	}
	m.ObserveRequest("a", 200, time.Millisecond, -1, 0)
	if text = scrape(t, m); !has(text, `eas_requests_total{code="200",service="a"} 1`) {
		t.Errorf("a service recreated after Forget does not start from zero:\n%s", grep(text, `eas_requests_total`))
	}
}

func grep(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

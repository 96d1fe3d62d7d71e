package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/api"
)

// mlpModel is the tiny MLP (x float32[batch,64] → y float32[batch,10]) made by
// bench/testdata/make_mlp.py.
const mlpModel = "bench/testdata/mlp.onnx"

// mlpBody is a plain JSON request for one row of the MLP.
func mlpBody(seed int) []byte {
	row := make([]float32, 64)
	for i := range row {
		row[i] = float32((i*7+seed)%13) / 13
	}
	b, _ := json.Marshal(map[string]any{"inputs": map[string]any{"x": [][]float32{row}}})
	return b
}

func predictMLP(d *easd, name, token string, seed int) (int, []byte, error) {
	req, _ := http.NewRequest("POST", d.url("/api/predict/"+name), bytes.NewReader(mlpBody(seed)))
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", "application/json")
	return do(req)
}

// scrapeMetrics reads easd's /metrics, without any credentials.
func scrapeMetrics(t *testing.T, d *easd) string {
	t.Helper()
	resp, err := http.Get(d.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// metricValue returns the value of the sample `name{labels}` in a scrape (0 when absent:
// Prometheus counters that were never touched are not exported).
func metricValue(t *testing.T, text, name string, labels ...string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		lbl, val, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		have := strings.Split(lbl, ",")
		match := true
		for _, l := range labels {
			match = match && containsString(have, l)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		return v
	}
	return 0
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestMetricsAndRateLimit deploys the tiny MLP with a rate limit of 2 requests/s and
// checks that /metrics counts exactly the answers the clients saw, that a burst gets
// 429s beyond the limit, and that a deleted service's series disappear.
func TestMetricsAndRateLimit(t *testing.T) {
	e := requireEnv(t)
	d := startEasd(t, e, "")
	svcFile := writeJSON(t, filepath.Join(t.TempDir(), "service.json"), map[string]any{
		"name":       "mlp",
		"model_path": filepath.Join(e.repo, mlpModel),
		"processor":  "onnxruntime_cpu",
		"metadata":   map[string]any{"instance": 1, "rpc": map[string]any{"rate_limit": 2}},
	})
	if out, err := d.eascmd("create", svcFile); err != nil {
		t.Fatalf("eascmd create: %v\n%s", err, out)
	}
	svc := d.waitStatus("mlp", api.StatusRunning, 2*time.Minute)
	svcLabel := `service="mlp"`

	before := scrapeMetrics(t, d)
	if v := metricValue(t, before, "eas_ready_instances", svcLabel); v != 1 {
		t.Errorf("eas_ready_instances = %v, want 1", v)
	}
	ok0 := metricValue(t, before, "eas_requests_total", svcLabel, `code="200"`)
	lim0 := metricValue(t, before, "eas_requests_total", svcLabel, `code="429"`)
	auth0 := metricValue(t, before, "eas_requests_total", svcLabel, `code="401"`)
	count0 := metricValue(t, before, "eas_request_duration_seconds_count", svcLabel)

	// Unauthenticated requests are counted as 401 and do not use the rate budget.
	for i := range 5 {
		if code, _, _ := predictMLP(d, "mlp", "wrong-token", i); code != 401 {
			t.Fatalf("wrong token: %d, want 401", code)
		}
	}
	// A burst of 20 at once against 2 requests/s: the bucket holds 2, and it refills by
	// only 2 per second while the burst lasts.
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, err := predictMLP(d, "mlp", svc.AccessToken, i)
			if err != nil {
				t.Error(err)
				return
			}
			if code == 429 && !strings.Contains(string(body), "rate limit") {
				t.Errorf("429 answer %q does not say it is the rate limit", body)
			}
			if code != 200 && code != 429 {
				t.Errorf("burst request: %d %s", code, body)
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[200] < 1 || codes[429] < 1 {
		t.Fatalf("burst of 20 at rate_limit 2: %v, want some 200 and some 429", codes)
	}

	after := scrapeMetrics(t, d)
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{"200s", metricValue(t, after, "eas_requests_total", svcLabel, `code="200"`) - ok0, float64(codes[200])},
		{"429s", metricValue(t, after, "eas_requests_total", svcLabel, `code="429"`) - lim0, float64(codes[429])},
		{"401s", metricValue(t, after, "eas_requests_total", svcLabel, `code="401"`) - auth0, 5},
		{"latency observations", metricValue(t, after, "eas_request_duration_seconds_count", svcLabel) - count0, 25},
		{"rate-limited counter", metricValue(t, after, "eas_rate_limited_total", svcLabel), float64(codes[429])},
	} {
		if c.got != c.want {
			t.Errorf("%s: /metrics moved by %v, clients saw %v", c.what, c.got, c.want)
		}
	}
	if v := metricValue(t, after, "eas_inflight_requests", svcLabel); v != 0 {
		t.Errorf("eas_inflight_requests = %v with no request running, want 0", v)
	}
	if !strings.Contains(after, "go_goroutines ") {
		t.Error("/metrics lacks the Go runtime collector")
	}

	if out, err := d.eascmd("delete", "-y", "mlp"); err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	waitFor(t, time.Minute, "the service to be gone", func() bool {
		_, err := d.client.Describe(t.Context(), "mlp")
		return api.IsNotFound(err)
	})
	if text := scrapeMetrics(t, d); strings.Contains(text, svcLabel) {
		t.Errorf("series of the deleted service remain in /metrics")
	}
}

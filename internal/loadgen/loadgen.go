// Package loadgen is a closed-loop HTTP load generator: C workers each send a request,
// wait for the whole answer, and send the next, for N requests in all or for a duration.
// It reports throughput, latency percentiles and the outcome of every request (status
// codes, transport errors). eascmd bench and the benchmarks use it.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Request is what every worker sends.
type Request struct {
	Method      string // default POST
	URL         string
	Body        []byte
	ContentType string
	Header      http.Header // extra headers (e.g. Authorization)
}

// Options configure a run. Exactly one of Requests and Duration must be set.
type Options struct {
	Request     Request
	Concurrency int           // workers; default 1
	Requests    int           // total requests, shared by the workers
	Duration    time.Duration // or: keep sending until this much time has passed
	// Timeout bounds each request (client side): a request that takes longer is counted
	// as a "timeout" error, so a hung server shows up instead of stalling the run.
	// Default 30s.
	Timeout time.Duration
	// Client sends the requests. Default: a keep-alive client with one connection per
	// worker, without proxy or compression.
	Client *http.Client
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Result is the outcome of a run.
type Result struct {
	Concurrency int           `json:"concurrency"`
	Requests    int           `json:"requests"` // sent (answered or failed)
	Elapsed     time.Duration `json:"elapsed_ns"`
	// Throughput is answered requests (any status) per second of Elapsed.
	Throughput float64 `json:"throughput_rps"`
	// Latency summarizes the requests that got an answer (any status).
	Latency Summary `json:"latency"`
	// Codes counts answers by HTTP status; Errors counts requests without an answer by
	// kind ("timeout", "connection refused", "connection reset", "EOF", "other").
	Codes  map[int]int    `json:"codes"`
	Errors map[string]int `json:"errors,omitempty"`
	// Samples holds the first answer body (trimmed) per non-2xx status and the first
	// error text per error kind, to show the user why.
	Samples map[string]string `json:"samples,omitempty"`
	// Latencies are the individual latencies in completion order per worker (not
	// exported to JSON; for further analysis).
	Latencies []time.Duration `json:"-"`
}

// OK is the number of 2xx answers.
func (r *Result) OK() int {
	n := 0
	for c, k := range r.Codes {
		if c >= 200 && c < 300 {
			n += k
		}
	}
	return n
}

// Failed is the number of requests that got no 2xx answer.
func (r *Result) Failed() int { return r.Requests - r.OK() }

// Summary is a latency distribution. Percentiles use the nearest-rank method: Pxx is the
// smallest latency that at least xx% of the requests did not exceed.
type Summary struct {
	Count int           `json:"count"`
	Min   time.Duration `json:"min_ns"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summarize computes the summary of latencies (which it sorts in place).
func Summarize(latencies []time.Duration) Summary {
	n := len(latencies)
	if n == 0 {
		return Summary{}
	}
	slices.Sort(latencies)
	var sum time.Duration
	for _, l := range latencies {
		sum += l
	}
	return Summary{
		Count: n, Min: latencies[0], Max: latencies[n-1], Mean: sum / time.Duration(n),
		P50: Percentile(latencies, 50), P90: Percentile(latencies, 90), P99: Percentile(latencies, 99),
	}
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of sorted latencies:
// the value at rank ceil(p/100·n). 0 for an empty slice.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// Integer arithmetic in hundredths of a percent keeps ranks exact (0.99*100 is 98.99999… in floating point).
	rank := (int64(p*100+0.5)*int64(n) + 9999) / 10000
	rank = max(1, min(rank, int64(n)))
	return sorted[rank-1]
}

// Run sends the load and returns what happened. It returns early, with what was measured
// so far, when ctx ends. An error means the run could not start (bad options).
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	client := o.Client
	if client == nil {
		tr := &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        o.Concurrency,
			MaxIdleConnsPerHost: o.Concurrency,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		}
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr}
	}
	method := o.Request.Method
	if method == "" {
		method = http.MethodPost
	}

	var tickets atomic.Int64 // requests left when Requests > 0
	tickets.Store(int64(o.Requests))
	start := o.Now()
	var deadline time.Time
	if o.Duration > 0 {
		deadline = start.Add(o.Duration)
	}

	workers := make([]*workerStats, o.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		ws := &workerStats{codes: map[int]int{}, errors: map[string]int{}, samples: map[string]string{}}
		workers[i] = ws
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if o.Requests > 0 && tickets.Add(-1) < 0 {
					return
				}
				if !deadline.IsZero() && !o.Now().Before(deadline) {
					return
				}
				ws.one(ctx, client, method, &o)
			}
		}()
	}
	wg.Wait()
	elapsed := o.Now().Sub(start)

	res := &Result{Concurrency: o.Concurrency, Elapsed: elapsed, Codes: map[int]int{}, Errors: map[string]int{}, Samples: map[string]string{}}
	for _, ws := range workers {
		res.Requests += ws.sent
		res.Latencies = append(res.Latencies, ws.latencies...)
		for k, v := range ws.codes {
			res.Codes[k] += v
		}
		for k, v := range ws.errors {
			res.Errors[k] += v
		}
		for k, v := range ws.samples {
			if _, ok := res.Samples[k]; !ok {
				res.Samples[k] = v
			}
		}
	}
	sorted := slices.Clone(res.Latencies)
	res.Latency = Summarize(sorted)
	if elapsed > 0 {
		res.Throughput = float64(len(res.Latencies)) / elapsed.Seconds()
	}
	return res, nil
}

func (o *Options) check() error {
	switch {
	case o.Request.URL == "":
		return errors.New("loadgen: Request.URL is required")
	case o.Requests < 0:
		return fmt.Errorf("loadgen: requests must be positive, got %d", o.Requests)
	case o.Duration < 0:
		return fmt.Errorf("loadgen: duration must be positive, got %s", o.Duration)
	case (o.Requests > 0) == (o.Duration > 0):
		return errors.New("loadgen: give either a number of requests or a duration")
	}
	return nil
}

// workerStats is one worker's record; only that worker touches it until Run merges.
type workerStats struct {
	sent      int
	latencies []time.Duration
	codes     map[int]int
	errors    map[string]int
	samples   map[string]string
}

// one sends one request and records its outcome.
func (ws *workerStats) one(ctx context.Context, client *http.Client, method string, o *Options) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, o.Request.URL, bytes.NewReader(o.Request.Body))
	if err != nil {
		ws.sent++
		ws.fail("other", err)
		return
	}
	for k, vv := range o.Request.Header {
		req.Header[k] = vv
	}
	if o.Request.ContentType != "" {
		req.Header.Set("Content-Type", o.Request.ContentType)
	}
	t0 := o.Now()
	resp, err := client.Do(req)
	if err == nil {
		var body []byte
		if resp.StatusCode >= 300 {
			body, err = io.ReadAll(io.LimitReader(resp.Body, 4096))
		} else {
			_, err = io.Copy(io.Discard, resp.Body)
		}
		resp.Body.Close()
		if err == nil {
			ws.sent++
			ws.latencies = append(ws.latencies, o.Now().Sub(t0))
			ws.codes[resp.StatusCode]++
			if resp.StatusCode >= 300 {
				key := fmt.Sprint(resp.StatusCode)
				if _, ok := ws.samples[key]; !ok {
					ws.samples[key] = strings.TrimSpace(string(body))
				}
			}
			return
		}
	}
	if ctx.Err() != nil && ctx.Err() != context.DeadlineExceeded {
		return // the run was cancelled: this request does not count
	}
	ws.sent++
	ws.fail(errorKind(err), err)
}

func (ws *workerStats) fail(kind string, err error) {
	ws.errors[kind]++
	if _, ok := ws.samples[kind]; !ok {
		ws.samples[kind] = err.Error()
	}
}

// errorKind names a transport error for the report.
func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	}
	return "other"
}

// ContentTypeFor guesses a request body's Content-Type from the file name, then from the
// content: JSON for .json or a body that starts with '{' or '[', else
// application/octet-stream (EAS's protobuf formats).
func ContentTypeFor(path string, body []byte) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return "application/json"
	case ".pb", ".bin", ".protobuf", ".npy":
		return "application/octet-stream"
	case ".txt":
		return "text/plain"
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return "application/json"
	}
	return "application/octet-stream"
}

// ReadBody reads a request body file, with a clear error.
func ReadBody(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("request data file: %w", err)
	}
	return b, nil
}

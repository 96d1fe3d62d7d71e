package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openeas/openeas/internal/loadgen"
)

// benchJSON is `eascmd bench -o json`: the run's settings and its loadgen.Result.
type benchJSON struct {
	Service     string `json:"service"`
	URL         string `json:"url"`
	ContentType string `json:"content_type"`
	BodyBytes   int    `json:"body_bytes"`
	*loadgen.Result
}

func runBench(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("bench")
	conc := fs.Int("c", 1, "concurrent clients (closed loop: each waits for its answer before sending again)")
	n := fs.Int("n", 0, "total `requests` to send")
	dur := fs.Duration("d", 0, "send for this `duration` (e.g. 30s) instead of -n")
	data := fs.String("data", "", "request body `file` (required), sent as is with every request")
	ctype := fs.String("content-type", "", "Content-Type of the body (default: guessed from the file: .json or JSON text → application/json, else application/octet-stream)")
	sub := fs.String("path", "", "sub `path` after the service endpoint, e.g. /v2/models/NAME/infer")
	timeout := fs.Duration("timeout", 30*time.Second, "per-request client `timeout`; slower requests count as timeout errors")
	output := fs.String("o", "table", "output `format`: table or json")
	url := fs.String("url", "", "send to this `URL` instead of the service's endpoint (with --token, the server API is not asked)")
	token := fs.String("token", "", "access `token` instead of the service's own")
	var headers stringList
	fs.Var(&headers, "H", "extra request `header` 'Name: value' (repeatable)")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	switch {
	case *data == "":
		return usagef("eascmd bench: --data FILE is required (the request body)")
	case (*n > 0) == (*dur > 0):
		return usagef("eascmd bench: give either -n REQUESTS or -d DURATION")
	case *n < 0 || *dur < 0:
		return usagef("eascmd bench: -n and -d must be positive")
	case *conc < 1:
		return usagef("eascmd bench: -c %d: expected at least 1", *conc)
	case *output != "table" && *output != "json":
		return usagef("eascmd bench: -o %q: expected table or json", *output)
	}
	hdr := http.Header{}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return usagef("eascmd bench: -H %q: expected 'Name: value'", h)
		}
		hdr.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	body, err := loadgen.ReadBody(*data)
	if err != nil {
		return err
	}
	if *ctype == "" {
		*ctype = loadgen.ContentTypeFor(*data, body)
	}

	target, tok := *url, *token
	if target == "" || tok == "" {
		if err := c.connect(); err != nil {
			return err
		}
		svc, err := c.client.Describe(ctx, name)
		if err != nil {
			return err
		}
		if target == "" {
			target = svc.InternetEndpoint
		}
		if tok == "" {
			tok = svc.AccessToken
		}
	}
	target += *sub
	if tok != "" {
		hdr.Set("Authorization", tok)
	}

	res, err := loadgen.Run(ctx, loadgen.Options{
		Request:     loadgen.Request{URL: target, Body: body, ContentType: *ctype, Header: hdr},
		Concurrency: *conc, Requests: *n, Duration: *dur, Timeout: *timeout,
	})
	if err != nil {
		return err
	}
	if *output == "json" {
		enc := json.NewEncoder(c.opts.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(benchJSON{Service: name, URL: target, ContentType: *ctype, BodyBytes: len(body), Result: res})
	}
	writeBenchTable(c, name, target, res)
	return nil
}

func writeBenchTable(c *cli, name, target string, r *loadgen.Result) {
	l := r.Latency
	writeTable(c.opts.Stdout, nil, [][]string{
		{"Service", name},
		{"URL", target},
		{"Concurrency", strconv.Itoa(r.Concurrency)},
		{"Requests", fmt.Sprintf("%d (%d OK, %d failed)", r.Requests, r.OK(), r.Failed())},
		{"Elapsed", roundDuration(r.Elapsed)},
		{"Throughput", fmt.Sprintf("%.1f requests/s", r.Throughput)},
		{"Latency min", roundDuration(l.Min)},
		{"Latency p50", roundDuration(l.P50)},
		{"Latency p90", roundDuration(l.P90)},
		{"Latency p99", roundDuration(l.P99)},
		{"Latency max", roundDuration(l.Max)},
	})
	if len(r.Codes) == 0 && len(r.Errors) == 0 {
		return
	}
	var rows [][]string
	codes := make([]int, 0, len(r.Codes))
	for code := range r.Codes {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	for _, code := range codes {
		key := strconv.Itoa(code)
		rows = append(rows, []string{key + " " + statusText(code), strconv.Itoa(r.Codes[code]), sample(r.Samples[key])})
	}
	kinds := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		rows = append(rows, []string{"error: " + k, strconv.Itoa(r.Errors[k]), sample(r.Samples[k])})
	}
	fmt.Fprintln(c.opts.Stdout)
	writeTable(c.opts.Stdout, []string{"Outcome", "Count", "First answer"}, rows)
}

// statusText names a status, EAS's own codes included.
func statusText(code int) string {
	switch code {
	case 450:
		return "Queue Full"
	case 499:
		return "Client Closed Request"
	}
	return http.StatusText(code)
}

// sample shortens an answer body to one table cell.
func sample(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// roundDuration prints a latency with three significant decimals (e.g. 1.234ms, 87µs).
func roundDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Microsecond).String()
	}
	return d.String()
}

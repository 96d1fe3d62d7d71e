package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkGateway measures a whole predict round trip: client → gateway (real HTTP
// server) → worker (httptest) and back, with a 1 KiB body and answer.
func BenchmarkGateway(b *testing.B) {
	answer := bytes.Repeat([]byte("a"), 1024)
	wsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write(answer)
	}))
	defer wsrv.Close()
	g := New(Options{Services: fakeServices{"m1": token}})
	defer g.Close()
	g.SetEndpoints("m1", []Endpoint{{ID: "i", Addr: strings.TrimPrefix(wsrv.URL, "http://")}})
	front := httptest.NewServer(g)
	defer front.Close()
	cl := &http.Client{Transport: NewTransport()}
	body := bytes.Repeat([]byte("b"), 1024)
	url := front.URL + "/api/predict/m1"

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Authorization", token)
		resp, err := cl.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}

// BenchmarkServeHTTP isolates the gateway's own cost (ServeHTTP with a recorder; the
// worker hop is still real HTTP).
func BenchmarkServeHTTP(b *testing.B) {
	wsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("ok"))
	}))
	defer wsrv.Close()
	g := New(Options{Services: fakeServices{"m1": token}})
	defer g.Close()
	g.SetEndpoints("m1", []Endpoint{{ID: "i", Addr: strings.TrimPrefix(wsrv.URL, "http://")}})
	body := bytes.Repeat([]byte("b"), 1024)
	sig := Sign(token, "POST", md5hex(string(body)), "application/octet-stream", "Mon, 02 Jan 2006 15:04:05 GMT", "/api/predict/m1")

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/api/predict/m1", bytes.NewReader(body))
		req.Header.Set("Authorization", sig)
		req.Header.Set("Content-MD5", md5hex(string(body)))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Date", "Mon, 02 Jan 2006 15:04:05 GMT")
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code, rec.Body.String())
		}
	}
}

// BenchmarkDirect is BenchmarkGateway's baseline: the same client and worker, no
// gateway in between. The difference is the gateway's overhead.
func BenchmarkDirect(b *testing.B) {
	answer := bytes.Repeat([]byte("a"), 1024)
	wsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write(answer)
	}))
	defer wsrv.Close()
	cl := &http.Client{Transport: NewTransport()}
	body := bytes.Repeat([]byte("b"), 1024)
	url := wsrv.URL + "/predict"

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Authorization", token)
		resp, err := cl.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

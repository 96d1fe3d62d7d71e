package frame

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Transport is an http.RoundTripper that sends every request to one unix socket served by
// a Server, whatever the request URL's host. Connections are kept for reuse, one request at
// a time each. Cancelling a request's context closes its connection.
type Transport struct {
	path     string
	maxIdle  int
	maxBody  int64
	dialer   net.Dialer
	mu       sync.Mutex
	idleList []*conn
	closed   bool
}

// DefaultMaxIdle is how many idle connections a Transport keeps.
const DefaultMaxIdle = 64

// maxAnswer bounds an answer's body.
const maxAnswer = 1 << 31

// NewTransport returns a Transport to the socket at path.
func NewTransport(path string) *Transport {
	return &Transport{path: path, maxIdle: DefaultMaxIdle, maxBody: maxAnswer, dialer: net.Dialer{Timeout: 5 * time.Second}}
}

// conn is one connection with its buffers.
type conn struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

func (t *Transport) get(ctx context.Context) (*conn, bool, error) {
	t.mu.Lock()
	if n := len(t.idleList); n > 0 {
		c := t.idleList[n-1]
		t.idleList = t.idleList[:n-1]
		t.mu.Unlock()
		return c, true, nil
	}
	t.mu.Unlock()
	nc, err := t.dialer.DialContext(ctx, "unix", t.path)
	if err != nil {
		return nil, false, err
	}
	return &conn{c: nc, br: bufio.NewReaderSize(nc, 64<<10), bw: bufio.NewWriterSize(nc, 64<<10)}, false, nil
}

func (t *Transport) put(c *conn) {
	t.mu.Lock()
	if !t.closed && len(t.idleList) < t.maxIdle {
		t.idleList = append(t.idleList, c)
		c = nil
	}
	t.mu.Unlock()
	if c != nil {
		c.c.Close()
	}
}

// Close closes the idle connections; those in use are closed when their request ends.
func (t *Transport) Close() {
	t.mu.Lock()
	idle := t.idleList
	t.idleList, t.closed = nil, true
	t.mu.Unlock()
	for _, c := range idle {
		c.c.Close()
	}
}

// Closed reports whether Close was called.
func (t *Transport) Closed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// RoundTrip sends req and reads the whole answer. The body is streamed onto the connection
// when req.ContentLength gives its size, and read whole first otherwise. A reused
// connection that turns out dead before any byte of the answer arrives (the server closed
// it while idle) is replaced by a fresh one once, with the body from req.GetBody: like
// net/http, this may resend a request the server saw, which is harmless for predictions.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, n := req.Body, req.ContentLength
	if body != nil {
		defer func() { body.Close() }()
	}
	if body != nil && n <= 0 {
		b, err := io.ReadAll(body)
		if err != nil {
			return nil, err
		}
		n = int64(len(b))
		getBody := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		body, _ = getBody()
		req = req.Clone(req.Context())
		req.GetBody = getBody
	}
	target := req.URL.RequestURI()
	for attempt := 0; ; attempt++ {
		resp, reused, started, err := t.roundTrip(req, target, body, n)
		if err == nil {
			return resp, nil
		}
		if !reused || started || attempt > 0 || req.Context().Err() != nil {
			return nil, err
		}
		if n > 0 {
			if req.GetBody == nil {
				return nil, err
			}
			body.Close()
			if body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

func (t *Transport) roundTrip(req *http.Request, target string, body io.Reader, n int64) (resp *http.Response, reused, started bool, err error) {
	ctx := req.Context()
	c, reused, err := t.get(ctx)
	if err != nil {
		return nil, false, false, err
	}
	// Cancelling the request interrupts the read or write at once.
	stop := context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, bool, bool, error) {
		stop()
		c.c.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return nil, reused, started, err
	}
	if err := encodeRequest(c.bw, req.Method, target, req.Header, body, n); err != nil {
		return fail(err)
	}
	status, h, b, st, err := decodeResponse(c.br, t.maxBody)
	started = st
	if err != nil {
		return fail(err)
	}
	if !stop() {
		// The context ended just as the answer arrived: the deadline may be set.
		c.c.Close()
	} else {
		t.put(c)
	}
	return &http.Response{
		Status: strconv.Itoa(status) + " " + http.StatusText(status), StatusCode: status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(b)), ContentLength: int64(len(b)), Request: req,
	}, reused, started, nil
}

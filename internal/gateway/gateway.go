// Package gateway serves /api/predict/{name}[/sub/path]: it authenticates the caller
// with the service's access token (plain or EAS's HMAC-SHA1 signature), picks a ready
// worker by least outstanding requests and proxies the request to it.
package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openeas/openeas/internal/frame"
)

// Prefix is the URL path prefix the gateway serves.
const Prefix = "/api/predict/"

// DefaultMaxBodyBytes bounds a request body (it is buffered so that a signed request's
// Content-MD5 can be checked and a request refused at dial time can be resent).
const DefaultMaxBodyBytes = 512 << 20

// Endpoint is one ready worker of a service.
type Endpoint struct {
	ID   string
	Addr string // "127.0.0.1:PORT"
	// Socket, when set, is the worker's unix socket for package frame: requests go there
	// instead of HTTP to Addr (several times cheaper per request on one machine).
	Socket  string
	Version int
}

// Services answers which services exist. Implemented by the deploy layer; it must be
// safe for concurrent use and fast (it is called once per request).
type Services interface {
	// Lookup returns the service's access token; ok=false means there is no such service.
	Lookup(name string) (token string, ok bool)
}

// Observer is told what happens to requests of known services (unknown names are never
// reported: anyone can send them). It runs on the request path: it must be safe for
// concurrent use and cheap. *metrics.Metrics implements it.
type Observer interface {
	// ObserveRequest reports one answered request: the status code sent (499 when the
	// client went away first), the time from its arrival to the end of the answer, and
	// what the worker reported in ProcessorTimeHeader and BatchSizeHeader (processor < 0,
	// batch 0: not reported).
	ObserveRequest(service string, code int, total, processor time.Duration, batch int)
	// Retry reports a request resent to another instance after a dial error.
	Retry(service string)
	// RateLimited reports a request refused with 429.
	RateLimited(service string)
}

// Headers a worker may set on its answer for the gateway's metrics (they reach the
// client too): the microseconds spent in the processor, and the number of requests in
// the inference that answered this one.
const (
	ProcessorTimeHeader = "X-Eas-Processor-Time"
	BatchSizeHeader     = "X-Eas-Batch-Size"
)

// StatusClientClosed is recorded for requests whose client went away before the answer.
const StatusClientClosed = 499

// Options configure a Gateway. Services is required; the rest have defaults.
type Options struct {
	Services Services
	Logger   *slog.Logger
	// Observer, when set, is told about every request of a known service.
	Observer Observer
	// Transport carries requests to workers. Default: a keep-alive transport tuned for
	// loopback (many idle connections per host, no proxy, no compression).
	Transport http.RoundTripper
	// Now is the clock (used for the upstream latency in error logs). Default time.Now.
	Now func() time.Time
	// MaxBodyBytes bounds request bodies (413 beyond). Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// Gateway is the predict proxy. It is an http.Handler; create it with New.
type Gateway struct {
	services Services
	log      *slog.Logger
	obs      Observer
	rt       http.RoundTripper
	now      func() time.Time
	maxBody  int64

	mu     sync.Mutex                          // serializes writers of pools and limits
	pools  atomic.Pointer[map[string]*pool]    // copy-on-write: readers never lock
	limits atomic.Pointer[map[string]*limiter] // copy-on-write, like pools
}

// pool is one service's ready set and its request accounting.
type pool struct {
	backends atomic.Pointer[[]*backend] // replaced whole by SetEndpoints
	rr       atomic.Uint64              // round-robin start for ties
	inflight atomic.Int64
}

// backend is one worker. It survives SetEndpoints calls that list the same Endpoint, so
// its outstanding count stays accurate while the set changes around it.
type backend struct {
	ep       Endpoint
	base     string           // "http://ADDR/predict"
	frame    *frame.Transport // set when ep.Socket is
	inflight atomic.Int64
	// retired is set when the backend leaves the ready set: its worker is about to drain,
	// and a request that was routed to it just before may meet a closing connection.
	retired atomic.Bool
}

// close releases the backend's idle frame connections once it leaves the ready set;
// requests still running on it finish first.
func (b *backend) close() {
	b.retired.Store(true)
	if b.frame != nil {
		b.frame.Close()
	}
}

// NewTransport returns the default transport: keep-alive connections to loopback
// workers, without proxy or compression.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   3 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		// Workers speak HTTP/1.1 on loopback; HTTP/2 framing would only add cost.
		ForceAttemptHTTP2: false,
		WriteBufferSize:   32 << 10,
		ReadBufferSize:    32 << 10,
	}
}

// New returns a gateway. Options.Services must not be nil.
func New(opts Options) *Gateway {
	g := &Gateway{
		services: opts.Services,
		log:      opts.Logger,
		obs:      opts.Observer,
		rt:       opts.Transport,
		now:      opts.Now,
		maxBody:  opts.MaxBodyBytes,
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.rt == nil {
		g.rt = NewTransport()
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.maxBody <= 0 {
		g.maxBody = DefaultMaxBodyBytes
	}
	empty := map[string]*pool{}
	g.pools.Store(&empty)
	noLimits := map[string]*limiter{}
	g.limits.Store(&noLimits)
	return g
}

// Close releases idle connections to workers. In-flight requests are not affected; the
// gateway stays usable.
func (g *Gateway) Close() {
	if c, ok := g.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	for _, p := range *g.pools.Load() {
		if list := p.backends.Load(); list != nil {
			for _, b := range *list {
				b.close()
			}
		}
	}
}

// SetEndpoints replaces the service's ready set (nil or empty: no ready instance).
// Safe for concurrent use with requests: a request keeps the worker it picked.
func (g *Gateway) SetEndpoints(service string, eps []Endpoint) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := *g.pools.Load()
	p := old[service]
	if len(eps) == 0 && (p == nil || p.inflight.Load() == 0) {
		// Forget an idle service with no instances (stopped or deleted), so the map does
		// not grow with every name ever served; requests still running keep their pool.
		if p != nil {
			next := make(map[string]*pool, len(old))
			for k, v := range old {
				if k != service {
					next[k] = v
				}
			}
			g.pools.Store(&next)
			if list := p.backends.Load(); list != nil {
				for _, b := range *list {
					b.close()
				}
			}
		}
		return
	}
	if p == nil {
		p = &pool{}
		next := make(map[string]*pool, len(old)+1)
		for k, v := range old {
			next[k] = v
		}
		next[service] = p
		g.pools.Store(&next)
	}
	var prev []*backend
	if cur := p.backends.Load(); cur != nil {
		prev = *cur
	}
	list := make([]*backend, 0, len(eps))
	for _, ep := range eps {
		b := findBackend(prev, ep)
		if b == nil {
			b = &backend{ep: ep, base: "http://" + ep.Addr + "/predict"}
			if ep.Socket != "" {
				b.frame = frame.NewTransport(ep.Socket)
			}
		}
		list = append(list, b)
	}
	p.backends.Store(&list)
	for _, b := range prev {
		if findBackend(list, b.ep) == nil {
			b.close()
		}
	}
}

func findBackend(list []*backend, ep Endpoint) *backend {
	for _, b := range list {
		if b.ep == ep {
			return b
		}
	}
	return nil
}

// InFlight returns the number of the service's requests being proxied now.
func (g *Gateway) InFlight(service string) int {
	if p := (*g.pools.Load())[service]; p != nil {
		return int(p.inflight.Load())
	}
	return 0
}

// EachInFlight calls fn with the number of requests being proxied now, for every service
// that has instances or requests in flight.
func (g *Gateway) EachInFlight(fn func(service string, n int)) {
	for name, p := range *g.pools.Load() {
		fn(name, int(p.inflight.Load()))
	}
}

// pick returns the ready backend with the fewest outstanding requests, skipping
// exclude; ties go round-robin. nil when none is left.
func (p *pool) pick(exclude *backend) *backend {
	bp := p.backends.Load()
	if bp == nil {
		return nil
	}
	list := *bp
	n := len(list)
	if n == 0 {
		return nil
	}
	start := int(p.rr.Add(1) % uint64(n))
	var best *backend
	var bestN int64
	for i := 0; i < n; i++ {
		b := list[(start+i)%n]
		if b == exclude {
			continue
		}
		if c := b.inflight.Load(); best == nil || c < bestN {
			best, bestN = b, c
		}
	}
	return best
}

var bufPool = sync.Pool{New: func() any { return new(sharedBuf) }}

// sharedBuf is a pooled request body. The transport may still read a request body after
// RoundTrip returns (it closes the body when done, possibly later), so the buffer goes
// back to the pool only when ServeHTTP and every body reader handed out have let go.
type sharedBuf struct {
	buf  bytes.Buffer
	refs atomic.Int32
}

func getBuf() *sharedBuf {
	sb := bufPool.Get().(*sharedBuf)
	sb.buf.Reset()
	sb.refs.Store(1) // ServeHTTP's reference
	return sb
}

func (sb *sharedBuf) release() {
	if sb.refs.Add(-1) == 0 && sb.buf.Cap() <= maxPooledBuffer {
		bufPool.Put(sb)
	}
}

// newBody returns a reader over the buffer that holds a reference until it is closed.
func (sb *sharedBuf) newBody() io.ReadCloser {
	sb.refs.Add(1)
	br := &bodyReader{sb: sb}
	br.Reset(sb.buf.Bytes())
	return br
}

type bodyReader struct {
	bytes.Reader
	sb     *sharedBuf
	closed atomic.Bool
}

func (br *bodyReader) Close() error {
	if br.closed.CompareAndSwap(false, true) {
		br.sb.release()
	}
	return nil
}

// copyBufPool holds the buffers that stream answers back.
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// maxPooledBuffer keeps one huge request from pinning its memory in the pool.
const maxPooledBuffer = 4 << 20

// ServeHTTP proxies one predict request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	name, sub, ok := splitPath(path)
	if !ok {
		writeError(w, http.StatusNotFound, "service not found")
		return
	}
	token, ok := g.services.Lookup(name)
	if !ok {
		writeError(w, http.StatusNotFound, "service not found")
		return
	}
	if g.obs == nil {
		g.serve(w, r, name, sub, path, token)
		return
	}
	start := g.now()
	a := g.serve(w, r, name, sub, path, token)
	g.obs.ObserveRequest(name, a.code, g.now().Sub(start), a.processor, a.batch)
}

// answer is what serve did, for the Observer.
type answer struct {
	code      int
	processor time.Duration // -1: not reported
	batch     int
}

func failed(code int) answer { return answer{code: code, processor: -1} }

// serve authenticates, rate-limits and proxies a request of a known service.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, name, sub, path, token string) answer {
	msg, checkMD5 := authorize(r, token, path)
	if msg != "" {
		writeError(w, http.StatusUnauthorized, msg)
		return failed(http.StatusUnauthorized)
	}

	sb := getBuf()
	defer sb.release()
	buf := &sb.buf
	if r.ContentLength > g.maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return failed(http.StatusRequestEntityTooLarge)
	}
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, g.maxBody+1)); err != nil {
		if r.Context().Err() != nil {
			return failed(StatusClientClosed) // client went away: nothing to answer
		}
		writeError(w, http.StatusBadRequest, "read request body: "+err.Error())
		return failed(http.StatusBadRequest)
	}
	if int64(buf.Len()) > g.maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return failed(http.StatusRequestEntityTooLarge)
	}
	if checkMD5 && !bodyMatchesMD5(r, buf.Bytes()) {
		writeError(w, http.StatusUnauthorized, "Content-MD5 does not match the body")
		return failed(http.StatusUnauthorized)
	}
	// Counted only now that the caller is known to hold the token (a signed body is
	// checked against its Content-MD5 just above).
	if l := (*g.limits.Load())[name]; l != nil && !l.allow(g.now()) {
		if g.obs != nil {
			g.obs.RateLimited(name)
		}
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("rate limit exceeded: service %s allows %d requests per second (metadata.rpc.rate_limit)", name, l.qps))
		return failed(http.StatusTooManyRequests)
	}

	p := (*g.pools.Load())[name]
	if p == nil {
		writeError(w, http.StatusServiceUnavailable, "no ready instance")
		return failed(http.StatusServiceUnavailable)
	}
	p.inflight.Add(1)
	defer p.inflight.Add(-1)

	b := p.pick(nil)
	if b == nil {
		writeError(w, http.StatusServiceUnavailable, "no ready instance")
		return failed(http.StatusServiceUnavailable)
	}
	start := g.now()
	resp, err := g.forward(r, b, sub, sb)
	if err != nil && (isDialError(err) || b.retired.Load()) && r.Context().Err() == nil {
		// Resending is safe when the request never reached a worker (it just went away),
		// and when the worker had been withdrawn from the ready set: a draining worker
		// finishes every request it has read, so a connection it drops carried none (it
		// closed an idle connection as the request was being written on it).
		if b2 := p.pick(b); b2 != nil {
			g.log.Debug("predict: worker unreachable, retrying on another", "service", name, "instance", b.ep.ID, "retry", b2.ep.ID, "err", err)
			if g.obs != nil {
				g.obs.Retry(name)
			}
			b = b2
			resp, err = g.forward(r, b, sub, sb)
		}
	}
	if err != nil {
		if r.Context().Err() != nil {
			g.log.Debug("predict: client closed request", "service", name, "instance", b.ep.ID)
			return failed(StatusClientClosed) // the client is gone, there is nobody to answer
		}
		g.log.Warn("predict: worker request failed", "service", name, "instance", b.ep.ID,
			"addr", b.ep.Addr, "elapsed", g.now().Sub(start), "err", err)
		writeError(w, http.StatusBadGateway, "instance unavailable")
		return failed(http.StatusBadGateway)
	}
	defer resp.Body.Close()
	a := answer{code: resp.StatusCode, processor: -1}
	if g.obs != nil {
		a.processor, a.batch = workerReport(resp.Header)
	}
	if !g.copyResponse(w, resp) && r.Context().Err() != nil {
		a.code = StatusClientClosed
	}
	return a
}

// workerReport reads the processor time (µs) and batch size a worker put on its answer.
func workerReport(h http.Header) (processor time.Duration, batch int) {
	processor = -1
	if v := h[ProcessorTimeHeader]; len(v) > 0 {
		if us, err := strconv.ParseInt(v[0], 10, 64); err == nil && us >= 0 {
			processor = time.Duration(us) * time.Microsecond
		}
	}
	if v := h[BatchSizeHeader]; len(v) > 0 {
		if n, err := strconv.Atoi(v[0]); err == nil && n > 0 {
			batch = n
		}
	}
	return processor, batch
}

// forward sends the request to one worker, holding its outstanding count until the
// answer's headers arrive or the attempt fails; the body copy keeps it (see release).
func (g *Gateway) forward(r *http.Request, b *backend, sub string, sb *sharedBuf) (*http.Response, error) {
	b.inflight.Add(1)
	target := b.base + sub
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, target, nil)
	if err != nil {
		b.inflight.Add(-1)
		return nil, err
	}
	if n := sb.buf.Len(); n > 0 {
		out.Body, out.ContentLength = sb.newBody(), int64(n)
		// Lets the transport resend on a reused connection that died before anything
		// was written.
		out.GetBody = func() (io.ReadCloser, error) { return sb.newBody(), nil }
	}
	copyRequestHeaders(out.Header, r.Header)
	rt := g.rt
	if b.frame != nil {
		rt = b.frame
	}
	resp, err := rt.RoundTrip(out)
	if err != nil {
		b.inflight.Add(-1)
		return nil, err
	}
	resp.Body = &releaseBody{ReadCloser: resp.Body, b: b}
	return resp, nil
}

// releaseBody drops the backend's outstanding count when the answer has been consumed,
// so a worker streaming a long answer still counts as busy.
type releaseBody struct {
	io.ReadCloser
	b    *backend
	done atomic.Bool
}

func (rb *releaseBody) Close() error {
	if rb.done.CompareAndSwap(false, true) {
		rb.b.inflight.Add(-1)
	}
	return rb.ReadCloser.Close()
}

// copyRequestHeaders forwards what a worker needs to decode the body; nothing else
// (in particular not Authorization) reaches it.
func copyRequestHeaders(dst, src http.Header) {
	for k, vv := range src {
		switch {
		case k == "Content-Type", k == "Accept", k == "Content-Encoding",
			k == "Inference-Header-Content-Length", k == "X-Request-Id",
			strings.HasPrefix(k, "X-Eas-"):
			dst[k] = vv
		}
	}
}

// hopHeaders are connection-level headers a proxy must not pass on (RFC 9110 §7.6.1).
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// copyResponse streams the worker's answer to the client; false when it was cut short.
func (g *Gateway) copyResponse(w http.ResponseWriter, resp *http.Response) bool {
	h := w.Header()
	for k, vv := range resp.Header {
		if !hopHeaders[k] {
			h[k] = vv
		}
	}
	w.WriteHeader(resp.StatusCode)
	// Answers of unknown length may be streams: flush each chunk as it arrives.
	var flusher http.Flusher
	if resp.ContentLength < 0 {
		flusher, _ = w.(http.Flusher)
	}
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return false // client went away
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if rerr != nil {
			if rerr != io.EOF {
				g.log.Debug("predict: answer cut short", "err", rerr)
				return false
			}
			return true
		}
	}
}

// splitPath splits "/api/predict/{name}{sub}" into name and sub ("" or "/…").
func splitPath(path string) (name, sub string, ok bool) {
	rest, ok := strings.CutPrefix(path, Prefix)
	if !ok {
		return "", "", false
	}
	name, sub = rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		name, sub = rest[:i], rest[i:]
	}
	return name, sub, name != ""
}

// isDialError reports whether err happened before a connection existed, so the worker
// cannot have seen the request.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && !errors.Is(err, context.Canceled) &&
		!errors.Is(err, context.DeadlineExceeded)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}

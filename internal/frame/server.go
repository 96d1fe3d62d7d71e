package frame

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"
)

// Server serves an http.Handler over frames. Requests on one connection are served one
// after the other, in the connection's goroutine: no hand-off between reading, handling and
// answering. A request's context ends when the server is closed, or when the client closes
// the connection while the request runs: a request still running after WatchAfter gets a
// goroutine that watches for that (quick requests, the common case, never pay for one).
type Server struct {
	Handler http.Handler
	// MaxBody bounds a request body; a larger one is answered 413 (default 64 MiB).
	MaxBody int64
	// WatchAfter is how long a request runs before its connection is watched for the
	// client going away (default 20 ms).
	WatchAfter time.Duration
	Logger     *slog.Logger // nil: discard

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]bool // value: serving a request now
	closing   bool
	idle      chan struct{} // signalled when a connection goes idle or away while closing
	wg        sync.WaitGroup
	ctx       context.Context
	cancel    context.CancelFunc
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("frame: server closed")

func (s *Server) init() {
	if s.conns == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[net.Conn]bool{}
		s.idle = make(chan struct{}, 1)
		s.ctx, s.cancel = context.WithCancel(context.Background())
	}
}

// Serve accepts connections on ln until Shutdown or Close; it then returns ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.init()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.conns[c] = false
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// setActive records whether c is serving a request; false once closing means: close it.
func (s *Server) setActive(c net.Conn, active bool) (keep bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing && !active {
		return false
	}
	s.conns[c] = active
	return true
}

func (s *Server) serveConn(c net.Conn) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.signalIdle()
		s.wg.Done()
	}()
	maxBody := s.MaxBody
	if maxBody <= 0 {
		maxBody = 64 << 20
	}
	br, bw := bufio.NewReaderSize(c, 64<<10), bufio.NewWriterSize(c, 64<<10)
	for {
		req, err := decodeRequest(br, maxBody)
		var tooLarge *errTooLarge
		switch {
		case errors.As(err, &tooLarge):
			if !s.setActive(c, true) {
				return
			}
			if encodeResponse(bw, http.StatusRequestEntityTooLarge, http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
				[]byte("request body too large\n")) != nil {
				return
			}
		case err != nil:
			return // the client closed the connection, or broke the protocol
		default:
			if !s.setActive(c, true) {
				return
			}
			if err := s.serve(c, bw, req); err != nil {
				s.log().Debug("frame: write answer", "err", err)
				return
			}
		}
		if !s.setActive(c, false) {
			return // shutting down: this connection is done
		}
		s.signalIdle()
	}
}

// serve runs one request through the handler and writes its answer. A handler that panics
// costs its connection, not the process, as with net/http.
func (s *Server) serve(c net.Conn, bw *bufio.Writer, fr *request) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				s.log().Error("frame: handler panic", "target", fr.target, "panic", p, "stack", string(debug.Stack()))
			}
			err = fmt.Errorf("frame: handler panic: %v", p)
		}
	}()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, fr.method, "http://frame"+fr.target, bytes.NewReader(fr.body))
	if err != nil {
		return encodeResponse(bw, http.StatusBadRequest, http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
			[]byte("bad request target\n"))
	}
	req.Header = fr.header
	req.RequestURI = fr.target
	rw := &responseWriter{header: http.Header{}}
	w := s.watch(c, cancel)
	s.Handler.ServeHTTP(rw, req)
	if w.stop() {
		return errors.New("frame: the client broke the protocol while waiting for an answer")
	}
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	// The frame carries the body's length; a handler's Content-Length says the same or is stale.
	rw.header.Del("Content-Length")
	return encodeResponse(bw, rw.status, rw.header, rw.body.Bytes())
}

// signalIdle wakes a Shutdown waiting for connections to go idle.
func (s *Server) signalIdle() {
	select {
	case s.idle <- struct{}{}:
	default:
	}
}

// Shutdown stops accepting, closes idle connections, and waits until every request being
// served has been answered (closing each connection as it goes idle) or ctx ends; then it
// closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.init()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	for {
		s.mu.Lock()
		active := 0
		for c, busy := range s.conns {
			if busy {
				active++
			} else {
				c.Close()
			}
		}
		s.mu.Unlock()
		if active == 0 {
			s.wg.Wait()
			s.cancel()
			return nil
		}
		select {
		case <-s.idle:
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		}
	}
}

// Close stops accepting and closes every connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.init()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()
	return nil
}

// responseWriter collects a handler's answer for one frame.
type responseWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

// watcher watches a connection for its client going away while a request runs.
type watcher struct {
	c       net.Conn
	timer   *time.Timer
	started chan struct{} // closed once the watching goroutine runs (or never will)
	done    chan struct{} // closed when it has returned
	broken  bool          // it read data: the client sent while it should wait
}

// watch starts watching c after WatchAfter; a read that fails (the client closed the
// connection) cancels the request. Nothing should arrive while a request runs, since a client
// sends the next one only after the answer.
func (s *Server) watch(c net.Conn, cancel context.CancelFunc) *watcher {
	w := &watcher{c: c, started: make(chan struct{}), done: make(chan struct{})}
	after := s.WatchAfter
	if after <= 0 {
		after = 20 * time.Millisecond
	}
	w.timer = time.AfterFunc(after, func() {
		go func() {
			defer close(w.done)
			var b [1]byte
			n, err := c.Read(b[:])
			w.broken = n > 0
			var ne net.Error
			if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
				cancel() // the client is gone
			}
		}()
		close(w.started)
	})
	return w
}

// stop ends the watch before the answer is written; it reports whether the client broke
// the protocol (the connection must then be closed).
func (w *watcher) stop() (broken bool) {
	if w.timer.Stop() {
		return false // never started
	}
	<-w.started
	w.c.SetReadDeadline(time.Unix(1, 0)) // unblocks the read
	<-w.done
	w.c.SetReadDeadline(time.Time{})
	return w.broken
}

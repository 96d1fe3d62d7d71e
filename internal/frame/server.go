package frame

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server serves an http.Handler over frames. Requests on one connection are served one
// after the other, in the connection's goroutine: no hand-off between reading, handling and
// answering. A request's context ends when the server is closed, not when the client goes
// away (the handler's own deadlines, e.g. a worker's keepalive, bound it).
type Server struct {
	Handler http.Handler
	// MaxBody bounds a request body; a larger one is answered 413 (default 64 MiB).
	MaxBody int64
	Logger  *slog.Logger // nil: discard

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
			if err := s.serve(bw, req); err != nil {
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

// serve runs one request through the handler and writes its answer.
func (s *Server) serve(bw *bufio.Writer, fr *request) error {
	req, err := http.NewRequestWithContext(s.ctx, fr.method, "http://frame"+fr.target, bytes.NewReader(fr.body))
	if err != nil {
		return encodeResponse(bw, http.StatusBadRequest, http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
			[]byte("bad request target\n"))
	}
	req.Header = fr.header
	req.RequestURI = fr.target
	rw := &responseWriter{header: http.Header{}}
	s.Handler.ServeHTTP(rw, req)
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

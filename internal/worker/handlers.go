package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/openeas/openeas/internal/codec"
	"github.com/openeas/openeas/internal/processor"
)

// StatusClientClosed is the status logged when the client went away (nginx's 499, also EAS's).
const StatusClientClosed = 499

// maxPooledBody is the largest body buffer kept for reuse; bigger ones go to the GC.
const maxPooledBody = 8 << 20

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /ready", s.ready)
	mux.HandleFunc("POST /predict", s.predict)
	mux.HandleFunc("POST /predict/{path...}", s.predict)

	mux.HandleFunc("GET /predict/v2/health/live", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /predict/v2/health/ready", s.ready)
	mux.HandleFunc("GET /predict/v2/models/{model}", s.v2Model)
	mux.HandleFunc("GET /predict/v2/models/{model}/ready", s.v2ModelReady)
	mux.HandleFunc("POST /predict/v2/models/{model}/infer", s.v2Infer)
	return mux
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if !s.Ready() {
		http.Error(w, "model is loading", http.StatusServiceUnavailable)
	}
}

// predict serves EAS's /api/predict/{name}[/sub/path]: decode by processor family and
// Content-Type, predict, encode in the request's format.
func (s *Server) predict(w http.ResponseWriter, r *http.Request) {
	md := s.model.Load()
	if md == nil {
		http.Error(w, "model is loading", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	buf, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	reuse := true
	defer func() {
		if reuse {
			s.putBody(buf)
		}
	}()
	req, err := codec.DecodeSigned(md.family, r.Header, buf.Bytes(), md.sig, md.tfSigs)
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	t0 := time.Now()
	outs, batch, err := s.infer(ctx, md, req.Inputs, req.Outputs)
	setProcessorTime(w, t0, batch)
	if err != nil {
		// An abandoned inference may still read the inputs, which alias buf.
		reuse = !isContextErr(err)
		s.fail(w, r, err, false)
		return
	}
	body, ct, err := codec.Encode(req, outs, md.sig)
	if err != nil {
		s.fail(w, r, fmt.Errorf("encode response: %w", err), false)
		return
	}
	writeBody(w, http.StatusOK, ct, body)
}

// Headers the gateway reads for its metrics (gateway.ProcessorTimeHeader, BatchSizeHeader).
const (
	// ProcessorTimeHeader carries the time an answer spent in the queue and the processor,
	// in microseconds, so the gateway can tell processor latency from its own.
	ProcessorTimeHeader = "X-Eas-Processor-Time"
	// BatchSizeHeader carries how many requests the inference that answered carried, when
	// batching is on.
	BatchSizeHeader = "X-Eas-Batch-Size"
)

func setProcessorTime(w http.ResponseWriter, since time.Time, batch int) {
	h := w.Header()
	h[ProcessorTimeHeader] = []string{strconv.FormatInt(time.Since(since).Microseconds(), 10)}
	if batch > 0 {
		h[BatchSizeHeader] = []string{strconv.Itoa(batch)}
	}
}

func writeBody(w http.ResponseWriter, code int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	w.Write(body)
}

// readBody reads the request body into a pooled buffer, refusing bodies over MaxBody.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (*bytes.Buffer, error) {
	if r.ContentLength > s.opts.MaxBody {
		return nil, &http.MaxBytesError{Limit: s.opts.MaxBody}
	}
	buf, _ := s.bodies.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead) // ReadFrom then needs no reallocation
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.opts.MaxBody)); err != nil {
		s.putBody(buf)
		return nil, fmt.Errorf("read request body: %w", err)
	}
	return buf, nil
}

func (s *Server) putBody(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBody {
		s.bodies.Put(buf)
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// statusOf maps an error to the HTTP status EAS clients expect.
func statusOf(err error) int {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrQueueFull):
		return StatusQueueFull
	case processor.IsInputError(err):
		return http.StatusBadRequest
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusRequestTimeout
	case errors.Is(err, context.Canceled):
		return StatusClientClosed
	}
	return http.StatusInternalServerError
}

// fail answers err: plain text for /predict, {"error": …} for the v2 protocol.
// Server-side failures are logged; client mistakes are not (they are the client's to see).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error, v2 bool) {
	code := statusOf(err)
	msg := err.Error()
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		msg = fmt.Sprintf("request body exceeds %d bytes", tooLarge.Limit)
	}
	if code >= 500 {
		s.log.Error("predict failed", "path", r.URL.Path, "status", code, "err", err)
	} else {
		s.log.Debug("predict refused", "path", r.URL.Path, "status", code, "err", err)
	}
	if v2 {
		s.v2Error(w, code, msg)
		return
	}
	writeBody(w, code, "text/plain; charset=utf-8", []byte(msg+"\n"))
}

// quoteJSON renders s as a JSON string.
func quoteJSON(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

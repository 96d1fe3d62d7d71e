// Package apiserver serves the control-plane API under /api/v2 (see package api for the
// routes and wire types). Handlers only decode, call the deploy Manager, and encode;
// one wrapper turns errors into EAS status codes and the api.Error envelope.
package apiserver

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/deploy"
)

// Manager is what the handlers need from the deploy layer; *deploy.Manager implements it.
type Manager interface {
	Create(ctx context.Context, doc []byte) (*api.Service, error)
	Modify(ctx context.Context, name string, patch []byte) (*api.Service, error)
	Start(ctx context.Context, name string) (*api.Service, error)
	Stop(ctx context.Context, name string) (*api.Service, error)
	Delete(ctx context.Context, name string) (*api.Service, error)
	Describe(ctx context.Context, name string) (*api.Service, error)
	List(ctx context.Context) ([]api.Service, error)
	Events(ctx context.Context, name string, since int64) ([]api.Event, error)
	Follow(ctx context.Context, name string, since int64, fn func(api.Event) error) error
}

// Options configure a Server.
type Options struct {
	Manager    Manager
	AdminToken string
	Version    api.Version
	Logger     *slog.Logger
	// MaxBodyBytes caps a service.json (default 1 MiB).
	MaxBodyBytes int64
}

// Server is the control-plane HTTP handler.
type Server struct {
	opts Options
	mux  *http.ServeMux
	reqs atomic.Uint64
}

// New builds the handler tree.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	s := &Server{opts: opts, mux: http.NewServeMux()}
	s.mux.Handle("POST /api/v2/services", s.wrap(s.create))
	s.mux.Handle("GET /api/v2/services", s.wrap(s.list))
	s.mux.Handle("GET /api/v2/services/{name}", s.wrap(s.describe))
	s.mux.Handle("PUT /api/v2/services/{name}", s.wrap(s.modify))
	s.mux.Handle("PUT /api/v2/services/{name}/start", s.wrap(s.start))
	s.mux.Handle("PUT /api/v2/services/{name}/stop", s.wrap(s.stop))
	s.mux.Handle("DELETE /api/v2/services/{name}", s.wrap(s.delete))
	s.mux.Handle("GET /api/v2/services/{name}/events", http.HandlerFunc(s.events))
	s.mux.Handle("GET /api/v2/version", s.wrap(func(*http.Request) (any, error) { return s.opts.Version, nil }))
	return s
}

// ServeHTTP checks the admin token, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.writeError(w, r, http.StatusUnauthorized, "Unauthorized", "missing or wrong admin token: send \"Authorization: Bearer <token>\" (easd wrote it to DATA_DIR/admin.token)")
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || s.opts.AdminToken == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.AdminToken)) == 1
}

type handlerFunc func(r *http.Request) (any, error)

// wrap encodes a handler's value as JSON, or maps its error to a status and api.Error.
func (s *Server) wrap(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := h(r)
		if err != nil {
			status, code := classify(err)
			if status >= 500 {
				s.opts.Logger.Error("api", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			s.writeError(w, r, status, code, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	})
}

// classify maps the deploy layer's errors to HTTP status codes and EAS-style codes.
func classify(err error) (int, string) {
	switch {
	case errors.Is(err, deploy.ErrNotFound):
		return http.StatusNotFound, "ServiceNotFound"
	case errors.Is(err, deploy.ErrExists):
		return http.StatusConflict, "ServiceAlreadyExists"
	case errors.Is(err, deploy.ErrInvalid), errors.Is(err, errBadRequest):
		return http.StatusBadRequest, "InvalidParameter"
	case errors.Is(err, deploy.ErrConflict):
		return http.StatusConflict, "InvalidState"
	}
	return http.StatusInternalServerError, "InternalError"
}

var errBadRequest = errors.New("bad request")

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.Error{Code: code, Message: msg, RequestID: s.requestID()})
}

func (s *Server) requestID() string {
	return fmt.Sprintf("%x-%d", time.Now().UnixNano(), s.reqs.Add(1))
}

func (s *Server) body(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, s.opts.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, fmt.Errorf("%w: body larger than %d bytes", errBadRequest, s.opts.MaxBodyBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read body: %v", errBadRequest, err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, fmt.Errorf("%w: empty body: a service.json (JSON object) was expected", errBadRequest)
	}
	return b, nil
}

func (s *Server) since(r *http.Request) (int64, error) {
	v := r.URL.Query().Get("since")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: since: expected a non-negative event ID, got %q", errBadRequest, v)
	}
	return n, nil
}

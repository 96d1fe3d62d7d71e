package apiserver

import (
	"net/http"

	"github.com/openeas/openeas/internal/api"
)

func (s *Server) create(r *http.Request) (any, error) {
	b, err := s.body(r)
	if err != nil {
		return nil, err
	}
	return s.opts.Manager.Create(r.Context(), b)
}

func (s *Server) list(r *http.Request) (any, error) {
	svcs, err := s.opts.Manager.List(r.Context())
	if err != nil {
		return nil, err
	}
	return api.ServiceList{Services: svcs}, nil
}

func (s *Server) describe(r *http.Request) (any, error) {
	return s.opts.Manager.Describe(r.Context(), r.PathValue("name"))
}

func (s *Server) modify(r *http.Request) (any, error) {
	b, err := s.body(r)
	if err != nil {
		return nil, err
	}
	return s.opts.Manager.Modify(r.Context(), r.PathValue("name"), b)
}

func (s *Server) start(r *http.Request) (any, error) {
	return s.opts.Manager.Start(r.Context(), r.PathValue("name"))
}

func (s *Server) stop(r *http.Request) (any, error) {
	return s.opts.Manager.Stop(r.Context(), r.PathValue("name"))
}

func (s *Server) delete(r *http.Request) (any, error) {
	return s.opts.Manager.Delete(r.Context(), r.PathValue("name"))
}

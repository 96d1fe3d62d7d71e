package apiserver

import (
	"encoding/json"
	"net/http"

	"github.com/openeas/openeas/internal/api"
)

// events lists a service's events, or with follow=true streams them as NDJSON until the
// service settles.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	since, err := s.since(r)
	if err != nil {
		status, code := classify(err)
		s.writeError(w, r, status, code, err.Error())
		return
	}
	if r.URL.Query().Get("follow") != "true" {
		s.wrap(func(r *http.Request) (any, error) {
			evs, err := s.opts.Manager.Events(r.Context(), name, since)
			if err != nil {
				return nil, err
			}
			if evs == nil {
				evs = []api.Event{}
			}
			return api.EventList{Events: evs}, nil
		}).ServeHTTP(w, r)
		return
	}
	// Check existence first so a missing service gets a 404, not an empty stream.
	if _, err := s.opts.Manager.Describe(r.Context(), name); err != nil {
		status, code := classify(err)
		s.writeError(w, r, status, code, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	_ = rc.Flush()
	err = s.opts.Manager.Follow(r.Context(), name, since, func(e api.Event) error {
		if err := enc.Encode(e); err != nil {
			return err
		}
		return rc.Flush()
	})
	if err != nil && r.Context().Err() == nil {
		s.opts.Logger.Warn("follow events", "service", name, "err", err)
	}
}

package deploy

import (
	"context"
	"sync"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/store"
)

// hub wakes event followers when a service's events or status change. It holds no events
// itself (the store does); a follower re-reads the store after each wake-up.
type hub struct {
	mu   sync.Mutex // guards subs
	subs map[string]map[chan struct{}]struct{}
}

func newHub() *hub { return &hub{subs: make(map[string]map[chan struct{}]struct{})} }

func (h *hub) subscribe(service string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[service] == nil {
		h.subs[service] = make(map[chan struct{}]struct{})
	}
	h.subs[service][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[service], ch)
		if len(h.subs[service]) == 0 {
			delete(h.subs, service)
		}
		h.mu.Unlock()
	}
}

func (h *hub) notify(service string) {
	h.mu.Lock()
	for ch := range h.subs[service] {
		select { // a pending wake-up already covers this one
		case ch <- struct{}{}:
		default:
		}
	}
	h.mu.Unlock()
}

func toAPIEvent(e store.EventRecord) api.Event {
	return api.Event{ID: e.ID, Time: e.Time, Type: e.Type, Message: e.Message, Status: e.Status}
}

// settled reports whether a status is one in which nothing more happens without a new call.
func settled(status string) bool {
	switch status {
	case api.StatusRunning, api.StatusFailed, api.StatusStopped:
		return true
	}
	return false
}

// Events returns the service's events with ID > since, oldest first.
func (m *Manager) Events(ctx context.Context, name string, since int64) ([]api.Event, error) {
	if _, err := m.getService(ctx, name); err != nil {
		return nil, err
	}
	recs, err := m.store.Events(ctx, name, since, 10000)
	if err != nil {
		return nil, err
	}
	out := make([]api.Event, len(recs))
	for i, r := range recs {
		out[i] = toAPIEvent(r)
	}
	return out, nil
}

// Follow calls fn for every event with ID > since as it is appended, and returns nil once the
// service has settled (Running, Failed, Stopped) and every event up to then was delivered, or
// once the service is gone. It returns ctx.Err() when ctx ends first, or fn's error.
func (m *Manager) Follow(ctx context.Context, name string, since int64, fn func(api.Event) error) error {
	wake, cancel := m.hub.subscribe(name)
	defer cancel()
	for {
		// Read the status before the events: if it is settled now, every event that led
		// there was appended before it, so the read below sees them all.
		svc, err := m.store.GetService(ctx, name)
		gone := err != nil
		if gone && !isNotFound(err) {
			return err
		}
		recs, err := m.store.Events(ctx, name, since, 1000)
		if isNotFound(err) {
			return nil // deleted: its history went with it
		}
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := fn(toAPIEvent(r)); err != nil {
				return err
			}
			since = r.ID
		}
		if len(recs) == 1000 {
			continue
		}
		if gone || settled(svc.Status) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

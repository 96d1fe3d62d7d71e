package kubernetes

import (
	"context"
	"time"
)

// tokenSync carries the latest wanted token of a service to its root Secret. Changes arrive
// from the deploy manager, which must not block on the API; only the latest one matters.
type tokenSync struct {
	token   string
	exists  bool
	running bool // a goroutine is writing; it picks up newer wishes before it ends
}

// TokenChanged records a service's token in its root Secret (exists) or deletes every object
// of the service (!exists: the service was deleted). It never blocks: the API calls happen in
// the background, in order, the latest wish winning; failures are logged and retried.
// It fits deploy.Options.TokenChanged.
func (b *Backend) TokenChanged(service, token string, exists bool) {
	s := b.state(service)
	b.mu.Lock()
	if s.token == nil {
		s.token = &tokenSync{}
	}
	t := s.token
	t.token, t.exists = token, exists
	if t.running {
		b.mu.Unlock()
		return
	}
	t.running = true
	b.mu.Unlock()
	go b.syncToken(service, s)
}

func (b *Backend) syncToken(service string, s *svcState) {
	<-b.started
	backoff := time.Second
	for {
		b.mu.Lock()
		t := *s.token
		closing := b.closing
		b.mu.Unlock()
		if closing {
			b.mu.Lock()
			s.token.running = false
			b.mu.Unlock()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var err error
		if t.exists {
			err = b.setToken(ctx, service, t.token)
		} else {
			err = b.Delete(ctx, service)
		}
		cancel()
		b.mu.Lock()
		if err == nil && *s.token == t {
			s.token.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		if err != nil {
			b.log.Error("sync service Secret", "service", service, "err", err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Minute)
		}
	}
}

func (b *Backend) setToken(ctx context.Context, service, token string) error {
	s, err := b.lock(ctx, service)
	if err != nil {
		return err
	}
	defer s.unlock()
	_, err = b.ensureRoot(ctx, service, &token)
	return err
}

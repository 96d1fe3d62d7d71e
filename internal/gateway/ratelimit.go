package gateway

import (
	"sync"
	"time"
)

// limiter is a token bucket: rate tokens per second, at most burst saved up. A service's
// rate_limit of N QPS gets rate N and burst N, so an idle service may take one second's
// worth of requests at once, and a steady stream is held to N per second.
type limiter struct {
	qps int // the configured limit, for messages

	mu     sync.Mutex // guards tokens and last
	rate   float64    // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func newLimiter(qps int, now time.Time) *limiter {
	return &limiter{qps: qps, rate: float64(qps), burst: float64(qps), tokens: float64(qps), last: now}
}

// allow takes one token if there is one at now.
func (l *limiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := now.Sub(l.last); d > 0 {
		l.tokens = min(l.burst, l.tokens+d.Seconds()*l.rate)
		l.last = now
	}
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// SetRateLimit sets the service's rate_limit in requests per second; qps <= 0 removes it.
// Requests over the limit get 429. The limit is counted after authentication, so a flood
// without the token cannot use it up. Changing the limit starts a full bucket.
func (g *Gateway) SetRateLimit(service string, qps int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := *g.limits.Load()
	if cur, ok := old[service]; ok && cur.qps == qps {
		return // unchanged (e.g. a modify of something else): keep the bucket's state
	}
	if _, ok := old[service]; !ok && qps <= 0 {
		return
	}
	next := make(map[string]*limiter, len(old)+1)
	for k, v := range old {
		if k != service {
			next[k] = v
		}
	}
	if qps > 0 {
		next[service] = newLimiter(qps, g.now())
	}
	g.limits.Store(&next)
}

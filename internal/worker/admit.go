package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/openeas/openeas/internal/batcher"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// StatusQueueFull is EAS's answer when an instance's request queue is full.
const StatusQueueFull = 450

// ErrQueueFull is returned (wrapped) for a request refused because the instance already holds
// as many requests as metadata.rpc allows; the handlers answer it with StatusQueueFull.
var ErrQueueFull = errors.New("request queue is full")

// Defaults of the metadata.rpc settings, as EAS documents them.
const (
	DefaultWorkerThreads = 5
	DefaultMaxQueueSize  = 64
	DefaultMaxBatchSize  = 16
	DefaultMaxBatchWait  = 10 * time.Millisecond
)

// limiter enforces metadata.rpc.worker_threads and max_queue_size, the way ollama's scheduler
// bounds its queue: admission is a non-blocking send into a buffered channel, so a full
// instance refuses at once instead of making the client wait for a slot that may never come.
type limiter struct {
	admitted chan struct{} // one token per request held: running, batching or waiting
	slots    chan struct{} // one token per inference running; capacity worker_threads
	queue    int           // max_queue_size, for messages
}

// newLimiter allows threads inferences at once and holds up to held requests in all.
func newLimiter(threads, held, queue int) *limiter {
	return &limiter{admitted: make(chan struct{}, held), slots: make(chan struct{}, threads), queue: queue}
}

// enter admits a request or reports ErrQueueFull; every nil return needs a leave.
func (l *limiter) enter() error {
	select {
	case l.admitted <- struct{}{}:
		return nil
	default:
		return fmt.Errorf("%w: %d requests are waiting (metadata.rpc.max_queue_size %d)", ErrQueueFull, l.queue, l.queue)
	}
}

func (l *limiter) leave() { <-l.admitted }

// run waits for a free inference slot, then runs predict in it. The wait ends with ctx, so the
// time in the queue counts toward the request's keepalive.
func (l *limiter) run(ctx context.Context, predict batcher.RunFunc, in map[string]*tensor.Tensor, out []string) (map[string]*tensor.Tensor, error) {
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting in the queue: %w", ctx.Err())
	}
	defer func() { <-l.slots }()
	if err := ctx.Err(); err != nil { // both were ready and select chose the slot
		return nil, fmt.Errorf("waiting in the queue: %w", err)
	}
	return predict(ctx, in, out)
}

// Stats is a snapshot of an instance's load.
type Stats struct {
	Running int // inferences running (each may hold several requests when batching)
	Held    int // requests admitted and not yet answered: running, batching or waiting
}

// Stats reports the instance's load now.
func (s *Server) Stats() Stats {
	return Stats{Running: len(s.lim.slots), Held: len(s.lim.admitted)}
}

// infer runs one decoded request under the rpc settings: admission (or 450), then either the
// batcher or a slot of its own. ctx carries the request's keepalive. batch is how many
// requests the answering inference carried when batching is on (0 when it is off).
func (s *Server) infer(ctx context.Context, md *model, in map[string]*tensor.Tensor, out []string) (outs map[string]*tensor.Tensor, batch int, err error) {
	if err := s.lim.enter(); err != nil {
		return nil, 0, err
	}
	defer s.lim.leave()
	if md.batcher != nil {
		// Checked one by one so that a bad request gets its own 400 and never joins a batch.
		if err := processor.CheckInputs(md.sig, in); err != nil {
			return nil, 0, err
		}
		outs, batch, err = md.batcher.Predict(ctx, in, out)
	} else {
		outs, err = s.lim.run(ctx, md.proc.Predict, in, out)
	}
	if err == nil && ctx.Err() != nil {
		// A runtime that does not stop when told finished after the keepalive: EAS answers
		// such a request 408, so its late result is dropped.
		return nil, batch, fmt.Errorf("answer came after the keepalive: %w", ctx.Err())
	}
	return outs, batch, err
}

// requestContext applies the keepalive (Options.RequestTimeout) from the moment the request
// arrived, so time spent reading, queueing and batching counts toward it.
func (s *Server) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	if s.opts.RequestTimeout > 0 {
		return context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	}
	return r.Context(), func() {}
}

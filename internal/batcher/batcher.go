// Package batcher merges concurrent predict requests along the first (batch) dimension into
// one inference and splits the outputs back (metadata.rpc.batching). Only requests that agree
// on everything but the batch dimension are merged: the same input dtypes, the same non-batch
// dimensions and the same requested outputs. A request's results are the rows of the merged
// outputs that belong to it, so a model that treats its batch rows independently answers every
// request exactly as it would have answered it alone.
//
// The batcher holds no goroutine of its own: the first request of a batch arms a timer, and
// whichever comes first, the batch filling up or the timer, hands the batch to a goroutine that
// runs it. Wait waits for those goroutines.
package batcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// RunFunc runs one (merged) inference, with processor.Processor.Predict's contract.
type RunFunc func(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error)

// Options configure a Batcher.
type Options struct {
	// MaxBatchSize is the most rows (sum of the requests' first dimensions) one inference
	// takes. A request with more rows than this runs alone. Values below 1 mean 1.
	MaxBatchSize int
	// MaxWait is how long the first request of a batch waits for others before the batch runs
	// anyway. 0 means no waiting, so every request runs alone.
	MaxWait time.Duration
	// OnBatch, when set, is called once per inference with the number of requests and rows
	// it merged (for metrics). It must be quick and safe for concurrent use.
	OnBatch func(requests, rows int)
}

// Batcher merges requests; see the package comment. It is safe for concurrent use.
type Batcher struct {
	run  RunFunc
	opts Options

	mu   sync.Mutex        // guards open
	open map[string]*batch // the batch now filling, by merge key
	wg   sync.WaitGroup    // one per batch from creation until it has run
}

// New returns a Batcher that runs merged inferences with run.
func New(run RunFunc, opts Options) *Batcher {
	opts.MaxBatchSize = max(opts.MaxBatchSize, 1)
	return &Batcher{run: run, opts: opts, open: make(map[string]*batch)}
}

// batch is a group of calls with one merge key. Its calls slice is only appended to under
// Batcher.mu while the batch is open, and only read after it was closed.
type batch struct {
	key    string
	calls  []*call
	rows   int64
	timer  *time.Timer
	closed bool
}

// call is one request waiting in a batch; res has room for its one answer.
type call struct {
	ctx     context.Context
	inputs  map[string]*tensor.Tensor
	outputs []string
	rows    int64
	res     chan result
}

type result struct {
	outs     map[string]*tensor.Tensor
	requests int // how many requests the inference that answered carried
	err      error
}

// Check reports whether a model with signature sig can be batched: every input and every
// output must have a dynamic first dimension (the batch). The error names the first tensor
// that cannot be, e.g. `input "x" has a fixed batch dimension 1`.
func Check(sig processor.Signature) error {
	if len(sig.Inputs) == 0 {
		return errors.New("the model has no inputs")
	}
	for _, group := range []struct {
		kind  string
		infos []tensor.Info
	}{{"input", sig.Inputs}, {"output", sig.Outputs}} {
		for _, in := range group.infos {
			switch {
			case in.Shape == nil:
				return fmt.Errorf("%s %q has an unknown rank, so it has no batch dimension", group.kind, in.Name)
			case len(in.Shape) == 0:
				return fmt.Errorf("%s %q is a scalar, so it has no batch dimension", group.kind, in.Name)
			case in.Shape[0] >= 0:
				return fmt.Errorf("%s %q has a fixed batch dimension %d", group.kind, in.Name, in.Shape[0])
			}
		}
	}
	return nil
}

// Predict runs inputs, possibly merged with other requests' rows. inputs must already have
// passed processor.CheckInputs for a signature that Check accepts, so every input has at least
// one dimension and all agree on the first one. The answer is the request's own rows of every
// output. Cancelling ctx returns ctx.Err() at once; the merged inference is cancelled once
// every request in it has gone. requests is how many requests that inference carried
// (this one included), for the batch size metric; 0 when none ran for this request.
func (b *Batcher) Predict(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (outs map[string]*tensor.Tensor, requests int, err error) {
	rows, key, err := mergeKey(inputs, outputs)
	if err != nil {
		return nil, 0, err
	}
	c := &call{ctx: ctx, inputs: inputs, outputs: outputs, rows: rows, res: make(chan result, 1)}
	b.add(key, c)
	select {
	case r := <-c.res:
		return r.outs, r.requests, r.err
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
}

// Wait blocks until every batch formed so far has run. Call it after the last Predict has
// returned and before closing the processor.
func (b *Batcher) Wait() { b.wg.Wait() }

// add puts c into the open batch for key, starting a new batch when there is none or c does
// not fit, and dispatches batches that are full.
func (b *Batcher) add(key string, c *call) {
	maxRows := int64(b.opts.MaxBatchSize)
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.open[key]
	if cur != nil && cur.rows+c.rows > maxRows {
		b.closeLocked(cur)
		cur = nil
	}
	if cur == nil {
		bt := &batch{key: key}
		b.wg.Add(1)
		if c.rows >= maxRows || b.opts.MaxWait <= 0 {
			// Full already, or no waiting wanted: run it as it is.
			bt.calls, bt.rows, bt.closed = []*call{c}, c.rows, true
			go b.execute(bt)
			return
		}
		b.open[key] = bt
		bt.timer = time.AfterFunc(b.opts.MaxWait, func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.closeLocked(bt)
		})
		cur = bt
	}
	cur.calls = append(cur.calls, c)
	cur.rows += c.rows
	if cur.rows >= maxRows {
		b.closeLocked(cur)
	}
}

// closeLocked stops a batch from taking more calls and starts running it; b.mu is held.
// Closing twice (the timer racing a full batch) does nothing the second time.
func (b *Batcher) closeLocked(bt *batch) {
	if bt.closed {
		return
	}
	bt.closed = true
	if b.open[bt.key] == bt {
		delete(b.open, bt.key)
	}
	if bt.timer != nil {
		bt.timer.Stop()
	}
	go b.execute(bt)
}

// execute runs a closed batch and hands every live call its rows.
func (b *Batcher) execute(bt *batch) {
	defer b.wg.Done()
	// Calls whose request has gone are left out: nobody would read their answer.
	live := slices.DeleteFunc(bt.calls, func(c *call) bool { return c.ctx.Err() != nil })
	if len(live) == 0 {
		return
	}
	var rows int64
	for _, c := range live {
		rows += c.rows
	}
	if b.opts.OnBatch != nil {
		b.opts.OnBatch(len(live), int(rows))
	}
	if len(live) == 1 { // nothing to merge or split
		c := live[0]
		outs, err := b.run(c.ctx, c.inputs, c.outputs)
		c.res <- result{outs: outs, requests: 1, err: err}
		return
	}
	ctx, cancel := contextOfAll(live)
	defer cancel()
	merged := merge(live, rows)
	outs, err := b.run(ctx, merged, live[0].outputs)
	if err != nil {
		for _, c := range live {
			c.res <- result{requests: len(live), err: err}
		}
		return
	}
	parts, err := split(outs, live, rows)
	for i, c := range live {
		if err != nil {
			c.res <- result{requests: len(live), err: err}
		} else {
			c.res <- result{outs: parts[i], requests: len(live)}
		}
	}
}

// contextOfAll returns a context that is cancelled once every call's context is done, so
// that a merged inference stops when nobody waits for it any more and not before.
func contextOfAll(calls []*call) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	var left atomic.Int64
	left.Store(int64(len(calls)))
	stops := make([]func() bool, len(calls))
	for i, c := range calls {
		stops[i] = context.AfterFunc(c.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// mergeKey returns the request's rows and the key of the requests it may merge with: input
// names, dtypes and non-batch dimensions, and the outputs asked for.
func mergeKey(inputs map[string]*tensor.Tensor, outputs []string) (int64, string, error) {
	names := make([]string, 0, len(inputs))
	for name := range inputs {
		names = append(names, name)
	}
	slices.Sort(names)
	var k strings.Builder
	rows := int64(-1)
	for _, name := range names {
		t := inputs[name]
		if len(t.Shape) == 0 {
			return 0, "", &processor.InputError{Input: name, Msg: "a scalar cannot be batched; the model needs a batch dimension"}
		}
		if rows < 0 {
			rows = t.Shape[0]
		} else if t.Shape[0] != rows {
			return 0, "", &processor.InputError{Input: name, Msg: fmt.Sprintf("batch dimension %d differs from the other inputs' %d", t.Shape[0], rows)}
		}
		k.WriteString(strconv.Quote(name))
		k.WriteByte(':')
		k.WriteString(strconv.Itoa(int(t.DType)))
		for _, d := range t.Shape[1:] {
			k.WriteByte(',')
			k.WriteString(strconv.FormatInt(d, 10))
		}
		k.WriteByte(';')
	}
	if outputs == nil {
		k.WriteString("*")
	}
	for _, o := range outputs {
		k.WriteString(strconv.Quote(o))
		k.WriteByte(',')
	}
	return max(rows, 0), k.String(), nil
}

// merge concatenates the calls' inputs along dimension 0.
func merge(calls []*call, rows int64) map[string]*tensor.Tensor {
	first := calls[0].inputs
	out := make(map[string]*tensor.Tensor, len(first))
	for name, t0 := range first {
		m := &tensor.Tensor{DType: t0.DType, Shape: slices.Clone(t0.Shape)}
		m.Shape[0] = rows
		if t0.DType == tensor.String {
			m.Strings = make([]string, 0, rows*tensor.NumElements(t0.Shape[1:]))
			for _, c := range calls {
				m.Strings = append(m.Strings, c.inputs[name].Strings...)
			}
		} else {
			m.Data = make([]byte, 0, rows*tensor.NumElements(t0.Shape[1:])*int64(t0.DType.Size()))
			for _, c := range calls {
				m.Data = append(m.Data, c.inputs[name].Data...)
			}
		}
		out[name] = m
	}
	return out
}

// split cuts every output into the calls' row ranges. The parts share the merged outputs'
// memory (each capped to its own range), which nobody else holds.
func split(outs map[string]*tensor.Tensor, calls []*call, rows int64) ([]map[string]*tensor.Tensor, error) {
	parts := make([]map[string]*tensor.Tensor, len(calls))
	for i := range parts {
		parts[i] = make(map[string]*tensor.Tensor, len(outs))
	}
	for name, t := range outs {
		if len(t.Shape) == 0 || t.Shape[0] != rows {
			return nil, fmt.Errorf("batcher: output %q has shape %v, not one row per batch row (%d rows)", name, t.Shape, rows)
		}
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("batcher: output %q: %w", name, err)
		}
		perRow := tensor.NumElements(t.Shape[1:])
		var at int64
		for i, c := range calls {
			p := &tensor.Tensor{DType: t.DType, Shape: slices.Clone(t.Shape)}
			p.Shape[0] = c.rows
			lo, hi := at*perRow, (at+c.rows)*perRow
			if t.DType == tensor.String {
				p.Strings = t.Strings[lo:hi:hi]
			} else {
				sz := int64(t.DType.Size())
				p.Data = t.Data[lo*sz : hi*sz : hi*sz]
			}
			parts[i][name] = p
			at += c.rows
		}
	}
	return parts, nil
}

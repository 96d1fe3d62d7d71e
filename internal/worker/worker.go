// Package worker is one serving instance: it loads a sealed bundle into a processor and serves
// it over HTTP on loopback, speaking the worker process contract of docs/architecture.md
// (JSON events on stdout, slog on stderr, /predict, the Open Inference Protocol under
// /predict/v2, /healthz, /ready, draining on shutdown).
//
// The package holds no cgo: processors are opened through Openers that main supplies, so the
// server is tested with fake processors.
package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openeas/openeas/internal/batcher"
	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/codec"
	"github.com/openeas/openeas/internal/frame"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/tensor"
)

// Opener loads the model file at modelPath with the runtime settings rt.
type Opener func(modelPath string, rt processor.Runtime) (processor.Processor, error)

// Options configure a worker. Only BundleDir, Name and Openers are required.
type Options struct {
	BundleDir string            // sealed bundle: bundle.json, model/
	Name      string            // service name; also the model name of the v2 protocol
	Openers   map[string]Opener // by canonical processor name, e.g. "onnxruntime_cpu"

	MaxBody         int64         // request body cap in bytes; default DefaultMaxBody
	ShutdownTimeout time.Duration // how long Run drains in-flight requests; default 30s

	// metadata.rpc (docs/serving.md). Zero values take EAS's defaults.
	//
	// RequestTimeout is the keepalive: the limit on a request from its arrival, time in the
	// queue included; past it the answer is 408 and the inference is cancelled. 0: none
	// besides the client's.
	RequestTimeout time.Duration
	WorkerThreads  int // inferences at once; default DefaultWorkerThreads
	// MaxQueueSize is how many more requests may wait; beyond, 450 at once. With Batching a
	// running inference holds up to MaxBatchSize requests, so an instance holds
	// WorkerThreads×MaxBatchSize + MaxQueueSize requests in all. Default DefaultMaxQueueSize.
	MaxQueueSize int
	// Batching merges concurrent requests along the first dimension (package batcher). Load
	// fails when the model has an input or output without a dynamic first dimension.
	Batching     bool
	MaxBatchSize int           // rows per merged inference; default DefaultMaxBatchSize
	MaxBatchWait time.Duration // how long a batch waits to fill; default DefaultMaxBatchWait

	// WarmUp runs one synthetic request before reporting ready when the bundle has no
	// warm-up data (a bundle's warm-up requests always run).
	WarmUp bool

	// FrameListener, when set, is a unix socket Run also serves, with package frame: the
	// local gateway's fast path. Its address is reported in the "listening" event.
	FrameListener net.Listener

	Events io.Writer    // where the JSON event lines go (the process's stdout); nil: discarded
	Logger *slog.Logger // nil: discarded
}

// DefaultMaxBody is the request body cap when Options.MaxBody is 0.
const DefaultMaxBody = 64 << 20

// DefaultShutdownTimeout is the drain limit when Options.ShutdownTimeout is 0.
const DefaultShutdownTimeout = 30 * time.Second

// Server serves one bundle. Its handler answers before the model is loaded (/healthz 200,
// everything that needs the model 503) so the scheduler can see the process is up.
// All methods are safe for concurrent use.
type Server struct {
	opts    Options
	log     *slog.Logger
	model   atomic.Pointer[model] // nil until Load succeeds
	lim     *limiter
	handler http.Handler
	bodies  sync.Pool // *[]byte request body buffers
}

// model is the loaded bundle; immutable once published.
type model struct {
	proc          processor.Processor
	sig           processor.Signature
	family        codec.Family
	processorName string
	metadata      []byte             // v2 model metadata answer
	batcher       *batcher.Batcher   // nil unless Options.Batching
	tfSigs        codec.TFSignatures // a converted SavedModel's signatures; nil otherwise
}

// New returns a server for opts; call Load (or Run) to load the model.
func New(opts Options) *Server {
	opts.MaxBody = cmp.Or(opts.MaxBody, DefaultMaxBody)
	opts.ShutdownTimeout = cmp.Or(opts.ShutdownTimeout, DefaultShutdownTimeout)
	opts.WorkerThreads = max(cmp.Or(opts.WorkerThreads, DefaultWorkerThreads), 1)
	opts.MaxQueueSize = max(cmp.Or(opts.MaxQueueSize, DefaultMaxQueueSize), 0)
	opts.MaxBatchSize = max(cmp.Or(opts.MaxBatchSize, DefaultMaxBatchSize), 1)
	opts.MaxBatchWait = cmp.Or(opts.MaxBatchWait, DefaultMaxBatchWait)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	held := opts.WorkerThreads + opts.MaxQueueSize
	if opts.Batching {
		held = opts.WorkerThreads*opts.MaxBatchSize + opts.MaxQueueSize
	}
	s := &Server{opts: opts, log: log, lim: newLimiter(opts.WorkerThreads, held, opts.MaxQueueSize)}
	s.handler = s.routes()
	return s
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Ready reports whether the model is loaded.
func (s *Server) Ready() bool { return s.model.Load() != nil }

// servingRuntime is the runtime settings a worker applies. A bundle that no plugin tuned
// (all settings zero) runs with intra-op spinning off: ONNX Runtime's spinning threads
// otherwise burn the cores the gateway, the other instances and the load share (on the
// 2-core test machine the tiny-model throughput at 16 clients went from 7,400 to 10,000
// requests/s). Settings a plugin such as Blade chose, and timed, are applied as they are.
func servingRuntime(rt processor.Runtime) processor.Runtime {
	if reflect.ValueOf(rt).IsZero() {
		off := false
		rt.AllowSpinning = &off
	}
	return rt
}

// LoadInfo describes a successful Load.
type LoadInfo struct {
	Duration time.Duration // the whole load, warm-up included
	// WarmUpRequests is how many requests of the bundle's warm-up data were replayed (0 when
	// it has none) and WarmUpDuration how long they took.
	WarmUpRequests int
	WarmUpDuration time.Duration
	// Runtime names what serves the model, when the processor says (processor.RuntimeVersioner).
	Runtime string
}

// Load reads bundle.json, opens the model with the processor it names, applies the bundle's
// runtime settings, replays the bundle's warm-up requests (or one synthetic request, see
// Options.WarmUp), and then starts answering predictions. A warm-up request that cannot be
// decoded or that the model rejects fails the load. Calling Load again after success is an
// error.
func (s *Server) Load(ctx context.Context) (LoadInfo, error) {
	start := time.Now()
	if s.Ready() {
		return LoadInfo{}, errors.New("worker: model already loaded")
	}
	m, err := ReadManifest(s.opts.BundleDir)
	if err != nil {
		return LoadInfo{}, err
	}
	open := s.opts.Openers[m.Processor]
	if open == nil {
		return LoadInfo{}, fmt.Errorf("processor %s is not available in this worker", m.Processor)
	}
	// Read before the model so that a broken file fails fast.
	warm, err := readWarmUp(s.opts.BundleDir, m.WarmUpData)
	if err != nil {
		return LoadInfo{}, err
	}
	path := filepath.Join(s.opts.BundleDir, "model", filepath.FromSlash(m.ModelEntry))
	s.log.Info("loading model", "processor", m.Processor, "model", path)
	proc, err := open(path, servingRuntime(m.Runtime))
	if err != nil {
		return LoadInfo{}, fmt.Errorf("load %s with %s: %w", m.ModelEntry, m.Processor, err)
	}
	md := &model{proc: proc, sig: proc.Signature(), family: codec.FamilyOf(m.Processor), processorName: m.Processor}
	if m.TensorFlow != nil {
		// A TensorFlow model converted to ONNX: served by ONNX Runtime, spoken to as TF.
		md.family = codec.FamilyTensorFlow
		if md.tfSigs, err = tfSignatures(s.opts.BundleDir, m.TensorFlow); err != nil {
			proc.Close()
			return LoadInfo{}, err
		}
	}
	// A SavedModel is described by its serving_default aliases, the names its users know.
	md.metadata = codec.V2ModelMetadata(s.opts.Name, v2Platform(md.family), md.tfSigs.Described(md.sig))
	if s.opts.Batching {
		if err := batcher.Check(md.sig); err != nil {
			proc.Close()
			return LoadInfo{}, fmt.Errorf("metadata.rpc.batching: %w", err)
		}
		md.batcher = batcher.New(func(ctx context.Context, in map[string]*tensor.Tensor, out []string) (map[string]*tensor.Tensor, error) {
			return s.lim.run(ctx, proc.Predict, in, out)
		}, batcher.Options{MaxBatchSize: s.opts.MaxBatchSize, MaxWait: s.opts.MaxBatchWait})
	}
	info := LoadInfo{}
	if v, ok := proc.(processor.RuntimeVersioner); ok {
		info.Runtime = v.RuntimeVersion()
	}
	switch {
	case len(warm) > 0:
		t0 := time.Now()
		if err := s.replay(ctx, md, warm); err != nil {
			closeModel(md)
			return LoadInfo{}, err
		}
		info.WarmUpRequests, info.WarmUpDuration = len(warm), time.Since(t0)
		s.log.Info("warm-up done", "requests", len(warm), "took", info.WarmUpDuration.Round(time.Millisecond))
	case s.opts.WarmUp:
		if err := warmUp(ctx, md); err != nil {
			// A model may reject synthetic inputs (value-dependent shapes, say); that is not a
			// reason to refuse traffic, but worth knowing when the first request is slow.
			s.log.Warn("warm-up skipped", "err", err)
		}
	}
	if !s.model.CompareAndSwap(nil, md) {
		closeModel(md)
		return LoadInfo{}, errors.New("worker: model already loaded")
	}
	info.Duration = time.Since(start)
	s.log.Info("model ready", "load", info.Duration.Round(time.Millisecond), "inputs", len(md.sig.Inputs), "outputs", len(md.sig.Outputs))
	return info, nil
}

// closeModel releases md once nothing runs in it: batches still running are waited for.
func closeModel(md *model) error {
	if md.batcher != nil {
		md.batcher.Wait()
	}
	return md.proc.Close()
}

// Close releases the processor. Call it only once no request is in flight (after
// http.Server.Shutdown).
func (s *Server) Close() error {
	md := s.model.Swap(nil)
	if md == nil {
		return nil
	}
	return closeModel(md)
}

// ReadManifest reads and checks dir/bundle.json.
func ReadManifest(dir string) (*bundle.Manifest, error) {
	path := filepath.Join(dir, bundle.ManifestFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read bundle manifest: %w", err)
	}
	var m bundle.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("bundle manifest %s: %w", path, err)
	}
	switch {
	case m.Schema != 1:
		return nil, fmt.Errorf("bundle manifest %s: schema is %d, expected 1", path, m.Schema)
	case m.Processor == "":
		return nil, fmt.Errorf("bundle manifest %s: processor is empty", path)
	case m.ModelEntry == "" || !filepath.IsLocal(filepath.FromSlash(m.ModelEntry)):
		return nil, fmt.Errorf("bundle manifest %s: model_entry %q is not a relative path inside model/", path, m.ModelEntry)
	}
	for i, f := range m.WarmUpData {
		if !strings.HasPrefix(f, bundle.WarmUpDir+"/") || !filepath.IsLocal(filepath.FromSlash(f)) {
			return nil, fmt.Errorf("bundle manifest %s: warm_up_data[%d] %q is not a relative path inside %s/", path, i, f, bundle.WarmUpDir)
		}
	}
	return &m, nil
}

// Run is the worker process: it reports "listening" for ln, serves, loads the model, reports
// "ready" (or "failed" and returns the load error), and serves until ctx is done. Then it stops
// accepting connections, drains in-flight requests for up to ShutdownTimeout, closes the
// processor and returns nil. The caller exits non-zero when Run returns an error.
func Run(ctx context.Context, ln net.Listener, opts Options) error {
	s := New(opts)
	ev := &events{w: opts.Events}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ln) }()
	listening := event{Event: "listening", Addr: ln.Addr().String()}
	var fsrv *frame.Server
	if opts.FrameListener != nil {
		fsrv = &frame.Server{Handler: srv.Handler, MaxBody: s.opts.MaxBody, Logger: s.log}
		go func() { serveErr <- fsrv.Serve(opts.FrameListener) }()
		listening.Socket = opts.FrameListener.Addr().String()
	}
	ev.emit(listening)

	shutdown := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
		defer cancel()
		var fdone chan error
		if fsrv != nil {
			// Both drain at once: the gateway may use either.
			fdone = make(chan error, 1)
			go func() { fdone <- fsrv.Shutdown(sctx) }()
		}
		err := srv.Shutdown(sctx)
		if fdone != nil {
			err = errors.Join(err, <-fdone)
		}
		if cerr := s.Close(); cerr != nil {
			s.log.Warn("close processor", "err", cerr)
		}
		if err != nil {
			return fmt.Errorf("worker: drain: %w", err)
		}
		return nil
	}

	type result struct {
		info LoadInfo
		err  error
	}
	loaded := make(chan result, 1)
	go func() {
		info, err := s.Load(ctx)
		loaded <- result{info, err}
	}()
	select {
	case r := <-loaded:
		if r.err != nil {
			ev.emit(event{Event: "failed", Error: r.err.Error()})
			_ = shutdown()
			return r.err
		}
		ready := event{Event: "ready", LoadMS: ptr(r.info.Duration.Milliseconds()), Runtime: r.info.Runtime}
		if r.info.WarmUpRequests > 0 {
			ready.WarmUpRequests = ptr(int64(r.info.WarmUpRequests))
			ready.WarmUpMS = ptr(r.info.WarmUpDuration.Milliseconds())
		}
		ev.emit(ready)
	case <-ctx.Done():
		// Loading runs inside the runtime and cannot be interrupted; the process exits anyway.
		_ = shutdown()
		return nil
	case err := <-serveErr:
		return fmt.Errorf("worker: serve: %w", err)
	}

	select {
	case <-ctx.Done():
		s.log.Info("draining")
		return shutdown()
	case err := <-serveErr:
		_ = s.Close()
		return fmt.Errorf("worker: serve: %w", err)
	}
}

// event is one stdout line of the process contract.
type event struct {
	Event  string `json:"event"`
	Addr   string `json:"addr,omitempty"`
	Socket string `json:"socket,omitempty"` // the frame socket, when served
	LoadMS *int64 `json:"load_ms,omitempty"`
	// The bundle's warm-up requests replayed before ready, and how long they took.
	WarmUpRequests *int64 `json:"warmup_requests,omitempty"`
	WarmUpMS       *int64 `json:"warmup_ms,omitempty"`
	Runtime        string `json:"runtime,omitempty"`
	Error          string `json:"error,omitempty"`
}

func ptr[T any](v T) *T { return &v }

type events struct {
	mu sync.Mutex
	w  io.Writer
}

// emit writes ev as one line; json.Marshal escapes newlines inside strings.
func (e *events) emit(ev event) {
	if e.w == nil {
		return
	}
	b, _ := json.Marshal(ev) // cannot fail: strings and ints only
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = e.w.Write(append(b, '\n'))
}

// ReportFailure writes the "failed" event for err to w (the process's stdout), for failures
// before Run starts, such as a listen address that is refused.
func ReportFailure(w io.Writer, err error) {
	(&events{w: w}).emit(event{Event: "failed", Error: err.Error()})
}

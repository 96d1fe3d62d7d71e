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
	"sync"
	"sync/atomic"
	"time"

	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/codec"
	"github.com/openeas/openeas/internal/processor"
)

// Opener loads the model file at modelPath with the runtime settings rt.
type Opener func(modelPath string, rt processor.Runtime) (processor.Processor, error)

// Options configure a worker. Only BundleDir, Name and Openers are required.
type Options struct {
	BundleDir string            // sealed bundle: bundle.json, model/
	Name      string            // service name; also the model name of the v2 protocol
	Openers   map[string]Opener // by canonical processor name, e.g. "onnxruntime_cpu"

	MaxBody         int64         // request body cap in bytes; default DefaultMaxBody
	RequestTimeout  time.Duration // per-request limit (→ 408); 0: none besides the client's
	ShutdownTimeout time.Duration // how long Run drains in-flight requests; default 30s
	WarmUp          bool          // run one synthetic request before reporting ready

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
	handler http.Handler
	bodies  sync.Pool // *[]byte request body buffers
}

// model is the loaded bundle; immutable once published.
type model struct {
	proc          processor.Processor
	sig           processor.Signature
	family        codec.Family
	processorName string
	metadata      []byte // v2 model metadata answer
}

// New returns a server for opts; call Load (or Run) to load the model.
func New(opts Options) *Server {
	opts.MaxBody = cmp.Or(opts.MaxBody, DefaultMaxBody)
	opts.ShutdownTimeout = cmp.Or(opts.ShutdownTimeout, DefaultShutdownTimeout)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: log}
	s.handler = s.routes()
	return s
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Ready reports whether the model is loaded.
func (s *Server) Ready() bool { return s.model.Load() != nil }

// Load reads bundle.json, opens the model with the processor it names, applies the bundle's
// runtime settings, warms it up if asked, and then starts answering predictions. It returns
// the time loading took. Calling it again after success is an error.
func (s *Server) Load(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if s.Ready() {
		return 0, errors.New("worker: model already loaded")
	}
	m, err := ReadManifest(s.opts.BundleDir)
	if err != nil {
		return 0, err
	}
	open := s.opts.Openers[m.Processor]
	if open == nil {
		return 0, fmt.Errorf("processor %s is not available in this worker", m.Processor)
	}
	path := filepath.Join(s.opts.BundleDir, "model", filepath.FromSlash(m.ModelEntry))
	s.log.Info("loading model", "processor", m.Processor, "model", path)
	proc, err := open(path, m.Runtime)
	if err != nil {
		return 0, fmt.Errorf("load %s with %s: %w", m.ModelEntry, m.Processor, err)
	}
	md := &model{proc: proc, sig: proc.Signature(), family: codec.FamilyOf(m.Processor), processorName: m.Processor}
	md.metadata = codec.V2ModelMetadata(s.opts.Name, v2Platform(md.family), md.sig)
	if s.opts.WarmUp {
		if err := warmUp(ctx, md); err != nil {
			// A model may reject synthetic inputs (value-dependent shapes, say); that is not a
			// reason to refuse traffic, but worth knowing when the first request is slow.
			s.log.Warn("warm-up skipped", "err", err)
		}
	}
	if !s.model.CompareAndSwap(nil, md) {
		proc.Close()
		return 0, errors.New("worker: model already loaded")
	}
	d := time.Since(start)
	s.log.Info("model ready", "load", d.Round(time.Millisecond), "inputs", len(md.sig.Inputs), "outputs", len(md.sig.Outputs))
	return d, nil
}

// Close releases the processor. Call it only once no request is in flight (after
// http.Server.Shutdown).
func (s *Server) Close() error {
	md := s.model.Swap(nil)
	if md == nil {
		return nil
	}
	return md.proc.Close()
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
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	ev.emit(event{Event: "listening", Addr: ln.Addr().String()})

	shutdown := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
		defer cancel()
		err := srv.Shutdown(sctx)
		if cerr := s.Close(); cerr != nil {
			s.log.Warn("close processor", "err", cerr)
		}
		if err != nil {
			return fmt.Errorf("worker: drain: %w", err)
		}
		return nil
	}

	type result struct {
		d   time.Duration
		err error
	}
	loaded := make(chan result, 1)
	go func() {
		d, err := s.Load(ctx)
		loaded <- result{d, err}
	}()
	select {
	case r := <-loaded:
		if r.err != nil {
			ev.emit(event{Event: "failed", Error: r.err.Error()})
			_ = shutdown()
			return r.err
		}
		ms := r.d.Milliseconds()
		ev.emit(event{Event: "ready", LoadMS: &ms})
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
	LoadMS *int64 `json:"load_ms,omitempty"`
	Error  string `json:"error,omitempty"`
}

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

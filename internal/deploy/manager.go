// Package deploy runs the lifecycle of services: the deploy pipeline (fetch the model, run
// the plugins once per content key, seal a bundle, start instances), modify, scale, stop,
// start and delete. Every step is persisted in the store before it is acted on, so a
// restarted easd resumes or reports every service truthfully.
package deploy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/objstore"
	"github.com/openeas/openeas/internal/plugin"
	"github.com/openeas/openeas/internal/scheduler"
	"github.com/openeas/openeas/internal/spec"
	"github.com/openeas/openeas/internal/store"
)

// Errors the API layer maps to status codes (checked with errors.Is).
var (
	ErrNotFound = errors.New("service not found")
	ErrExists   = errors.New("service already exists")
	ErrInvalid  = errors.New("invalid service")
	ErrConflict = errors.New("operation not allowed in the current state")
)

// Scheduler runs instances; *scheduler.Local implements it.
// Apply and Stop block until done (or ctx ends); Status never blocks.
type Scheduler interface {
	Apply(ctx context.Context, d scheduler.Deployment) error
	Stop(ctx context.Context, service string) error
	Status(service string) scheduler.Status
}

// Options configure a Manager. Store, Bundles and Scheduler are required.
type Options struct {
	DataDir   string
	Store     *store.Store
	Bundles   *bundle.Store
	Scheduler Scheduler
	Plugins   plugin.Resolver
	Logger    *slog.Logger
	// EndpointURL is the base URL users reach the gateway at, e.g. "http://127.0.0.1:8080".
	EndpointURL string
	// RuntimeVersion enters every plugin content key, so results made for another runtime
	// are never reused (e.g. "onnxruntime-1.30.0").
	RuntimeVersion string
	// PluginEnv is the whole environment of plugin processes besides the EAS_PLUGIN_*
	// variables (plugins never inherit easd's own, which may hold secrets).
	PluginEnv []string
	// RunPlugin, when set, runs plugins in place of local child processes (the Kubernetes
	// backend runs them as Jobs). o is what plugin.Run would get, without Exe; key is the
	// run's content key. The result is cached by content key exactly as for a local run.
	RunPlugin func(ctx context.Context, service, key string, ps plugin.Spec, o plugin.RunOptions) (plugin.Result, error)
	// PluginTimeout bounds one plugin run (default 1h).
	PluginTimeout time.Duration
	// MaxModelBytes and MaxModelFiles cap what a model_path may unpack to (0 = modelsource defaults).
	MaxModelBytes int64
	MaxModelFiles int
	// ObjectCacheMaxBytes bounds the object cache in DataDir/objects (least recently used
	// objects go first; see modelsource.Options); 0: no bound.
	ObjectCacheMaxBytes int64
	// PluginCacheMaxBytes bounds the plugin result cache in DataDir/plugins: after each
	// operation the least recently used results go until the rest fit (a service deployed
	// again from an evicted result runs its plugins again); 0: no bound.
	PluginCacheMaxBytes int64
	// TokenChanged is told when a service's token appears, changes or goes (the gateway's view).
	TokenChanged func(service, token string, exists bool)
	// ProcessorCheck, when set, says whether this installation can serve a processor (e.g.
	// that the libtorch shim is installed, for PyTorch); an error refuses create and modify
	// with its message. nil accepts every processor.
	ProcessorCheck func(spec.ProcessorInfo) error
	// GPUCheck, when set, says whether this installation can serve a GPU processor on a
	// GPU; an error says why not. nil: every GPU processor is served on a GPU.
	GPUCheck func(spec.ProcessorInfo) error
	// GPUFallback serves a GPU processor that GPUCheck refuses on CPU instead (its
	// OnCPU processor), with a Warning event and EAS_PLUGIN_DEVICE=cpu for its plugins;
	// false refuses such a service at create and modify.
	GPUFallback bool
	// RateLimitChanged is told a service's metadata.rpc.rate_limit (QPS, 0 = none) each
	// time a version of it is applied; a deleted service is reported by TokenChanged.
	RateLimitChanged func(service string, qps int)
	// OSS and S3 configure oss:// and s3:// model paths; a service's oss_endpoint overrides
	// OSS.Endpoint. Downloaded objects are cached in DataDir/objects.
	OSS, S3 objstore.Config
}

// Manager owns the lifecycle of every service. Its methods are safe for concurrent use:
// calls on one service are serialized by that service's op lock; long steps run in
// background goroutines owned by Run.
type Manager struct {
	opts   Options
	store  *store.Store
	log    *slog.Logger
	hub    *hub
	baseCt context.Context // Run's context: background work stops with it

	mu  sync.Mutex          // guards ops and started
	ops map[string]*service // per-service op state
	wg  sync.WaitGroup      // background operations
	// started is closed by Run once it has listed the stored services to resume; calls that
	// change services wait for it, so resumption never mistakes a new service for an
	// interrupted one.
	started chan struct{}
	// builds is read-held by every build, from its start until its bundle's digest is in the
	// store; collectBundles write-holds it, so it never removes a bundle just sealed.
	builds        sync.RWMutex
	collectWanted atomic.Bool // a collection was asked for since the last one began
}

// service serializes operations on one service. cancel stops the operation in progress
// (Delete uses it to abandon a long deploy).
type service struct {
	mu     sync.Mutex // held for the whole of an operation
	cmu    sync.Mutex // guards cancel
	cancel context.CancelFunc
}

// New makes a Manager; call Run to start it.
func New(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PluginTimeout == 0 {
		opts.PluginTimeout = time.Hour
	}
	return &Manager{
		opts: opts, store: opts.Store, log: opts.Logger, hub: newHub(),
		ops: make(map[string]*service), started: make(chan struct{}),
		baseCt: context.Background(),
	}
}

// Run resumes every stored service (instances of Running ones restart from their bundles;
// interrupted deploys run again, reusing every cached step), then serves until ctx ends.
// On return all background operations have stopped.
func (m *Manager) Run(ctx context.Context) error {
	recs, err := m.store.ListServices(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("list services: %w", err)
	}
	m.baseCt = ctx
	close(m.started)
	if err := m.resume(ctx, recs); err != nil && ctx.Err() == nil {
		return err
	}
	m.collectBundles()
	<-ctx.Done()
	m.mu.Lock()
	for _, s := range m.ops {
		s.cmu.Lock()
		if s.cancel != nil {
			s.cancel()
		}
		s.cmu.Unlock()
	}
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}

// waitStarted blocks a call that changes services until Run has begun.
func (m *Manager) waitStarted(ctx context.Context) error {
	select {
	case <-m.started:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Manager) svc(name string) *service {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.ops[name]
	if s == nil {
		s = &service{}
		m.ops[name] = s
	}
	return s
}

// background runs op on service name after any operation already in progress there,
// with a context that Delete (and shutdown) can cancel.
func (m *Manager) background(name string, op func(ctx context.Context)) {
	<-m.started
	s := m.svc(name)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		s.mu.Lock()
		defer s.mu.Unlock()
		ctx, cancel := context.WithCancel(m.baseCt)
		s.cmu.Lock()
		s.cancel = cancel
		s.cmu.Unlock()
		defer func() {
			s.cmu.Lock()
			s.cancel = nil
			s.cmu.Unlock()
			cancel()
		}()
		if ctx.Err() == nil {
			op(ctx)
			m.collectBundles()
		}
	}()
}

// cancelOp stops the operation in progress on name, if any.
func (m *Manager) cancelOp(name string) {
	s := m.svc(name)
	s.cmu.Lock()
	if s.cancel != nil {
		s.cancel()
	}
	s.cmu.Unlock()
}

// event appends an event and, when status is not empty, sets the service status (and
// message) in the same transaction, so that a follower who sees a settled status has every
// event up to the one announcing it.
func (m *Manager) event(ctx context.Context, name, typ, msg, status, message string) {
	if _, err := m.store.AppendEvent(context.WithoutCancel(ctx), store.EventRecord{Service: name, Type: typ, Message: msg, Status: status}, message); err != nil && !isNotFound(err) {
		m.log.Error("append event", "service", name, "err", err)
	}
	lvl := slog.LevelInfo
	if typ == api.EventWarning {
		lvl = slog.LevelWarn
	}
	m.log.Log(ctx, lvl, msg, "service", name)
	m.hub.notify(name)
}

func (m *Manager) okEvent(ctx context.Context, name, msg string) {
	m.event(ctx, name, api.EventNormal, msg, "", "")
}

// SchedulerEvent is the scheduler's EventFunc: instance starts, crashes and restarts
// become service events.
func (m *Manager) SchedulerEvent(service, typ, message string) {
	m.event(context.Background(), service, typ, message, "", "")
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

func (m *Manager) getService(ctx context.Context, name string) (store.ServiceRecord, error) {
	r, err := m.store.GetService(ctx, name)
	if isNotFound(err) {
		return r, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return r, err
}

func newToken() string {
	b := make([]byte, 30)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

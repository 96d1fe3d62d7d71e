// Package daemon wires easd together: store, bundle store, deploy manager, local scheduler,
// gateway and control-plane API on one listener. cmd/easd parses flags into Options and
// calls Run; nothing here reads flags or the environment.
package daemon

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/apiserver"
	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/deploy"
	"github.com/openeas/openeas/internal/gateway"
	"github.com/openeas/openeas/internal/metrics"
	"github.com/openeas/openeas/internal/objstore"
	"github.com/openeas/openeas/internal/plugin"
	"github.com/openeas/openeas/internal/scheduler"
	"github.com/openeas/openeas/internal/spec"
	"github.com/openeas/openeas/internal/store"
	"github.com/openeas/openeas/internal/torch/torchinstall"
	"github.com/openeas/openeas/internal/version"
)

// Options configure easd.
type Options struct {
	DataDir string
	Listen  string // e.g. "127.0.0.1:8080"
	// Listener, when set, is used instead of Listen (tests pass one on port 0).
	Listener net.Listener
	// EndpointURL is how users reach this easd; default "http://" + the listen address.
	EndpointURL string
	// WorkerBinary and BladeBinary default to eas-worker and blade next to BinDir.
	BinDir       string
	WorkerBinary string
	BladeBinary  string
	// PluginEnv is the environment plugins run with (they never inherit easd's).
	PluginEnv []string
	// WorkerEnv is the environment of worker processes (nil: easd's own). Mains leave out
	// object-store credentials: workers never need them.
	WorkerEnv []string
	// WorkerArgs are extra flags for every worker (e.g. --ort-lib PATH).
	WorkerArgs []string
	Logger     *slog.Logger
	// Ready, when set, receives the bound address once easd serves.
	Ready func(addr string)
	// OSS and S3 configure oss:// and s3:// model paths (endpoint, credentials, addressing);
	// a service's oss_endpoint overrides OSS.Endpoint for that service.
	OSS, S3 objstore.Config
	// BundleStore is where sealed bundles and plugin results are shared with other easd
	// processes: "" or "local" (this data directory only), a directory path, or
	// oss://bucket/prefix or s3://bucket/prefix (using OSS or S3 above).
	BundleStore string
	// Scheduler is where instances run: SchedulerLocal ("" too: worker processes on this
	// machine) or SchedulerKubernetes (pods, configured by Kube).
	Scheduler string
	Kube      KubeOptions
	// GPUFallback is what happens to a GPU processor that this installation has no GPU
	// runtime for: GPUFallbackCPU ("" too) serves it on CPU with a Warning event,
	// GPUFallbackRefuse refuses the service at create.
	GPUFallback string
	// WorkerTransport is how the gateway reaches local workers: WorkerTransportUnix ("" too:
	// package frame over a unix socket in a private temporary directory) or
	// WorkerTransportHTTP (HTTP to the worker's loopback port).
	WorkerTransport string
	// ObjectCacheMaxBytes bounds DATA/objects, the cache of downloaded oss:// and s3://
	// objects (least recently used first); 0: no bound.
	ObjectCacheMaxBytes int64
	// PluginCacheMaxBytes bounds DATA/plugins, the plugin result cache (deploy.Options); 0: none.
	PluginCacheMaxBytes int64
}

// maxSocketPath is the longest unix socket path Linux takes (sun_path holds 108 bytes).
const maxSocketPath = 108

// WorkerTransport values.
const (
	WorkerTransportUnix = "unix"
	WorkerTransportHTTP = "http"
)

// GPUFallback values.
const (
	GPUFallbackCPU    = "cpu"
	GPUFallbackRefuse = "refuse"
)

// Run serves until ctx ends, then shuts down in order: stop taking requests, drain
// in-flight ones, stop background deploys, stop workers, close the store.
func Run(ctx context.Context, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch o.GPUFallback {
	case "", GPUFallbackCPU, GPUFallbackRefuse:
	default:
		return fmt.Errorf("gpu fallback %q: want %s or %s", o.GPUFallback, GPUFallbackCPU, GPUFallbackRefuse)
	}
	switch o.WorkerTransport {
	case "", WorkerTransportUnix, WorkerTransportHTTP:
	default:
		return fmt.Errorf("worker transport %q: want %s or %s", o.WorkerTransport, WorkerTransportUnix, WorkerTransportHTTP)
	}
	if err := prepareDataDir(o.DataDir); err != nil {
		return err
	}
	adminToken, err := AdminToken(o.DataDir)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, filepath.Join(o.DataDir, "easd.db"))
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	shared, err := bundle.OpenShared(ctx, o.BundleStore, o.OSS, o.S3, log)
	if err != nil {
		return err
	}
	var tier bundle.BundleStore // a nil *Shared must stay a nil interface
	if shared != nil {
		tier = shared.Bundles
	}
	bundles, err := bundle.OpenStoreWith(o.DataDir, bundle.StoreOptions{Shared: tier, Logger: log})
	if err != nil {
		return fmt.Errorf("open bundle store: %w", err)
	}
	// Scratch from a previous run (e.g. a deploy cut by kill -9) is never reused.
	if err := bundles.ClearTmp(); err != nil {
		return fmt.Errorf("clean scratch: %w", err)
	}

	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", o.Listen); err != nil {
			return fmt.Errorf("listen %s: %w", o.Listen, err)
		}
	}
	addr := ln.Addr().String()
	endpoint := o.EndpointURL
	if endpoint == "" {
		endpoint = "http://" + addr
	}

	worker, blade := o.WorkerBinary, o.BladeBinary
	if worker == "" {
		worker = filepath.Join(o.BinDir, "eas-worker")
	}
	if blade == "" {
		if p := filepath.Join(o.BinDir, "blade"); fileExists(p) {
			blade = p
		}
	}
	if !fileExists(worker) {
		log.Warn("worker binary not found: services will fail to start until it is built (make build)", "path", worker)
	}

	tokens := newTokenTable()
	mets := metrics.New()
	gw := gateway.New(gateway.Options{Services: tokens, Logger: log, Observer: mets})
	defer gw.Close()
	mets.SetInFlightSource(gw.EachInFlight)
	serviceGone := func(service, token string, exists bool) {
		tokens.set(service, token, exists)
		if !exists {
			gw.SetRateLimit(service, 0)
			mets.Forget(service)
		}
	}
	var mgr *deploy.Manager
	schedEvents := func(service, typ, msg string) {
		if isRestart(typ, msg) {
			mets.WorkerRestart(service)
		}
		mgr.SchedulerEvent(service, typ, msg)
	}
	gpuCheck := func(p spec.ProcessorInfo) error { return gpuRuntime(filepath.Dir(worker), p) }
	var sched scheduler.Backend
	switch o.Scheduler {
	case "", SchedulerLocal:
		o.Scheduler = SchedulerLocal
		var sockets string
		if o.WorkerTransport != WorkerTransportHTTP {
			// Short and private (0700): socket paths must fit in 108 bytes, and workers
			// trust whoever connects.
			if sockets, err = os.MkdirTemp("", "openeas-"); err != nil {
				return fmt.Errorf("worker socket directory: %w", err)
			}
			defer os.RemoveAll(sockets)
			if len(sockets)+len("/w0000000.sock") >= maxSocketPath {
				log.Warn("worker socket directory path too long for unix sockets (set TMPDIR shorter): the gateway uses HTTP to workers", "dir", sockets)
				sockets = ""
			}
		}
		sched = scheduler.NewLocal(scheduler.Options{
			WorkerBinary: worker, WorkerArgs: o.WorkerArgs, WorkerEnv: o.WorkerEnv, SocketDir: sockets,
			Router: router{gw, mets}, Logger: log, Events: schedEvents,
		})
	case SchedulerKubernetes:
		kb, err := newKubeBackend(o, st, shared, router{gw, mets}, schedEvents, gpuCheck, log)
		if err != nil {
			return err
		}
		sched = kb
		// Tokens live in the services' Secrets too; a deleted service's objects go with it.
		local := serviceGone
		serviceGone = func(service, token string, exists bool) {
			local(service, token, exists)
			kb.TokenChanged(service, token, exists)
		}
	default:
		return fmt.Errorf("scheduler %q: want %s or %s", o.Scheduler, SchedulerLocal, SchedulerKubernetes)
	}
	mgr = deploy.New(deploy.Options{
		DataDir: o.DataDir, Store: st, Bundles: bundles, Scheduler: sched,
		Plugins: plugin.Resolver{BladeBinary: blade}, Logger: log, EndpointURL: endpoint,
		RuntimeVersion: runtimeVersion(blade), TokenChanged: serviceGone, RateLimitChanged: gw.SetRateLimit,
		PluginEnv: o.PluginEnv, OSS: o.OSS, S3: o.S3, RunPlugin: pluginRunner(sched), ObjectCacheMaxBytes: o.ObjectCacheMaxBytes,
		PluginCacheMaxBytes: o.PluginCacheMaxBytes,
		// PyTorch needs the libtorch shim next to the worker; easd only looks for its files.
		ProcessorCheck: func(p spec.ProcessorInfo) error {
			if p.Runtime != "libtorch" {
				return nil
			}
			return torchinstall.Check(filepath.Dir(worker), p.GPU)
		},
		GPUCheck:    gpuCheck,
		GPUFallback: o.GPUFallback != GPUFallbackRefuse,
	})
	apis := apiserver.New(apiserver.Options{
		Manager: mgr, AdminToken: adminToken, Logger: log,
		Version: api.Version{Version: version.Version, ORTVersion: version.ONNXRuntime, DataDir: o.DataDir,
			Scheduler: o.Scheduler, GoVersion: runtime.Version(), StartedTime: time.Now().UTC()},
	})

	mux := http.NewServeMux()
	mux.Handle("/api/v2/", apis)
	mux.Handle("/api/predict/", gw)
	// Unauthenticated like /healthz: it names services and counts, never tokens or data.
	// easd listens on loopback unless told otherwise.
	mux.Handle("GET /metrics", mets.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	// Lifetimes: the scheduler outlives the manager (which may still be draining a
	// deploy), and both outlive the HTTP server.
	schedCtx, stopSched := context.WithCancel(context.WithoutCancel(ctx))
	mgrCtx, stopMgr := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(2)
	go func() { defer wg.Done(); errc <- wrapErr("scheduler", sched.Run(schedCtx)) }()
	go func() { defer wg.Done(); errc <- wrapErr("deploy manager", mgr.Run(mgrCtx)) }()
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()
	log.Info("easd serving", "addr", addr, "data_dir", o.DataDir, "worker", worker, "blade", blade)
	if o.Ready != nil {
		o.Ready(addr)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-srvDone:
		runErr = fmt.Errorf("http server: %w", err)
	case err := <-errc:
		runErr = err
	}
	log.Info("easd shutting down")
	shCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = srv.Shutdown(shCtx) // stop taking requests; in-flight predictions drain
	stopMgr()
	stopSched()
	wg.Wait()
	return runErr
}

func wrapErr(what string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

func prepareDataDir(dir string) error {
	if dir == "" {
		return errors.New("data dir: required (--data-dir)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	return nil
}

// AdminToken returns the admin token stored in dir/admin.token, creating it (mode 0600)
// at first start.
func AdminToken(dir string) (string, error) {
	p := filepath.Join(dir, "admin.token")
	if b, err := os.ReadFile(p); err == nil {
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("admin token %s: empty file", p)
		}
		return tok, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("admin token: %w", err)
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("admin token: %w", err)
	}
	return tok, f.Close()
}

// runtimeVersion goes into every plugin content key: a new ONNX Runtime or a rebuilt
// blade never reuses results the old one made.
func runtimeVersion(blade string) string {
	v := "onnxruntime-" + version.ONNXRuntime
	if blade == "" {
		return v
	}
	f, err := os.Open(blade)
	if err != nil {
		return v
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return v
	}
	return v + " blade-" + hex.EncodeToString(h.Sum(nil))[:16]
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// tokenTable is the gateway's view of services and their tokens, fed by the deploy manager.
type tokenTable struct {
	mu sync.RWMutex // guards m
	m  map[string]string
}

func newTokenTable() *tokenTable { return &tokenTable{m: make(map[string]string)} }

func (t *tokenTable) set(service, token string, exists bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if exists {
		t.m[service] = token
	} else {
		delete(t.m, service)
	}
}

// Lookup implements gateway.Services.
func (t *tokenTable) Lookup(service string) (string, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	tok, ok := t.m[service]
	return tok, ok
}

// router adapts the gateway to the scheduler's Router (each package keeps its own
// Endpoint type, so neither imports the other) and keeps eas_ready_instances.
type router struct {
	gw   *gateway.Gateway
	mets *metrics.Metrics
}

func (r router) SetEndpoints(service string, eps []scheduler.Endpoint) {
	out := make([]gateway.Endpoint, len(eps))
	for i, e := range eps {
		out[i] = gateway.Endpoint{ID: e.ID, Addr: e.Addr, Socket: e.Socket, Version: e.Version}
	}
	r.gw.SetEndpoints(service, out)
	r.mets.SetReady(service, len(eps))
}

// isRestart reports whether a scheduler event says an instance exited unexpectedly and
// is being restarted (the scheduler's "instance ID: WHY; restarting in DELAY").
func isRestart(typ, msg string) bool {
	return typ == "Warning" && strings.Contains(msg, "; restarting in ")
}

// gpuRuntime says whether the installation in binDir can serve GPU processor p on a GPU.
// The bundled ONNX Runtime is a CPU-only build (npm onnxruntime-node ships no CUDA
// provider), so ONNX and converted TensorFlow models never can; PyTorch can when the
// libtorch shim was built against a CUDA libtorch.
func gpuRuntime(binDir string, p spec.ProcessorInfo) error {
	if p.Runtime != "libtorch" {
		return errors.New("the bundled ONNX Runtime is a CPU-only build, with no CUDA execution provider")
	}
	info, err := torchinstall.Read(binDir)
	if err != nil {
		// No libtorch at all: ProcessorCheck reports that, with what to install.
		return errors.New("no libtorch shim is installed")
	}
	if !info.CUDA {
		return fmt.Errorf("the libtorch shim is built against CPU-only libtorch %s", info.Libtorch)
	}
	return nil
}

// Command eas-worker is one serving instance of OpenEAS: it loads a sealed bundle and serves
// it over HTTP on loopback. easd's scheduler starts and supervises it; the process contract
// (stdout events, stderr logs, HTTP routes, SIGTERM draining) is in docs/architecture.md.
//
// The worker relies on the parent for its lifetime: the scheduler starts it with
// Pdeathsig=SIGKILL, so it dies with easd. It deliberately does not also watch stdin or its
// parent pid: one mechanism, owned by the side that knows when the parent is gone.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/openeas/openeas/internal/ort"
	"github.com/openeas/openeas/internal/processor"
	"github.com/openeas/openeas/internal/processor/onnxrt"
	"github.com/openeas/openeas/internal/processor/torchproc"
	"github.com/openeas/openeas/internal/torch"
	"github.com/openeas/openeas/internal/worker"
)

const (
	envORTLib    = "OPENEAS_ORT_LIB"
	envTorchShim = "OPENEAS_TORCH_SHIM"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	// The pods' helper commands (docs/kubernetes.md); serving takes only flags.
	if len(args) > 0 {
		switch args[0] {
		case "fetch-bundle", "objstore":
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			if args[0] == "fetch-bundle" {
				return runFetchBundle(ctx, args[1:], os.Getenv, os.Stderr)
			}
			return runObjstore(ctx, args[1:], os.Getenv, os.Stderr)
		}
	}
	fs := flag.NewFlagSet("eas-worker", flag.ContinueOnError)
	bundleDir := fs.String("bundle", "", "sealed bundle directory (bundle.json, model/); required")
	name := fs.String("name", "", "service name (also the Open Inference Protocol model name); required")
	listen := fs.String("listen", "127.0.0.1:0", "address to serve on; loopback only unless --allow-remote")
	allowRemote := fs.Bool("allow-remote", false, "allow a --listen address that is not loopback")
	listenUnix := fs.String("listen-unix", "", "also serve the local gateway's framed protocol on this unix socket path (only this user may connect)")
	ortLib := fs.String("ort-lib", "", "ONNX Runtime library (default: $"+envORTLib+", else libonnxruntime.so.1 next to this executable)")
	torchShim := fs.String("torch-shim", "", "libtorch shim "+torch.ShimName+" (default: $"+envTorchShim+", else the one next to this executable)")
	maxBody := fs.Int64("max-body", worker.DefaultMaxBody, "largest request body in bytes (larger: HTTP 413)")
	timeout := fs.Duration("timeout", 0, "keepalive: per-request limit from arrival, queueing included, e.g. 5s (exceeded: HTTP 408, inference cancelled); 0 means none")
	threads := fs.Int("worker-threads", worker.DefaultWorkerThreads, "inferences run at once (metadata.rpc.worker_threads)")
	maxQueue := fs.Int("max-queue", worker.DefaultMaxQueueSize, "requests that may wait beyond those running; more: HTTP 450 (metadata.rpc.max_queue_size)")
	batching := fs.Bool("batching", false, "merge concurrent requests along the batch dimension (metadata.rpc.batching); the model's inputs and outputs need a dynamic first dimension")
	maxBatch := fs.Int("max-batch-size", worker.DefaultMaxBatchSize, "most rows in one merged inference (metadata.rpc.max_batch_size)")
	batchWait := fs.Duration("max-batch-timeout", worker.DefaultMaxBatchWait, "how long a batch waits to fill (metadata.rpc.max_batch_timeout)")
	warmUp := fs.Bool("warm-up", true, "run one synthetic request before reporting ready when the bundle has no warm-up data")
	debug := fs.Bool("debug", false, "log at debug level")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: eas-worker --bundle DIR --name SERVICE [flags]\n"+
			"       eas-worker fetch-bundle --digest sha256:… --dir DIR   (download and verify a sealed bundle from the shared store)\n"+
			"       eas-worker objstore get|put …                        (copy plugin Job trees to and from the shared store)\n"+
			"Run a subcommand with --help for its flags.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nEnvironment:\n  %s\tpath of libonnxruntime.so (overridden by --ort-lib)\n", envORTLib)
		fmt.Fprintf(fs.Output(), "  %s\tpath of %s, the libtorch shim (overridden by --torch-shim)\n", envTorchShim, torch.ShimName)
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("service", *name)

	if *bundleDir == "" || *name == "" || *maxBody <= 0 || *threads < 1 || *maxQueue < 1 || *maxBatch < 1 || *batchWait < 0 || *timeout < 0 {
		fmt.Fprintln(os.Stderr, "eas-worker: --bundle and --name are required; --max-body, --worker-threads, --max-queue and --max-batch-size must be positive; --max-batch-timeout and --timeout must not be negative")
		fs.Usage()
		return 2
	}
	if err := checkListen(*listen, *allowRemote); err != nil {
		worker.ReportFailure(os.Stdout, err)
		log.Error("refusing to start", "err", err)
		return 1
	}
	lib := *ortLib
	if lib == "" {
		lib = os.Getenv(envORTLib)
	}
	if lib == "" {
		exe, _ := os.Executable()
		lib = ort.FindLibrary(filepath.Dir(exe))
	}

	shim := *torchShim
	if shim == "" {
		shim = os.Getenv(envTorchShim)
	}
	if shim == "" {
		exe, _ := os.Executable()
		shim = torch.FindShim(filepath.Dir(exe))
	}
	openTorch := func(device string) worker.Opener {
		return func(path string, rt processor.Runtime) (processor.Processor, error) {
			if err := torch.Init(shim); err != nil { // here, so that a missing libtorch is a "failed" event
				return nil, err
			}
			p, err := torchproc.Open(path, rt, torchproc.Options{Device: device})
			if err != nil {
				return nil, err
			}
			log.Info("serving with "+p.RuntimeVersion(), "libtorch", torch.Version(), "device", device, "intra_op_threads", torch.Threads())
			return p, nil
		}
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		worker.ReportFailure(os.Stdout, err)
		log.Error("listen", "err", err)
		return 1
	}
	var frameLn net.Listener
	if *listenUnix != "" {
		if frameLn, err = listenSocket(*listenUnix); err != nil {
			worker.ReportFailure(os.Stdout, err)
			log.Error("listen", "err", err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err = worker.Run(ctx, ln, worker.Options{
		BundleDir: *bundleDir,
		Name:      *name,
		Openers: map[string]worker.Opener{
			"onnxruntime_cpu": func(path string, rt processor.Runtime) (processor.Processor, error) {
				// Initialized here, not earlier, so a missing library is a "failed" event
				// that the scheduler quotes.
				if err := ort.Init(lib); err != nil {
					return nil, err
				}
				return onnxrt.Open(path, rt)
			},
			"pytorch_cpu": openTorch("cpu"),
			"pytorch_gpu": openTorch("cuda"),
		},
		MaxBody:         *maxBody,
		RequestTimeout:  *timeout,
		WorkerThreads:   *threads,
		MaxQueueSize:    *maxQueue,
		Batching:        *batching,
		MaxBatchSize:    *maxBatch,
		MaxBatchWait:    *batchWait,
		ShutdownTimeout: 30 * time.Second,
		WarmUp:          *warmUp,
		FrameListener:   frameLn,
		Events:          os.Stdout,
		Logger:          log,
	})
	if err != nil {
		log.Error("worker stopped", "err", err)
		return 1
	}
	return 0
}

// checkListen refuses addresses other machines can reach, unless allowed: workers trust
// their callers (the gateway does authentication).
func checkListen(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", addr, err)
	}
	if allowRemote || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return errors.New("--listen " + addr + " is not a loopback address; pass --allow-remote to serve other machines")
}

// listenSocket listens on a unix socket only this user may connect to: workers trust their
// callers (the gateway does authentication). A stale socket file from a killed worker of the
// same path is replaced.
func listenSocket(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	old := syscall.Umask(0o077)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("--listen-unix: %w", err)
	}
	return ln, nil
}

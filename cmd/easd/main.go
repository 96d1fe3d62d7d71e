// Command easd is the OpenEAS daemon: control-plane API, deploy pipeline, store, local
// scheduler and predict gateway in one process.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/openeas/openeas/internal/daemon"
	"github.com/openeas/openeas/internal/objstore"
	"github.com/openeas/openeas/internal/version"
)

const usage = `easd — the OpenEAS daemon

Usage:
  easd serve [--data-dir DIR] [--listen ADDR] [flags]
  easd version

serve runs the control-plane API (/api/v2/services, admin token in DIR/admin.token),
the predict gateway (/api/predict/{service}) and the local scheduler, which starts one
eas-worker process per instance. Stop it with Ctrl-C or SIGTERM: in-flight requests
drain and every worker stops with it.

Flags of serve:
`

const envHelp = `
Environment:
  OPENEAS_ORT_LIB   path of libonnxruntime.so for the workers and blade (default: next to the binaries)
  OPENEAS_TORCH_SHIM path of libopeneas_torch.so for PyTorch workers and blade (default: next to the binaries)
  EASD_LOG_LEVEL    debug, info (default), warn or error
  EASD_BUNDLE_STORE default for --bundle-store

Object storage (oss:// and s3:// model paths, --bundle-store oss://… or s3://…):
  EAS_OSS_ENDPOINT       OSS endpoint, e.g. oss-cn-hangzhou.aliyuncs.com or http://127.0.0.1:9000
                         (--oss-endpoint overrides it; a service's oss_endpoint overrides both)
  OSS_ACCESS_KEY_ID      OSS credentials (ALIBABA_CLOUD_ACCESS_KEY_ID also works)
  OSS_ACCESS_KEY_SECRET  (ALIBABA_CLOUD_ACCESS_KEY_SECRET also works)
  OSS_SESSION_TOKEN      for temporary STS credentials (ALIBABA_CLOUD_SECURITY_TOKEN also works)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION (or AWS_DEFAULT_REGION)
                         credentials for s3://
  AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL
                         S3 endpoint (default s3.amazonaws.com; --s3-endpoint overrides)
Credentials are read from the environment only (never flags, which other users can see),
and never appear in logs, events or errors.
`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "easd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, usage)
		serveFlags(&daemon.Options{}).PrintDefaults()
		fmt.Fprint(os.Stderr, envHelp)
		return nil
	}
	switch args[0] {
	case "version":
		fmt.Println("easd", version.Version, "(ONNX Runtime", version.ONNXRuntime+")")
		return nil
	case "serve":
	default:
		return fmt.Errorf("unknown command %q (try easd --help)", args[0])
	}
	var o daemon.Options
	fs := serveFlags(&o)
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, usage)
		fs.PrintDefaults()
		fmt.Fprint(os.Stderr, envHelp)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if o.BinDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.BinDir = filepath.Dir(exe)
	}
	if lib := os.Getenv("OPENEAS_ORT_LIB"); lib != "" {
		o.WorkerArgs = append(o.WorkerArgs, "--ort-lib", lib)
		o.PluginEnv = append(o.PluginEnv, "OPENEAS_ORT_LIB="+lib)
	}
	if shim := os.Getenv("OPENEAS_TORCH_SHIM"); shim != "" {
		o.PluginEnv = append(o.PluginEnv, "OPENEAS_TORCH_SHIM="+shim)
	}
	level := slog.LevelInfo
	if v := os.Getenv("EASD_LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("EASD_LOG_LEVEL: %w", err)
		}
	}
	objectStoreEnv(&o, os.Getenv)
	o.WorkerEnv = withoutSecrets(os.Environ())
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return daemon.Run(ctx, o)
}

func serveFlags(o *daemon.Options) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&o.DataDir, "data-dir", "./easd-data", "directory for the store, bundles, caches and admin.token")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "address for the API and the gateway (loopback unless you say otherwise)")
	fs.StringVar(&o.EndpointURL, "endpoint-url", "", "URL users reach easd at, shown as the service endpoint (default http://LISTEN)")
	fs.StringVar(&o.BinDir, "bin-dir", "", "directory holding eas-worker and blade (default: this executable's directory)")
	fs.StringVar(&o.WorkerBinary, "worker", "", "path of the eas-worker binary (default BIN_DIR/eas-worker)")
	fs.StringVar(&o.BladeBinary, "blade", "", "path of the blade binary that the Blade plugin images resolve to (default BIN_DIR/blade)")
	fs.StringVar(&o.OSS.Endpoint, "oss-endpoint", "", "endpoint for oss:// paths (default $EAS_OSS_ENDPOINT)")
	fs.StringVar(&o.OSS.Addressing, "oss-addressing", "auto", "oss:// request style: auto (virtual-host for *.aliyuncs.com, else path), path or virtual")
	fs.StringVar(&o.S3.Endpoint, "s3-endpoint", "", "endpoint for s3:// paths (default $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else s3.amazonaws.com)")
	fs.StringVar(&o.S3.Addressing, "s3-addressing", "auto", "s3:// request style: auto (virtual-host for amazonaws.com, else path), path or virtual")
	fs.StringVar(&o.BundleStore, "bundle-store", "", "where sealed bundles and plugin results are shared between easd processes: local (the data dir only), a directory, oss://bucket/prefix or s3://bucket/prefix (default $EASD_BUNDLE_STORE, else local)")
	fs.Var((*byteSize)(&o.PluginCacheMaxBytes), "plugin-cache-max", "most disk the cache of plugin results (DATA/plugins, e.g. Blade's optimized models) keeps, e.g. 50GiB; least recently used go first, and a service deployed again from an evicted result runs its plugins again; 0: no limit")
	fs.Var((*byteSize)(&o.ObjectCacheMaxBytes), "object-cache-max", "most disk the cache of downloaded oss:// and s3:// objects (DATA/objects) keeps beyond what deployed models share with it, e.g. 20GiB; least recently used go first; 0: no limit")
	fs.StringVar(&o.WorkerTransport, "worker-transport", daemon.WorkerTransportUnix, "how the gateway reaches local workers: unix (a framed protocol on private unix sockets; fastest) or http (HTTP to each worker's loopback port)")
	fs.StringVar(&o.GPUFallback, "gpu-fallback", daemon.GPUFallbackCPU, "a GPU processor (pytorch_gpu, tensorflow_gpu_*, onnxruntime_gpu) on a host without a GPU runtime for it: cpu (serve it on CPU, with a Warning event) or refuse (fail the create)")
	fs.StringVar(&o.Scheduler, "scheduler", "local", "where instances run: local (eas-worker processes on this machine) or kubernetes (pods; see docs/kubernetes.md)")
	fs.StringVar(&o.Kube.Kubeconfig, "kubeconfig", "", "kubeconfig file for --scheduler kubernetes (default: in-cluster credentials, else $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&o.Kube.Namespace, "namespace", "", "namespace of the pods, Services and Secrets for --scheduler kubernetes (default: easd's own namespace, else the kubeconfig's, else default)")
	fs.StringVar(&o.Kube.Image, "worker-image", "openeas/openeas:"+version.Version, "image worker and plugin-helper pods run for --scheduler kubernetes")
	fs.StringVar(&o.Kube.ObjectStoreSecret, "object-store-secret", "", "Secret whose keys become the environment of pods that fetch bundles (bundle store location, credentials), for --scheduler kubernetes")
	return fs
}

// objectStoreEnv fills the object-store settings the flags left empty from the environment.
func objectStoreEnv(o *daemon.Options, getenv func(string) string) {
	if o.BundleStore == "" {
		o.BundleStore = getenv("EASD_BUNDLE_STORE")
	}
	oss, s3 := objstore.ConfigFromEnv(getenv)
	if o.OSS.Endpoint == "" {
		o.OSS.Endpoint = oss.Endpoint
	}
	o.OSS.AccessKeyID, o.OSS.SecretAccessKey, o.OSS.SessionToken = oss.AccessKeyID, oss.SecretAccessKey, oss.SessionToken
	if o.S3.Endpoint == "" {
		o.S3.Endpoint = s3.Endpoint
	}
	o.S3.AccessKeyID, o.S3.SecretAccessKey, o.S3.SessionToken, o.S3.Region = s3.AccessKeyID, s3.SecretAccessKey, s3.SessionToken, s3.Region
}

// withoutSecrets drops object-store credentials from an environment: workers inherit the
// rest of easd's environment (OPENEAS_*, locale, PATH) but never need these.
func withoutSecrets(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "OSS_"), strings.HasPrefix(name, "AWS_"), strings.HasPrefix(name, "ALIBABA_CLOUD_"):
			continue
		}
		out = append(out, kv)
	}
	return out
}

// byteSize is a flag value in bytes, with an optional binary unit: 512, 64KiB, 20GiB, 1TiB
// (K, M, G, T with or without "iB"/"B" are powers of 1024).
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	num := strings.TrimRight(s, "KMGTiBkmgtb")
	unit := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s[len(num):]), "B"), "I")
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
	sh, ok := shift[unit]
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if !ok || err != nil || n < 0 || n > (1<<62)>>sh {
		return fmt.Errorf("%q: want a size in bytes such as 512, 64MiB or 20GiB", s)
	}
	*b = byteSize(n << sh)
	return nil
}

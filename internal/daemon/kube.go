package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/plugin"
	"github.com/openeas/openeas/internal/scheduler"
	kube "github.com/openeas/openeas/internal/scheduler/kubernetes"
	"github.com/openeas/openeas/internal/spec"
	"github.com/openeas/openeas/internal/store"
)

// Scheduler backends easd can run services on.
const (
	SchedulerLocal      = "local"
	SchedulerKubernetes = "kubernetes"
)

// KubeOptions configure the kubernetes scheduler backend.
type KubeOptions struct {
	// Kubeconfig is a kubeconfig file; "" uses the in-cluster service account (easd running
	// as a pod), else $KUBECONFIG or ~/.kube/config.
	Kubeconfig string
	// Namespace holds every object easd makes; "" means the namespace easd's pod runs in,
	// else the kubeconfig context's namespace, else "default".
	Namespace string
	// Image is the OpenEAS image (eas-worker, blade) that worker pods run.
	Image string
	// ObjectStoreSecret names a Secret whose keys become the environment of the containers
	// that fetch bundles (the bundle store location and credentials).
	ObjectStoreSecret string
}

// newKubeBackend connects to the cluster and makes the backend. Instances ask for what their
// service.json says (metadata.cpu/memory/gpu, resource), read from the stored version.
// gpuCheck is deploy's GPUCheck: a GPU processor it refuses is served on CPU (gpu
// fallback), so its pods ask for no GPU.
func newKubeBackend(o Options, st *store.Store, shared *bundle.Shared, r scheduler.Router, events scheduler.EventFunc,
	gpuCheck func(spec.ProcessorInfo) error, log *slog.Logger) (*kube.Backend, error) {
	cfg, ns, err := kubeConfig(o.Kube)
	if err != nil {
		return nil, fmt.Errorf("kubernetes scheduler: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes scheduler: %w", err)
	}
	if shared == nil {
		// Pods cannot read this machine's data directory.
		log.Warn("kubernetes scheduler without --bundle-store: pods cannot fetch bundles; use oss://, s3:// or a directory every node mounts")
	}
	opts := kube.Options{
		Client: client, Namespace: ns, Image: o.Kube.Image, ObjectStoreSecret: o.Kube.ObjectStoreSecret,
		Router: r, Events: events, Logger: log,
		Resources: func(ctx context.Context, service string, version int) (kube.Resources, error) {
			vr, err := st.GetVersion(ctx, service, version)
			if err != nil {
				return kube.Resources{}, err
			}
			svc, err := spec.Parse(vr.Spec)
			if err != nil {
				return kube.Resources{}, fmt.Errorf("stored service.json of version %d: %w", version, err)
			}
			return podResources(svc, gpuCheck), nil
		},
	}
	if shared != nil {
		// Plugin Jobs' input and output travel beside the shared bundles, under jobs/.
		opts.Bundles = sharedBundles{shared.Bundles}
		opts.Plugins.Trees = shared.Jobs
	} else {
		log.Warn("kubernetes scheduler without --bundle-store: plugins run inside easd, not as Jobs")
	}
	return kube.New(opts)
}

// pluginRunner is the deploy pipeline's plugin hook: Jobs when the backend can move their
// data, nil (local processes) otherwise.
func pluginRunner(sched scheduler.Backend) func(context.Context, string, string, plugin.Spec, plugin.RunOptions) (plugin.Result, error) {
	if kb, ok := sched.(*kube.Backend); ok && kb.RunsPlugins() {
		return kb.RunPlugin
	}
	return nil
}

// sharedBundles publishes sealed bundles to the shared bundle store, where the pods' init
// container (eas-worker fetch-bundle) gets them by digest.
type sharedBundles struct{ s bundle.BundleStore }

func (b sharedBundles) PublishBundle(ctx context.Context, digest, dir string) error {
	return b.s.Put(ctx, bundle.KindBundle, digest, dir)
}

func kubeConfig(o KubeOptions) (*rest.Config, string, error) {
	var cfg *rest.Config
	ns := o.Namespace
	if o.Kubeconfig == "" {
		if c, err := rest.InClusterConfig(); err == nil {
			cfg = c
			if ns == "" {
				b, _ := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
				ns = strings.TrimSpace(string(b))
			}
		} else if !errors.Is(err, rest.ErrNotInCluster) {
			return nil, "", err
		}
	}
	if cfg == nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if o.Kubeconfig != "" {
			rules.ExplicitPath = o.Kubeconfig
		}
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
		c, err := cc.ClientConfig()
		if err != nil {
			return nil, "", fmt.Errorf("kubeconfig: %w", err)
		}
		cfg = c
		if ns == "" {
			if n, _, err := cc.Namespace(); err == nil {
				ns = n
			}
		}
	}
	if ns == "" {
		ns = "default"
	}
	cfg.UserAgent = "easd"
	return cfg, ns, nil
}

// podResources are the requests of a service's pods: its metadata, except that a GPU
// processor served on CPU (gpuCheck refuses it: gpu fallback) asks for no GPU, which would
// sit idle or keep the pod pending on a cluster without one.
func podResources(svc *spec.Service, gpuCheck func(spec.ProcessorInfo) error) kube.Resources {
	gpu := svc.Metadata.GPU
	if p, err := spec.ResolveProcessor(svc.Processor); err == nil && p.GPU && gpuCheck(p) != nil {
		gpu = 0
	}
	return kube.Resources{CPU: svc.Metadata.CPU, MemoryMB: svc.Metadata.Memory, GPU: gpu, Group: svc.Resource}
}

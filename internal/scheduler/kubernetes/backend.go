// Package kubernetes is the scheduler backend that runs services on a Kubernetes cluster.
//
// Per service it keeps a root Secret (holding the service token, owner of everything else),
// a Deployment of eas-worker pods and a Service; pods fetch their bundle from the object
// store by digest in an init container before the worker starts. Apply changes the
// Deployment (scale = replicas; a new version = a rolling update that never lowers ready
// capacity) and waits until the cluster has done it, reporting the cluster's own reasons when
// it cannot. Routing follows the Service's EndpointSlices through an informer and feeds the
// same scheduler.Router the local backend feeds. Everything is found again by label after a
// restart, so a restarted easd adopts what runs instead of starting it twice.
package kubernetes

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	klabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	kclient "k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"

	"github.com/openeas/openeas/internal/scheduler"
)

// Options configure a Backend. Client, Namespace and Image are required.
type Options struct {
	Client    kclient.Interface
	Namespace string
	// Image is the OpenEAS image holding eas-worker (deploy/kubernetes/Dockerfile).
	Image           string
	ImagePullPolicy corev1.PullPolicy // default IfNotPresent
	// WorkerCommand starts the worker in Image (default ["eas-worker"]); the worker flags follow.
	WorkerCommand []string
	// FetchBundleCommand is the init container's command; "--digest sha256:… --dir DIR" follow.
	// It must download the sealed bundle with that digest from the object store into DIR and
	// verify it. Default ["eas-worker", "fetch-bundle"].
	FetchBundleCommand []string
	// ObjectStoreSecret names a Secret whose keys become the environment of the containers that
	// talk to the object store (endpoint, bucket, credentials); "" for none.
	ObjectStoreSecret string
	// WorkerServiceAccount runs worker and plugin pods ("" = the namespace's default).
	WorkerServiceAccount string
	// NodeSelectorKey is the node label that service.json "resource" selects
	// (default DefaultNodeSelectorKey).
	NodeSelectorKey string
	// Plugins configure plugin Jobs (RunPlugin).
	Plugins PluginOptions
	// Bundles publishes sealed bundles to the object store before pods ask for them.
	Bundles BundlePublisher
	// Resources tells what one instance of a service version asks for (service.json
	// metadata.cpu/memory/gpu and resource). nil: nothing is requested.
	Resources func(ctx context.Context, service string, version int) (Resources, error)
	Router    scheduler.Router    // nil: routing is not reported
	Events    scheduler.EventFunc // nil: events are dropped
	Logger    *slog.Logger
	// ReadyTimeout bounds how long Apply waits for pods to become ready (default 10m); it is
	// also the Deployment's progressDeadlineSeconds.
	ReadyTimeout time.Duration
	// Resync is the informers' resync period (default 10m).
	Resync time.Duration
}

// BundlePublisher makes a sealed bundle available in the object store under its digest, where
// FetchBundleCommand finds it. It must be idempotent: Apply calls it every time.
type BundlePublisher interface {
	PublishBundle(ctx context.Context, digest, dir string) error
}

// Backend runs services on Kubernetes; it implements scheduler.Backend.
type Backend struct {
	opts Options
	log  *slog.Logger
	c    kclient.Interface
	ns   string

	factory      informers.SharedInformerFactory
	sliceFactory informers.SharedInformerFactory
	deploys      appslisters.DeploymentLister
	pods         corelisters.PodLister
	services     corelisters.ServiceLister
	secrets      corelisters.SecretLister
	slices       discoverylisters.EndpointSliceLister
	jobs         batchlisters.JobLister
	started      chan struct{} // closed once the caches have synced
	changedMu    sync.Mutex
	changed      chan struct{} // closed and replaced on every informer event

	mu      sync.Mutex // guards svcs and closing
	svcs    map[string]*svcState
	closing bool
}

type svcState struct {
	name    string
	lock    chan struct{}        // capacity 1: held by Apply, Stop, Delete on this service
	stopped bool                 // Stop ran and no Apply since: nothing is routed
	routed  []scheduler.Endpoint // the last set given to the Router
	restart map[string]int32     // pod name → restart count seen, for restart events
	token   *tokenSync           // guarded by Backend.mu
}

var _ scheduler.Backend = (*Backend)(nil)

// Defaults.
const (
	DefaultReadyTimeout = 10 * time.Minute
	DefaultResync       = 10 * time.Minute
)

// New returns a Backend; call Run to start its informers.
func New(opts Options) (*Backend, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("kubernetes backend: no API client")
	case opts.Namespace == "":
		return nil, errors.New("kubernetes backend: namespace is empty")
	case opts.Image == "":
		return nil, errors.New("kubernetes backend: worker image is empty")
	}
	opts.ImagePullPolicy = cmp.Or(opts.ImagePullPolicy, corev1.PullIfNotPresent)
	if len(opts.WorkerCommand) == 0 {
		opts.WorkerCommand = []string{"eas-worker"}
	}
	if len(opts.FetchBundleCommand) == 0 {
		opts.FetchBundleCommand = []string{"eas-worker", "fetch-bundle"}
	}
	opts.NodeSelectorKey = cmp.Or(opts.NodeSelectorKey, DefaultNodeSelectorKey)
	opts.ReadyTimeout = cmp.Or(opts.ReadyTimeout, DefaultReadyTimeout)
	opts.Resync = cmp.Or(opts.Resync, DefaultResync)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Backend{
		opts: opts, log: log, c: opts.Client, ns: opts.Namespace,
		started: make(chan struct{}), changed: make(chan struct{}),
		svcs: make(map[string]*svcState),
	}
	managed := informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
		lo.LabelSelector = LabelManagedBy + "=" + ManagedBy
	})
	// Our own objects are filtered by label; EndpointSlices are made by the cluster's
	// endpoint controller and carry the Service's name in kubernetes.io/service-name.
	b.factory = informers.NewSharedInformerFactoryWithOptions(opts.Client, opts.Resync, informers.WithNamespace(opts.Namespace), managed)
	sliceFactory := informers.NewSharedInformerFactoryWithOptions(opts.Client, opts.Resync, informers.WithNamespace(opts.Namespace),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = discoveryv1.LabelServiceName }))
	b.deploys = b.factory.Apps().V1().Deployments().Lister()
	b.pods = b.factory.Core().V1().Pods().Lister()
	b.services = b.factory.Core().V1().Services().Lister()
	b.secrets = b.factory.Core().V1().Secrets().Lister()
	b.jobs = b.factory.Batch().V1().Jobs().Lister()
	b.slices = sliceFactory.Discovery().V1().EndpointSlices().Lister()

	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { b.onChange(obj) },
		UpdateFunc: func(_, obj any) { b.onChange(obj) },
		DeleteFunc: func(obj any) { b.onChange(obj) },
	}
	for _, inf := range []cache.SharedIndexInformer{
		b.factory.Apps().V1().Deployments().Informer(), b.factory.Core().V1().Pods().Informer(),
		b.factory.Core().V1().Services().Informer(), b.factory.Core().V1().Secrets().Informer(),
		b.factory.Batch().V1().Jobs().Informer(), sliceFactory.Discovery().V1().EndpointSlices().Informer(),
	} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return nil, fmt.Errorf("kubernetes backend: %w", err)
		}
	}
	b.sliceFactory = sliceFactory
	return b, nil
}

// Run starts the informers, waits for their caches (the adoption of whatever already runs:
// routing is reported for every service found), and serves until ctx is done. Pods keep
// running when it returns: they belong to the cluster, and the next easd adopts them.
func (b *Backend) Run(ctx context.Context) error {
	// A missing right would otherwise leave the informers retrying forever and every Apply
	// waiting: say at once what is refused.
	if err := b.preflight(ctx); err != nil {
		return err
	}
	b.factory.Start(ctx.Done())
	b.sliceFactory.Start(ctx.Done())
	for typ, ok := range b.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("kubernetes backend: cache of %v did not sync: %w", typ, context.Cause(ctx))
		}
	}
	for typ, ok := range b.sliceFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("kubernetes backend: cache of %v did not sync: %w", typ, context.Cause(ctx))
		}
	}
	close(b.started)
	b.routeAll()
	n := 0
	if ds, err := b.deploys.List(klabels.Everything()); err == nil {
		n = len(ds)
	}
	b.log.Info("kubernetes backend watching", "namespace", b.ns, "deployments", n)
	<-ctx.Done()
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	b.factory.Shutdown()
	b.sliceFactory.Shutdown()
	return nil
}

// preflight lists each kind the informers watch once.
func (b *Backend) preflight(ctx context.Context) error {
	one := metav1.ListOptions{Limit: 1, LabelSelector: LabelManagedBy + "=" + ManagedBy}
	checks := []struct {
		what string
		list func() error
	}{
		{"list Deployments", func() error { _, err := b.c.AppsV1().Deployments(b.ns).List(ctx, one); return err }},
		{"list Pods", func() error { _, err := b.c.CoreV1().Pods(b.ns).List(ctx, one); return err }},
		{"list Services", func() error { _, err := b.c.CoreV1().Services(b.ns).List(ctx, one); return err }},
		{"list Secrets", func() error { _, err := b.c.CoreV1().Secrets(b.ns).List(ctx, one); return err }},
		{"list Jobs", func() error { _, err := b.c.BatchV1().Jobs(b.ns).List(ctx, one); return err }},
		{"list EndpointSlices", func() error {
			_, err := b.c.DiscoveryV1().EndpointSlices(b.ns).List(ctx, metav1.ListOptions{Limit: 1})
			return err
		}},
	}
	for _, c := range checks {
		if err := c.list(); err != nil {
			return fmt.Errorf("kubernetes backend in namespace %s: %w", b.ns, refused(c.what, err))
		}
	}
	return nil
}

// onChange runs on the informers' goroutines for every add, update and delete.
func (b *Backend) onChange(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	switch o := obj.(type) {
	case *discoveryv1.EndpointSlice:
		if svc := b.serviceOfObject(o.Labels[discoveryv1.LabelServiceName]); svc != "" {
			b.route(svc)
		}
	case *corev1.Service:
		b.route(o.Annotations[AnnotationService])
	case *corev1.Pod:
		b.podEvent(o)
		if svc := o.Annotations[AnnotationService]; svc != "" {
			b.route(svc) // the version of an endpoint comes from its pod
		}
	}
	b.changedMu.Lock()
	close(b.changed)
	b.changed = make(chan struct{})
	b.changedMu.Unlock()
}

// wake returns a channel closed at the next informer event.
func (b *Backend) wake() <-chan struct{} {
	b.changedMu.Lock()
	defer b.changedMu.Unlock()
	return b.changed
}

// serviceOfObject maps an object name (ObjectName) to the EAS service, through the Service.
func (b *Backend) serviceOfObject(obj string) string {
	if obj == "" {
		return ""
	}
	s, err := b.services.Services(b.ns).Get(obj)
	if err != nil {
		return ""
	}
	return s.Annotations[AnnotationService]
}

func (b *Backend) state(name string) *svcState {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.svcs[name]
	if s == nil {
		s = &svcState{name: name, lock: make(chan struct{}, 1), restart: map[string]int32{}}
		b.svcs[name] = s
	}
	return s
}

func (b *Backend) waitStarted(ctx context.Context) error {
	select {
	case <-b.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return scheduler.ErrClosed
	}
	return nil
}

func (b *Backend) lock(ctx context.Context, name string) (*svcState, error) {
	if err := b.waitStarted(ctx); err != nil {
		return nil, err
	}
	s := b.state(name)
	select {
	case s.lock <- struct{}{}:
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *svcState) unlock() { <-s.lock }

// routeAll reports routing for every service that has a Service object.
func (b *Backend) routeAll() {
	svcs, err := b.services.Services(b.ns).List(klabels.Everything())
	if err != nil {
		return
	}
	for _, s := range svcs {
		b.route(s.Annotations[AnnotationService])
	}
}

// route gives the Router the service's ready endpoints, when they changed. Endpoints come from
// the EndpointSlices of the service's Service: ready (which excludes terminating ones) means
// routable. A stopped service routes nothing, even while its pods drain.
func (b *Backend) route(name string) {
	if name == "" {
		return
	}
	eps := b.endpoints(name)
	s := b.state(name)
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.stopped {
		eps = nil
	}
	if slices.Equal(eps, s.routed) {
		return
	}
	s.routed = eps
	if b.opts.Router != nil {
		b.opts.Router.SetEndpoints(name, slices.Clone(eps))
	}
}

func (b *Backend) endpoints(name string) []scheduler.Endpoint {
	sel := klabels.SelectorFromSet(klabels.Set{discoveryv1.LabelServiceName: ObjectName(name)})
	list, err := b.slices.EndpointSlices(b.ns).List(sel)
	if err != nil {
		return nil
	}
	var eps []scheduler.Endpoint
	seen := map[string]bool{}
	for _, sl := range list {
		port := int32(0)
		for _, p := range sl.Ports {
			if p.Port != nil && (p.Name == nil || *p.Name == "http" || *p.Name == "") {
				port = *p.Port
				break
			}
		}
		if port == 0 || (sl.AddressType != discoveryv1.AddressTypeIPv4 && sl.AddressType != discoveryv1.AddressTypeIPv6) {
			continue
		}
		for _, e := range sl.Endpoints {
			if len(e.Addresses) == 0 || (e.Conditions.Ready != nil && !*e.Conditions.Ready) ||
				(e.Conditions.Terminating != nil && *e.Conditions.Terminating) {
				continue
			}
			addr := net.JoinHostPort(e.Addresses[0], strconv.Itoa(int(port)))
			if seen[addr] {
				continue
			}
			seen[addr] = true
			ep := scheduler.Endpoint{ID: addr, Addr: addr}
			if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
				ep.ID = e.TargetRef.Name
				if p, err := b.pods.Pods(b.ns).Get(e.TargetRef.Name); err == nil {
					ep.Version, _ = strconv.Atoi(p.Labels[LabelVersion])
				}
			}
			eps = append(eps, ep)
		}
	}
	slices.SortFunc(eps, func(a, b scheduler.Endpoint) int { return cmp.Compare(a.ID, b.ID) })
	return eps
}

func (b *Backend) routedCount(name string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.svcs[name]; s != nil {
		return len(s.routed)
	}
	return 0
}

// podEvent turns container restarts into service events (the local backend's wording, which
// the daemon counts as worker restarts).
func (b *Backend) podEvent(p *corev1.Pod) {
	name := p.Annotations[AnnotationService]
	if name == "" || b.opts.Events == nil {
		return
	}
	var n int32
	why := ""
	for _, cs := range p.Status.ContainerStatuses {
		n += cs.RestartCount
		if t := cs.LastTerminationState.Terminated; t != nil {
			why = fmt.Sprintf("exited with code %d (%s)", t.ExitCode, t.Reason)
		}
	}
	s := b.state(name)
	b.mu.Lock()
	prev, known := s.restart[p.Name]
	if p.DeletionTimestamp != nil {
		delete(s.restart, p.Name)
	} else {
		s.restart[p.Name] = n
	}
	b.mu.Unlock()
	if known && n > prev {
		b.event(name, "Warning", fmt.Sprintf("instance %s: %s; restarting in Kubernetes' back-off (restart %d)", p.Name, cmp.Or(why, "container restarted"), n))
	}
}

func (b *Backend) event(svc, typ, msg string) {
	if typ == "Warning" {
		b.log.Warn(msg, "service", svc)
	} else {
		b.log.Info(msg, "service", svc)
	}
	if b.opts.Events != nil {
		b.opts.Events(svc, typ, msg)
	}
}

// Status reports the service from the informer caches; it never blocks on the API.
func (b *Backend) Status(name string) scheduler.Status {
	st := scheduler.Status{Service: name, Ready: b.routedCount(name)}
	obj := ObjectName(name)
	if d, err := b.deploys.Deployments(b.ns).Get(obj); err == nil && d.Spec.Replicas != nil {
		st.Total = int(*d.Spec.Replicas)
	}
	pods, _ := b.pods.Pods(b.ns).List(klabels.SelectorFromSet(klabels.Set{LabelService: obj, LabelRole: "service"}))
	slices.SortFunc(pods, func(a, b *corev1.Pod) int { return cmp.Compare(a.Name, b.Name) })
	for _, p := range pods {
		in := scheduler.Instance{ID: p.Name, State: scheduler.StateStarting, LastError: podProblem(p)}
		in.Version, _ = strconv.Atoi(p.Labels[LabelVersion])
		if p.Status.PodIP != "" {
			in.Addr = net.JoinHostPort(p.Status.PodIP, strconv.Itoa(WorkerPort))
		}
		if p.Status.StartTime != nil {
			in.Started = p.Status.StartTime.Time
		}
		for _, cs := range p.Status.ContainerStatuses {
			in.Restarts += int(cs.RestartCount)
		}
		switch {
		case p.DeletionTimestamp != nil:
			in.State = scheduler.StateStopping
		case podReady(p):
			in.State = scheduler.StateReady
		case in.Restarts > 0:
			in.State = scheduler.StateRestarting
		}
		st.Instances = append(st.Instances, in)
	}
	return st
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Apply makes the service run d and waits until the cluster does: the pods of d.Version ready
// and routed, and no pod of another version left. A new version is a rolling update (a new
// pod must be ready before an old one goes); the same version only scales. When the cluster
// cannot do it (refusal, image pull failure, crash loop, not ready within ReadyTimeout) Apply
// puts back what ran before (the previous version and replica count, or zero replicas for a
// first deploy) and returns an error that quotes Kubernetes' reason.
func (b *Backend) Apply(ctx context.Context, d scheduler.Deployment) error {
	if d.Service == "" || d.BundleDir == "" || d.Replicas < 0 {
		return fmt.Errorf("kubernetes backend: deployment %q: need a service, a bundle and replicas >= 0", d.Service)
	}
	digest, err := BundleDigest(d.BundleDir)
	if err != nil {
		return err
	}
	s, err := b.lock(ctx, d.Service)
	if err != nil {
		return err
	}
	defer s.unlock()

	var res Resources
	if b.opts.Resources != nil {
		if res, err = b.opts.Resources(ctx, d.Service, d.Version); err != nil {
			return fmt.Errorf("service %s version %d: resources: %w", d.Service, d.Version, err)
		}
	}
	if d.Replicas > 0 && b.opts.Bundles != nil {
		if err := b.opts.Bundles.PublishBundle(ctx, digest, d.BundleDir); err != nil {
			return fmt.Errorf("service %s version %d: publish bundle %s: %w", d.Service, d.Version, digest, err)
		}
	}
	root, err := b.ensureRoot(ctx, d.Service, nil)
	if err != nil {
		return err
	}
	want, err := b.opts.desiredDeployment(d, digest, res, root)
	if err != nil {
		return fmt.Errorf("service %s version %d: %w", d.Service, d.Version, err)
	}
	if err := b.ensureService(ctx, d.Service, root); err != nil {
		return err
	}

	prev, err := b.c.AppsV1().Deployments(b.ns).Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		prev = nil
		if _, err := b.c.AppsV1().Deployments(b.ns).Create(ctx, want, metav1.CreateOptions{}); err != nil {
			return refused("create Deployment "+want.Name, err)
		}
	case err != nil:
		return refused("read Deployment "+want.Name, err)
	default:
		if err := b.updateDeployment(ctx, want.Name, func(cur *appsv1.Deployment) {
			if cur.Annotations[AnnotationTemplate] != want.Annotations[AnnotationTemplate] {
				cur.Spec.Template = want.Spec.Template
				cur.Spec.Strategy = want.Spec.Strategy
				cur.Spec.ProgressDeadlineSeconds = want.Spec.ProgressDeadlineSeconds
			}
			cur.Spec.Replicas = want.Spec.Replicas
			cur.OwnerReferences = want.OwnerReferences
			for k, v := range want.Annotations {
				cur.Annotations[k] = v
			}
		}); err != nil {
			return refused("update Deployment "+want.Name, err)
		}
	}
	b.mu.Lock()
	s.stopped = false
	b.mu.Unlock()
	b.route(d.Service)

	if err := b.awaitRollout(ctx, d, want.Annotations[AnnotationTemplate]); err != nil {
		b.rollBack(d, prev)
		return fmt.Errorf("service %s version %d: %w", d.Service, d.Version, err)
	}
	if prev == nil || prev.Annotations[AnnotationTemplate] != want.Annotations[AnnotationTemplate] {
		b.event(d.Service, "Normal", fmt.Sprintf("Deployment %s: %d pod(s) of version %d ready", want.Name, d.Replicas, d.Version))
	}
	return nil
}

// rollBack restores what ran before a failed Apply. It runs on its own context: the Apply's
// may be what ended it.
func (b *Backend) rollBack(d scheduler.Deployment, prev *appsv1.Deployment) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := ObjectName(d.Service)
	err := b.updateDeployment(ctx, name, func(cur *appsv1.Deployment) {
		if prev == nil {
			cur.Spec.Replicas = new(int32(0))
			return
		}
		cur.Spec.Template = prev.Spec.Template
		cur.Spec.Replicas = prev.Spec.Replicas
		for _, k := range []string{AnnotationVersion, AnnotationBundle, AnnotationTemplate} {
			cur.Annotations[k] = prev.Annotations[k]
		}
	})
	if err != nil && !apierrors.IsNotFound(err) {
		b.log.Error("roll back Deployment", "service", d.Service, "err", err)
		return
	}
	if prev != nil {
		b.event(d.Service, "Warning", fmt.Sprintf("Deployment %s rolled back to version %s", name, prev.Annotations[AnnotationVersion]))
	}
}

func (b *Backend) updateDeployment(ctx context.Context, name string, mutate func(*appsv1.Deployment)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := b.c.AppsV1().Deployments(b.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		mutate(cur)
		_, err = b.c.AppsV1().Deployments(b.ns).Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

// ensureRoot returns the service's root Secret, creating it when missing; a non-nil token is
// written into it.
func (b *Backend) ensureRoot(ctx context.Context, name string, token *string) (*corev1.Secret, error) {
	want := rootSecret(b.ns, name, token)
	cur, err := b.c.CoreV1().Secrets(b.ns).Get(ctx, want.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cur, err = b.c.CoreV1().Secrets(b.ns).Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			cur, err = b.c.CoreV1().Secrets(b.ns).Get(ctx, want.Name, metav1.GetOptions{})
		} else if err != nil {
			return nil, refused("create Secret "+want.Name, err)
		}
	}
	if err != nil {
		return nil, refused("read Secret "+want.Name, err)
	}
	if cur.Annotations[AnnotationService] != name {
		return nil, fmt.Errorf("Secret %s/%s exists but belongs to service %q, not %q", b.ns, want.Name, cur.Annotations[AnnotationService], name)
	}
	if token != nil && string(cur.Data[SecretTokenKey]) != *token {
		cur.Data = map[string][]byte{SecretTokenKey: []byte(*token)}
		if cur, err = b.c.CoreV1().Secrets(b.ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return nil, refused("update Secret "+want.Name, err)
		}
	}
	return cur, nil
}

func (b *Backend) ensureService(ctx context.Context, name string, root *corev1.Secret) error {
	want := desiredService(b.ns, name, root)
	_, err := b.c.CoreV1().Services(b.ns).Get(ctx, want.Name, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		if err != nil {
			return refused("read Service "+want.Name, err)
		}
		return nil
	}
	_, err = b.c.CoreV1().Services(b.ns).Create(ctx, want, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return refused("create Service "+want.Name, err)
	}
	return nil
}

// halt takes the service's lock, marks it stopped and takes it out of routing at once (Stop
// and Delete); the caller unlocks.
func (b *Backend) halt(ctx context.Context, name string) (*svcState, error) {
	s, err := b.lock(ctx, name)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	s.stopped = true
	b.mu.Unlock()
	b.route(name)
	return s, nil
}

// Stop scales the service to zero pods and waits until they are gone. Routing stops at once.
// The Deployment, Service and Secret stay, so a later Apply (start) reuses them.
func (b *Backend) Stop(ctx context.Context, name string) error {
	s, err := b.halt(ctx, name)
	if err != nil {
		return err
	}
	defer s.unlock()
	obj := ObjectName(name)
	err = b.updateDeployment(ctx, obj, func(cur *appsv1.Deployment) { cur.Spec.Replicas = new(int32(0)) })
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return refused("scale Deployment "+obj+" to 0", err)
	}
	// Pods get their grace period (60s) to drain; a node that is gone can keep one
	// terminating for much longer, which must not hold the service's operations forever.
	deadline := time.NewTimer(b.opts.ReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		wake := b.wake()
		pods := b.servicePods(obj)
		if len(pods) == 0 {
			return nil
		}
		select {
		case <-wake:
		case <-tick.C:
		case <-deadline.C:
			names := make([]string, len(pods))
			for i, p := range pods {
				names[i] = p.Name
			}
			return fmt.Errorf("service %s: pods still terminating after %s: %s", name, b.opts.ReadyTimeout, strings.Join(names, ", "))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Delete removes every object of the service: the Deployment, the Service, plugin Jobs and
// the root Secret. Pods, ReplicaSets and EndpointSlices go with their owners (Kubernetes'
// garbage collector, through the owner references that lead to the root Secret).
func (b *Backend) Delete(ctx context.Context, name string) error {
	s, err := b.halt(ctx, name)
	if err != nil {
		return err
	}
	defer s.unlock()
	obj := ObjectName(name)
	bg := metav1.DeletePropagationBackground
	del := metav1.DeleteOptions{PropagationPolicy: &bg}
	var errs []error
	ignore := func(what string, err error) {
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, refused("delete "+what, err))
		}
	}
	ignore("Deployment "+obj, b.c.AppsV1().Deployments(b.ns).Delete(ctx, obj, del))
	ignore("Service "+obj, b.c.CoreV1().Services(b.ns).Delete(ctx, obj, del))
	ignore("plugin Jobs of "+obj, b.c.BatchV1().Jobs(b.ns).DeleteCollection(ctx, del, metav1.ListOptions{
		LabelSelector: klabels.SelectorFromSet(klabels.Set{LabelService: obj, LabelRole: "plugin"}).String()}))
	ignore("Secret "+obj, b.c.CoreV1().Secrets(b.ns).Delete(ctx, obj, del))
	return errors.Join(errs...)
}

func (b *Backend) servicePods(obj string) []*corev1.Pod {
	pods, _ := b.pods.Pods(b.ns).List(klabels.SelectorFromSet(klabels.Set{LabelService: obj, LabelRole: "service"}))
	return pods
}

// refused wraps an API error so the message says what was refused and quotes Kubernetes'
// reason (Forbidden for RBAC and quota refusals, Invalid, …).
func refused(what string, err error) error {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		s := st.Status()
		return fmt.Errorf("Kubernetes refused to %s: %s: %s", what, s.Reason, s.Message)
	}
	return fmt.Errorf("%s: %w", what, err)
}

package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kclient "k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/deploy"
	"github.com/openeas/openeas/internal/gateway"
	"github.com/openeas/openeas/internal/scheduler"
	"github.com/openeas/openeas/internal/spec"
	"github.com/openeas/openeas/internal/store"
)

const testImage = "openeas/openeas:test"

// cluster is one test's namespace with a fake node, a gateway in front of the backend's routing
// and a local object store.
type cluster struct {
	t      *testing.T
	ns     string
	c      kclient.Interface
	store  dirStore
	data   string
	node   *fakeNode
	router *recRouter
	gwURL  string
	tokens sync.Map
	// restricted has only deploy/kubernetes/rbac.yaml's rights; the backend uses it.
	restricted kclient.Interface

	evMu   sync.Mutex
	events []string
}

type gwRouter struct{ gw *gateway.Gateway }

func (r gwRouter) SetEndpoints(service string, eps []scheduler.Endpoint) {
	out := make([]gateway.Endpoint, len(eps))
	for i, e := range eps {
		out[i] = gateway.Endpoint{ID: e.ID, Addr: e.Addr, Version: e.Version}
	}
	r.gw.SetEndpoints(service, out)
}

func (c *cluster) Lookup(name string) (string, bool) {
	v, ok := c.tokens.Load(name)
	if !ok {
		return "", false
	}
	return v.(string), true
}

// newCluster needs real workers: eas-worker (OPENEAS_BIN or built), ONNX Runtime and the OCR
// classifier model; it skips with the reason when one is missing.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	needCluster(t)
	ip := hostIP()
	if ip == "" {
		t.Skip("no non-loopback IPv4 address on this machine: EndpointSlices refuse loopback addresses")
	}
	lib := os.Getenv("OPENEAS_ORT_LIB")
	if lib == "" {
		t.Skip("set OPENEAS_ORT_LIB (scripts/fetch-deps.sh) so the simulated pods can run real workers")
	}
	ns := newNamespace(t)
	c := &cluster{t: t, ns: ns, c: suiteClient, store: newDirStore(t.TempDir()), data: t.TempDir()}
	gw := gateway.New(gateway.Options{Services: c})
	t.Cleanup(gw.Close)
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	c.gwURL = srv.URL
	c.router = &recRouter{next: gwRouter{gw}}
	c.node = &fakeNode{t: t, c: suiteClient, ns: ns, store: c.store, worker: workerBinary(t), ortLib: lib, hostIP: ip,
		router: c.router, pods: map[string]*simPod{}, pullFails: "registry.invalid/missing:1", neverReady: "openeas/never-ready:1"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.node.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; c.node.stopAll() })
	return c
}

func workerBinary(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("OPENEAS_BIN"); dir != "" {
		if p := filepath.Join(dir, "eas-worker"); fileExists(p) {
			return p
		}
	}
	exe := filepath.Join(t.TempDir(), "eas-worker")
	if out, err := exec.Command("go", "build", "-o", exe, "../../../cmd/eas-worker").CombinedOutput(); err != nil {
		t.Fatalf("build eas-worker: %v\n%s", err, out)
	}
	return exe
}

func fileExists(p string) bool { st, err := os.Stat(p); return err == nil && !st.IsDir() }

func clsModel(t *testing.T) string {
	m, _ := filepath.Abs("../../../.cache/models/ocr-1.4.2/ch_ppocr_mobile_v2.0_cls_infer.onnx")
	if !fileExists(m) {
		t.Skip("the OCR classifier model is missing: run scripts/fetch-deps.sh")
	}
	return m
}

// backend starts a Backend on the cluster's namespace; stop it with the returned func.
func (c *cluster) backend(mod func(*Options)) (*Backend, func()) {
	c.t.Helper()
	if c.restricted == nil {
		c.restricted = restrictedClient(c.t, c.ns)
	}
	return startBackend(c.t, c.ns, c.restricted, func(o *Options) {
		o.Bundles = c.store
		o.Plugins.Trees = c.store
		o.Router = c.router
		o.Events = func(svc, typ, msg string) {
			c.evMu.Lock()
			c.events = append(c.events, typ+" "+svc+": "+msg)
			c.evMu.Unlock()
		}
		if mod != nil {
			mod(o)
		}
	})
}

func startBackend(t *testing.T, ns string, client kclient.Interface, mod func(*Options)) (*Backend, func()) {
	t.Helper()
	o := Options{Client: client, Namespace: ns, Image: testImage, Logger: testLogger(t), ReadyTimeout: 2 * time.Minute}
	if mod != nil {
		mod(&o)
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(func() {
		select {
		case <-ctx.Done():
		default:
			stop()
		}
	})
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	if err := b.waitStarted(wctx); err != nil {
		t.Fatalf("backend did not start: %v", err)
	}
	return b, stop
}

// objects lists what this backend owns in the namespace, by kind, as "Kind/name" sorted.
func (c *cluster) objects() []string {
	c.t.Helper()
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedBy}
	var out []string
	ds, _ := c.c.AppsV1().Deployments(c.ns).List(ctx, sel)
	for _, d := range ds.Items {
		out = append(out, "Deployment/"+d.Name)
	}
	ss, _ := c.c.CoreV1().Services(c.ns).List(ctx, sel)
	for _, s := range ss.Items {
		out = append(out, "Service/"+s.Name)
	}
	secs, _ := c.c.CoreV1().Secrets(c.ns).List(ctx, sel)
	for _, s := range secs.Items {
		out = append(out, "Secret/"+s.Name)
	}
	js, _ := c.c.BatchV1().Jobs(c.ns).List(ctx, sel)
	for _, j := range js.Items {
		out = append(out, "Job/"+j.Name)
	}
	slices.Sort(out)
	return out
}

func (c *cluster) pods() map[string]string {
	c.t.Helper()
	ps, err := c.c.CoreV1().Pods(c.ns).List(context.Background(), metav1.ListOptions{LabelSelector: LabelRole + "=service"})
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range ps.Items {
		out[p.Name] = p.Labels[LabelVersion]
	}
	return out
}

func (c *cluster) deployment(name string) *appsv1.Deployment {
	c.t.Helper()
	d, err := c.c.AppsV1().Deployments(c.ns).Get(context.Background(), ObjectName(name), metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return d
}

// predict sends one classifier request through the gateway; it returns the status and body.
func (c *cluster) predict(service string) (int, string, error) {
	x := make([]float32, 3*48*192)
	for i := range x {
		x[i] = float32(i%7) / 7
	}
	body, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{"name": "x", "shape": []int{1, 3, 48, 192}, "datatype": "FP32", "data": x}}})
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/predict/%s/v2/models/%s/infer", c.gwURL, service, service), bytes.NewReader(body))
	tok, _ := c.Lookup(service)
	req.Header.Set("Authorization", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func (c *cluster) mustPredict(service string) {
	c.t.Helper()
	code, body, err := c.predict(service)
	if err != nil || code != 200 || !strings.Contains(body, `"outputs"`) {
		c.t.Fatalf("predict %s: %d %v %.300s", service, code, err, body)
	}
}

// load sends requests without pause until stop is called; it returns the count of answers and
// the failures (status other than 200, transport errors).
func (c *cluster) load(service string) (stop func() (ok int, failed []string)) {
	var okN atomic.Int32
	var mu sync.Mutex
	var failed []string
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-quit:
					return
				default:
				}
				code, body, err := c.predict(service)
				if err != nil || code != 200 {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%d %v %.200s", code, err, body))
					mu.Unlock()
					continue
				}
				okN.Add(1)
			}
		}()
	}
	return func() (int, []string) {
		close(quit)
		wg.Wait()
		return int(okN.Load()), failed
	}
}

func TestServiceLifecycleOnKubernetes(t *testing.T) {
	c := newCluster(t)
	model := clsModel(t)
	const svc = "cls_k8s"
	c.tokens.Store(svc, "tok-123")
	res := Resources{CPU: 2, MemoryMB: 1024, GPU: 1, Group: "gpu-a10"}
	withResources := func(o *Options) {
		o.Resources = func(_ context.Context, s string, v int) (Resources, error) { return res, nil }
	}
	b, stopB := c.backend(withResources)
	b.TokenChanged(svc, "tok-123", true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	v1 := sealBundle(t, c.data, model, "v1")
	d := scheduler.Deployment{Service: svc, Version: 1, BundleDir: v1, Replicas: 2, Args: []string{"--timeout", "5s"}}
	t0 := time.Now()
	if err := b.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURE create→Running, 2 simulated pods with real workers: %s", time.Since(t0).Round(time.Millisecond))
	obj := ObjectName(svc)
	if obj != "eas-cls-k8s" {
		t.Errorf("ObjectName(%q) = %q", svc, obj)
	}
	wantObjs := []string{"Deployment/" + obj, "Secret/" + obj, "Service/" + obj}
	if got := c.objects(); !slices.Equal(got, wantObjs) {
		t.Errorf("objects after create: %v, want %v", got, wantObjs)
	}
	t.Logf("FIGURE objects per service: %v + per pod: 1 Pod, 1 EndpointSlice entry (made by the cluster)", c.objects())
	dep := c.deployment(svc)
	checkDeployment(t, dep, svc, 2, 1)
	ctr := dep.Spec.Template.Spec.Containers[0]
	if q := ctr.Resources.Limits[corev1.ResourceCPU]; q.String() != "2" {
		t.Errorf("cpu limit %s", q.String())
	}
	if q := ctr.Resources.Requests[corev1.ResourceMemory]; q.String() != "1Gi" {
		t.Errorf("memory request %s", q.String())
	}
	if q := ctr.Resources.Limits[GPUResource]; q.String() != "1" {
		t.Errorf("gpu limit %s", q.String())
	}
	if got := dep.Spec.Template.Spec.NodeSelector[DefaultNodeSelectorKey]; got != "gpu-a10" {
		t.Errorf("node selector %v", dep.Spec.Template.Spec.NodeSelector)
	}
	sec, err := c.c.CoreV1().Secrets(c.ns).Get(ctx, obj, metav1.GetOptions{})
	if err != nil || string(sec.Data[SecretTokenKey]) != "tok-123" {
		t.Errorf("root Secret: %v %v", err, sec.Data)
	}
	for _, owned := range []metav1.Object{dep, mustService(t, c, obj)} {
		refs := owned.GetOwnerReferences()
		if len(refs) != 1 || refs[0].Kind != "Secret" || refs[0].UID != sec.UID {
			t.Errorf("%s owner references %+v, want the root Secret %s", owned.GetName(), refs, sec.UID)
		}
	}
	if st := b.Status(svc); st.Ready != 2 || st.Total != 2 || len(st.Instances) != 2 {
		t.Errorf("status after create: %+v", st)
	}
	if eps := c.router.get(svc); len(eps) != 2 || eps[0].Version != 1 {
		t.Errorf("routed %+v", eps)
	}
	c.mustPredict(svc)
	podsV1 := c.pods()

	// Scale to 3: one more pod, the first two untouched.
	d.Replicas = 3
	if err := b.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	pods := c.pods()
	if len(pods) != 3 {
		t.Errorf("pods after scale: %v", pods)
	}
	for p := range podsV1 {
		if _, ok := pods[p]; !ok {
			t.Errorf("scale replaced pod %s", p)
		}
	}
	checkDeployment(t, c.deployment(svc), svc, 3, 1)

	// Modify: a new version rolls out under load with no failed request.
	v2 := sealBundle(t, c.data, model, "v2")
	stopLoad := c.load(svc)
	time.Sleep(300 * time.Millisecond)
	d2 := scheduler.Deployment{Service: svc, Version: 2, BundleDir: v2, Replicas: 3, Args: []string{"--timeout", "5s"}}
	t0 = time.Now()
	if err := b.Apply(ctx, d2); err != nil {
		t.Fatal(err)
	}
	rollout := time.Since(t0)
	time.Sleep(300 * time.Millisecond)
	okN, failed := stopLoad()
	t.Logf("FIGURE rolling update of 3 pods: %s, %d requests answered during it, %d failed", rollout.Round(time.Millisecond), okN, len(failed))
	if len(failed) > 0 || okN == 0 {
		t.Errorf("rolling update: %d ok, failures: %v", okN, failed)
	}
	pods = c.pods()
	if len(pods) != 3 {
		t.Errorf("pods after update: %v", pods)
	}
	for p, v := range pods {
		if v != "2" {
			t.Errorf("pod %s of version %s after update", p, v)
		}
	}
	checkDeployment(t, c.deployment(svc), svc, 3, 2)
	if got := c.objects(); !slices.Equal(got, wantObjs) {
		t.Errorf("objects after update: %v", got)
	}
	for _, e := range c.router.get(svc) {
		if e.Version != 2 {
			t.Errorf("routed %+v after update", e)
		}
	}

	// easd restarts: a new backend adopts what runs, routes it at once, and an Apply of the
	// same version changes nothing.
	stopB()
	b, _ = c.backend(withResources)
	waitFor(t, "routing of adopted pods", func() bool { return len(c.router.get(svc)) == 3 })
	before := c.pods()
	if err := b.Apply(ctx, d2); err != nil {
		t.Fatal(err)
	}
	if after := c.pods(); !maps.Equal(before, after) {
		t.Errorf("adopting Apply changed pods: %v → %v", before, after)
	}
	if got := c.objects(); !slices.Equal(got, wantObjs) {
		t.Errorf("objects after adoption: %v", got)
	}
	c.mustPredict(svc)

	// Stop: zero replicas, nothing routed, objects kept.
	if err := b.Stop(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if len(c.router.get(svc)) != 0 || len(c.pods()) != 0 {
		t.Errorf("after stop: routed %v, pods %v", c.router.get(svc), c.pods())
	}
	if r := *c.deployment(svc).Spec.Replicas; r != 0 {
		t.Errorf("replicas after stop: %d", r)
	}
	if code, _, _ := c.predict(svc); code == 200 {
		t.Errorf("predict after stop answered 200")
	}
	// Start again.
	d2.Replicas = 1
	if err := b.Apply(ctx, d2); err != nil {
		t.Fatal(err)
	}
	c.mustPredict(svc)

	// Delete: every object goes; pods follow their owners.
	b.TokenChanged(svc, "", false)
	waitFor(t, "objects deleted", func() bool { return len(c.objects()) == 0 })
	waitFor(t, "pods gone", func() bool { return len(c.pods()) == 0 })
	waitFor(t, "routing emptied", func() bool { return len(c.router.get(svc)) == 0 })
}

func mustService(t *testing.T, c *cluster, name string) *corev1.Service {
	s, err := c.c.CoreV1().Services(c.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func checkDeployment(t *testing.T, d *appsv1.Deployment, svc string, replicas int32, version int) {
	t.Helper()
	if *d.Spec.Replicas != replicas || d.Annotations[AnnotationVersion] != fmt.Sprint(version) || d.Annotations[AnnotationService] != svc {
		t.Errorf("Deployment: replicas %d, annotations %v; want %d replicas of version %d", *d.Spec.Replicas, d.Annotations, replicas, version)
	}
	ru := d.Spec.Strategy.RollingUpdate
	if ru == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge.String() != "25%" {
		t.Errorf("rolling update strategy %+v: capacity could drop", ru)
	}
	if d.Spec.Template.Labels[LabelVersion] != fmt.Sprint(version) || d.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Path != "/ready" {
		t.Errorf("pod template: labels %v, readiness %+v", d.Spec.Template.Labels, d.Spec.Template.Spec.Containers[0].ReadinessProbe)
	}
	init := d.Spec.Template.Spec.InitContainers
	if len(init) != 1 || !slices.Contains(init[0].Command, d.Annotations[AnnotationBundle]) || !strings.HasPrefix(d.Annotations[AnnotationBundle], "sha256:") {
		t.Errorf("init container %+v does not fetch bundle %s", init, d.Annotations[AnnotationBundle])
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestClusterErrorsBecomeClearMessages(t *testing.T) {
	c := newCluster(t)
	model := clsModel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bundleDir := sealBundle(t, c.data, model, "e")

	t.Run("image pull failure", func(t *testing.T) {
		b, stop := c.backend(func(o *Options) { o.Image = c.node.pullFails })
		defer stop()
		err := b.Apply(ctx, scheduler.Deployment{Service: "pull", Version: 1, BundleDir: bundleDir, Replicas: 1})
		t.Logf("MESSAGE %v", err)
		if err == nil || !strings.Contains(err.Error(), "ImagePullBackOff") || !strings.Contains(err.Error(), c.node.pullFails) {
			t.Fatalf("Apply: %v", err)
		}
		if r := *c.deployment("pull").Spec.Replicas; r != 0 {
			t.Errorf("a failed first deploy left %d replicas", r)
		}
	})

	t.Run("pod never ready, then a failed update keeps the old version", func(t *testing.T) {
		good, stop := c.backend(nil)
		if err := good.Apply(ctx, scheduler.Deployment{Service: "slow", Version: 1, BundleDir: bundleDir, Replicas: 1}); err != nil {
			t.Fatal(err)
		}
		stop()
		b, stop := c.backend(func(o *Options) { o.Image = c.node.neverReady; o.ReadyTimeout = 3 * time.Second })
		defer stop()
		err := b.Apply(ctx, scheduler.Deployment{Service: "slow", Version: 2, BundleDir: bundleDir, Replicas: 1})
		t.Logf("MESSAGE %v", err)
		if err == nil || !strings.Contains(err.Error(), "pods not ready after 3s") || !strings.Contains(err.Error(), "running but not ready") {
			t.Fatalf("Apply: %v", err)
		}
		d := c.deployment("slow")
		if d.Annotations[AnnotationVersion] != "1" || d.Spec.Template.Spec.Containers[0].Image != testImage || *d.Spec.Replicas != 1 {
			t.Errorf("not rolled back: version %s image %s replicas %d", d.Annotations[AnnotationVersion], d.Spec.Template.Spec.Containers[0].Image, *d.Spec.Replicas)
		}
		waitFor(t, "old version serving alone", func() bool {
			eps := c.router.get("slow")
			return len(eps) == 1 && eps[0].Version == 1 && countVersion(c.pods(), "2") == 0
		})
	})

	t.Run("quota refusal", func(t *testing.T) {
		ns := newNamespace(t)
		q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-deployments", Namespace: ns},
			Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/deployments.apps": resource.MustParse("0")}}}
		q, err := c.c.CoreV1().ResourceQuotas(ns).Create(ctx, q, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// No quota controller runs here: publish the usage it would compute.
		q.Status = corev1.ResourceQuotaStatus{Hard: q.Spec.Hard, Used: corev1.ResourceList{"count/deployments.apps": resource.MustParse("0")}}
		if _, err := c.c.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		b, stop := startBackend(t, ns, c.c, func(o *Options) { o.Bundles = c.store })
		defer stop()
		err = b.Apply(ctx, scheduler.Deployment{Service: "quota", Version: 1, BundleDir: bundleDir, Replicas: 1})
		t.Logf("MESSAGE %v", err)
		if err == nil || !strings.Contains(err.Error(), "Kubernetes refused to create Deployment eas-quota: Forbidden") || !strings.Contains(err.Error(), "exceeded quota") {
			t.Fatalf("Apply: %v", err)
		}
	})

	t.Run("quota refuses pods", func(t *testing.T) {
		q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-pods", Namespace: c.ns},
			Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}}}
		q, err := c.c.CoreV1().ResourceQuotas(c.ns).Create(ctx, q, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.c.CoreV1().ResourceQuotas(c.ns).Delete(context.Background(), q.Name, metav1.DeleteOptions{})
		q.Status = corev1.ResourceQuotaStatus{Hard: q.Spec.Hard, Used: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}}
		if _, err := c.c.CoreV1().ResourceQuotas(c.ns).UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		b, stop := c.backend(nil)
		defer stop()
		err = b.Apply(ctx, scheduler.Deployment{Service: "podquota", Version: 1, BundleDir: bundleDir, Replicas: 1})
		t.Logf("MESSAGE %v", err)
		if err == nil || !strings.Contains(err.Error(), "Kubernetes cannot create pods: FailedCreate:") || !strings.Contains(err.Error(), "exceeded quota: no-pods") {
			t.Fatalf("Apply: %v", err)
		}
	})

	t.Run("RBAC refusal", func(t *testing.T) {
		ns := newNamespace(t)
		u, err := suiteEnv.AddUser(envtest.User{Name: "no-rights"}, suiteCfg)
		if err != nil {
			t.Fatal(err)
		}
		limited := kclient.NewForConfigOrDie(u.Config())
		b, err := New(Options{Client: limited, Namespace: ns, Image: testImage, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		// Run refuses to start blind: the message names what is refused.
		err = b.Run(ctx)
		t.Logf("MESSAGE %v", err)
		if err == nil || !strings.Contains(err.Error(), "Kubernetes refused to list Deployments: Forbidden") {
			t.Fatalf("Run: %v", err)
		}
		// Apply alone fails on the API's refusal too, not a hang.
		close(b.started)
		err = b.Apply(ctx, scheduler.Deployment{Service: "rbac", Version: 1, BundleDir: bundleDir, Replicas: 1})
		t.Logf("MESSAGE %v", err)
		if err == nil || !strings.Contains(err.Error(), "Kubernetes refused to read Secret eas-rbac: Forbidden") || !strings.Contains(err.Error(), "no-rights") {
			t.Fatalf("Apply: %v", err)
		}
	})
}

func countVersion(pods map[string]string, v string) int {
	n := 0
	for _, pv := range pods {
		if pv == v {
			n++
		}
	}
	return n
}

// TestServiceJSONThroughDeploy deploys a service.json with a plugin through the deploy
// manager, unchanged from the local backend: the plugin runs as a Job whose status (set here)
// drives the deploy, the bundle is sealed from the Job's output and served by pods.
func TestServiceJSONThroughDeploy(t *testing.T) {
	c := newCluster(t)
	model := clsModel(t)
	st, err := store.Open(context.Background(), filepath.Join(c.data, "easd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	os.MkdirAll(filepath.Join(c.data, "tmp"), 0o755)
	bs, err := bundle.OpenStore(c.data)
	if err != nil {
		t.Fatal(err)
	}
	var mgrP atomic.Pointer[deploy.Manager]
	b, _ := c.backend(func(o *Options) {
		o.Events = func(service, typ, msg string) {
			if m := mgrP.Load(); m != nil {
				m.SchedulerEvent(service, typ, msg)
			}
		}
		o.Resources = func(ctx context.Context, service string, version int) (Resources, error) {
			vr, err := st.GetVersion(ctx, service, version)
			if err != nil {
				return Resources{}, err
			}
			s, err := spec.Parse(vr.Spec)
			if err != nil {
				return Resources{}, err
			}
			return Resources{CPU: s.Metadata.CPU, MemoryMB: s.Metadata.Memory, GPU: s.Metadata.GPU, Group: s.Resource}, nil
		}
	})
	mgr := deploy.New(deploy.Options{DataDir: c.data, Store: st, Bundles: bs, Scheduler: b, RunPlugin: b.RunPlugin,
		EndpointURL: "http://easd.test", RuntimeVersion: "test", Logger: testLogger(t),
		TokenChanged: func(service, token string, exists bool) {
			if exists {
				c.tokens.Store(service, token)
			} else {
				c.tokens.Delete(service)
			}
			b.TokenChanged(service, token, exists)
		}})
	mgrP.Store(mgr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	mctx, stopMgr := context.WithCancel(ctx)
	mdone := make(chan error, 1)
	go func() { mdone <- mgr.Run(mctx) }()
	defer func() { stopMgr(); <-mdone }()

	doc, _ := json.Marshal(map[string]any{
		"name": "cls_plugin", "model_path": model, "processor": "onnxruntime_cpu",
		"metadata": map[string]any{"instance": 2, "cpu": 1, "memory": 512},
		"plugins":  []any{map[string]any{"image": "example.com/optimizer:1", "command": "optimize --level 2"}},
	})
	played := playJob(t, c.ns, c.store, "", true)
	t0 := time.Now()
	if _, err := mgr.Create(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if err := <-played; err != nil {
		t.Fatalf("playing the plugin Job: %v", err)
	}
	var s *api.Service
	for {
		if s, err = mgr.Describe(ctx, "cls_plugin"); err != nil {
			t.Fatal(err)
		}
		if s.Status == api.StatusRunning || s.Status == api.StatusFailed {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("service still %s", s.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("FIGURE service.json with a plugin Job → Running with 2 simulated pods: %s", time.Since(t0).Round(time.Millisecond))
	if s.Status != api.StatusRunning {
		t.Fatalf("service %s: %s", s.Status, s.Message)
	}
	c.mustPredict("cls_plugin")
	evs, _ := mgr.Events(ctx, "cls_plugin", 0)
	var text []string
	for _, e := range evs {
		text = append(text, e.Message)
	}
	all := strings.Join(text, "\n")
	if !strings.Contains(all, "Job eas-plugin-") || !strings.Contains(all, "speedup 1.5") {
		t.Errorf("events do not tell the Job's story:\n%s", all)
	}
	d := c.deployment("cls_plugin")
	if q := d.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]; q.String() != "512Mi" {
		t.Errorf("memory limit %s, want 512Mi from metadata.memory", q.String())
	}
	// Delete through the manager: every object goes.
	if _, err := mgr.Delete(ctx, "cls_plugin"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "objects deleted", func() bool { return len(c.objects()) == 0 })
}

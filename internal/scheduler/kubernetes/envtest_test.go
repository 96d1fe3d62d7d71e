package kubernetes

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kclient "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/scheduler"
)

// The suite runs against a real kube-apiserver and etcd (envtest). Their binaries come from
// scripts/envtest.sh (built once from the Go module proxy, cached outside the repo);
// OPENEAS_ENVTEST_ASSETS names their directory. There is no kubelet and no controller manager:
// fakeNode plays both, running real eas-worker processes for the pods the Deployments ask for.

var (
	suiteEnv    *envtest.Environment
	suiteCfg    *rest.Config
	suiteClient kclient.Interface
	suiteSkip   string
)

func TestMain(m *testing.M) {
	code := func() int {
		dir, why := envtestAssets()
		if why != "" {
			suiteSkip = why
			return m.Run()
		}
		suiteEnv = &envtest.Environment{BinaryAssetsDirectory: dir, ControlPlaneStartTimeout: 2 * time.Minute, ControlPlaneStopTimeout: time.Minute}
		cfg, err := suiteEnv.Start()
		if err != nil {
			fmt.Fprintf(os.Stderr, "kubernetes tests: start kube-apiserver and etcd from %s: %v\n", dir, err)
			return 1
		}
		defer suiteEnv.Stop()
		cfg.QPS, cfg.Burst = 500, 1000
		suiteCfg = cfg
		suiteClient = kclient.NewForConfigOrDie(cfg)
		return m.Run()
	}()
	os.Exit(code)
}

// envtestAssets finds the kube-apiserver and etcd binaries, building them with
// scripts/envtest.sh when they are missing. It returns a reason to skip when they cannot be had.
func envtestAssets() (string, string) {
	if dir := os.Getenv("OPENEAS_ENVTEST_ASSETS"); dir != "" {
		if haveAssets(dir) {
			return dir, ""
		}
		return "", fmt.Sprintf("OPENEAS_ENVTEST_ASSETS=%s holds no kube-apiserver and etcd: run scripts/envtest.sh", dir)
	}
	fmt.Fprintln(os.Stderr, "kubernetes tests: OPENEAS_ENVTEST_ASSETS is not set; running scripts/envtest.sh "+
		"(builds kube-apiserver v1.37.2 and etcd v3.7.3 from the Go module proxy the first time: ~10 min on 2 cores)")
	cmd := exec.Command("../../../scripts/envtest.sh")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Sprintf("kube-apiserver and etcd could not be built by scripts/envtest.sh: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	if !haveAssets(dir) {
		return "", "scripts/envtest.sh printed " + dir + ", which holds no kube-apiserver and etcd"
	}
	return dir, ""
}

func haveAssets(dir string) bool {
	for _, f := range []string{"kube-apiserver", "etcd"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// restrictedClient is a client for a user holding exactly the Role in
// deploy/kubernetes/rbac.yaml in namespace ns: the tests then prove the manifest's rights suffice.
func restrictedClient(t *testing.T, ns string) kclient.Interface {
	t.Helper()
	data, err := os.ReadFile("../../../deploy/kubernetes/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	user := "easd-" + ns
	found := false
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var role rbacv1.Role
		if err := yaml.Unmarshal([]byte(doc), &role); err != nil {
			t.Fatalf("rbac.yaml: %v", err)
		}
		if role.Kind != "Role" {
			continue
		}
		found = true
		role.Namespace = ns
		if _, err := suiteClient.RbacV1().Roles(ns).Create(ctx, &role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: ns},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: user, APIGroup: rbacv1.GroupName}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		}
		if _, err := suiteClient.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if !found {
		t.Fatal("rbac.yaml holds no Role")
	}
	u, err := suiteEnv.AddUser(envtest.User{Name: user}, suiteCfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := u.Config()
	cfg.QPS, cfg.Burst = 500, 1000
	client := kclient.NewForConfigOrDie(cfg)
	// The API server's RBAC authorizer learns of new RoleBindings through an informer, so
	// the grant takes effect a moment after Create returns; wait for it, or the backend's
	// first List is (correctly) refused and the test fails for a reason of its own.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			break
		}
		if !apierrors.IsForbidden(err) || time.Now().After(deadline) {
			t.Fatalf("RBAC grant for %s never took effect: %v", user, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return client
}

func needCluster(t *testing.T) {
	t.Helper()
	if suiteSkip != "" {
		t.Skip(suiteSkip)
	}
}

var nsSeq atomic.Int32

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("eas-test-%d-%d", os.Getpid()%10000, nsSeq.Add(1))
	_, err := suiteClient.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// dirStore is an object store in a local directory: what the init containers and the fake
// node read bundles and plugin data from.
type dirStore struct {
	root string
	bundle.DirTrees
}

func newDirStore(root string) dirStore {
	return dirStore{root: root, DirTrees: bundle.DirTrees{Root: root}}
}

func (s dirStore) PublishBundle(ctx context.Context, digest, dir string) error {
	dst := filepath.Join(s.root, "bundles", strings.TrimPrefix(digest, "sha256:"))
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	return modelsource.CopyTree(ctx, dir, dst)
}

func (s dirStore) bundleDir(digest string) string {
	return filepath.Join(s.root, "bundles", strings.TrimPrefix(digest, "sha256:"))
}

// recRouter records what the backend routes and passes it on.
type recRouter struct {
	mu   sync.Mutex
	sets map[string][]scheduler.Endpoint
	next scheduler.Router
}

// SetEndpoints passes the set on before recording it, so routes never reports an address
// gone while the gateway still routes to it (the fake node stops a worker on that report).
func (r *recRouter) SetEndpoints(service string, eps []scheduler.Endpoint) {
	if r.next != nil {
		r.next.SetEndpoints(service, eps)
	}
	r.mu.Lock()
	if r.sets == nil {
		r.sets = map[string][]scheduler.Endpoint{}
	}
	r.sets[service] = eps
	r.mu.Unlock()
}

func (r *recRouter) get(service string) []scheduler.Endpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sets[service])
}

func (r *recRouter) routes(addr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, eps := range r.sets {
		for _, e := range eps {
			if e.Addr == addr {
				return true
			}
		}
	}
	return false
}

// fakeNode plays the Deployment controller (with its rolling update rules: maxSurge 25%,
// maxUnavailable 0), the kubelet (a real eas-worker process per pod, readiness set through
// the API once the worker is ready) and the endpoint controller (one EndpointSlice per pod,
// withdrawn before the worker is stopped).
type fakeNode struct {
	t      *testing.T
	c      kclient.Interface
	ns     string
	store  dirStore
	worker string
	ortLib string
	hostIP string
	router *recRouter
	// pullFails: pods of this image never start (ImagePullBackOff); neverReady: they run but
	// never become ready.
	pullFails, neverReady string

	mu      sync.Mutex
	pods    map[string]*simPod
	created atomic.Int32
}

type simPod struct {
	name, dep, hash, version string
	cmd                      *exec.Cmd
	exited                   chan struct{}
	addr                     string
	ready                    bool
}

func (n *fakeNode) run(ctx context.Context) {
	for ctx.Err() == nil {
		deps, err := n.c.AppsV1().Deployments(n.ns).List(ctx, metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedBy})
		if err == nil {
			live := map[string]bool{}
			for i := range deps.Items {
				live[deps.Items[i].Name] = true
				n.reconcile(ctx, &deps.Items[i])
			}
			n.mu.Lock()
			var orphans []*simPod
			for _, p := range n.pods {
				if !live[p.dep] {
					orphans = append(orphans, p)
				}
			}
			n.mu.Unlock()
			for _, p := range orphans { // the garbage collector's part
				n.terminate(ctx, p)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (n *fakeNode) stopAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.pods {
		if p.cmd != nil && p.cmd.Process != nil {
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
}

func (n *fakeNode) reconcile(ctx context.Context, dep *appsv1.Deployment) {
	want := int(*dep.Spec.Replicas)
	hash := dep.Annotations[AnnotationTemplate]
	surge := max(1, (want+3)/4)
	n.mu.Lock()
	var newP, oldP []*simPod
	for _, p := range n.pods {
		if p.dep != dep.Name {
			continue
		}
		if p.hash == hash {
			newP = append(newP, p)
		} else {
			oldP = append(oldP, p)
		}
	}
	n.mu.Unlock()
	ready := func(ps []*simPod) int {
		k := 0
		for _, p := range ps {
			if p.ready {
				k++
			}
		}
		return k
	}
	var failure *appsv1.DeploymentCondition
	switch {
	case len(newP) < want && len(newP)+len(oldP) < want+surge && ready(newP) == len(newP):
		if err := n.createPod(ctx, dep, hash); err != nil {
			failure = &appsv1.DeploymentCondition{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue,
				Reason: "FailedCreate", Message: err.Error()}
		}
	case len(newP) > want:
		n.terminate(ctx, newP[len(newP)-1])
	case len(oldP) > 0 && (ready(newP)+ready(oldP)-1 >= want || !oldP[0].ready):
		n.terminate(ctx, oldP[0])
	}
	n.mu.Lock()
	total, upd, rdy := 0, 0, 0
	for _, p := range n.pods {
		if p.dep != dep.Name {
			continue
		}
		total++
		if p.hash == hash {
			upd++
		}
		if p.ready {
			rdy++
		}
	}
	n.mu.Unlock()
	cur, err := n.c.AppsV1().Deployments(n.ns).Get(ctx, dep.Name, metav1.GetOptions{})
	if err != nil || cur.Annotations[AnnotationTemplate] != hash {
		return
	}
	st := appsv1.DeploymentStatus{ObservedGeneration: cur.Generation, Replicas: int32(total), UpdatedReplicas: int32(upd),
		ReadyReplicas: int32(rdy), AvailableReplicas: int32(rdy), UnavailableReplicas: int32(max(0, want-rdy))}
	if failure != nil {
		failure.LastUpdateTime, failure.LastTransitionTime = metav1.Now(), metav1.Now()
		st.Conditions = []appsv1.DeploymentCondition{*failure}
	}
	if equalStatus(cur.Status, st) {
		return
	}
	cur.Status = st
	n.c.AppsV1().Deployments(n.ns).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
}

func equalStatus(a, b appsv1.DeploymentStatus) bool {
	if len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		if a.Conditions[i].Type != b.Conditions[i].Type || a.Conditions[i].Message != b.Conditions[i].Message {
			return false
		}
	}
	return a.ObservedGeneration == b.ObservedGeneration && a.Replicas == b.Replicas && a.UpdatedReplicas == b.UpdatedReplicas &&
		a.ReadyReplicas == b.ReadyReplicas && a.AvailableReplicas == b.AvailableReplicas && a.UnavailableReplicas == b.UnavailableReplicas
}

func (n *fakeNode) createPod(ctx context.Context, dep *appsv1.Deployment, hash string) error {
	tmpl := dep.Spec.Template
	k := n.created.Add(1)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-%s-%d", dep.Name, hash[:6], k), Namespace: n.ns,
			Labels: tmpl.Labels, Annotations: tmpl.Annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name, UID: dep.UID}},
		},
		Spec: tmpl.Spec,
	}
	pod, err := n.c.CoreV1().Pods(n.ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	sp := &simPod{name: pod.Name, dep: dep.Name, hash: hash, version: pod.Labels[LabelVersion], exited: make(chan struct{})}
	n.mu.Lock()
	n.pods[sp.name] = sp
	n.mu.Unlock()
	ctr := pod.Spec.Containers[0]
	switch ctr.Image {
	case n.pullFails:
		pod.Status = corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{{
			Name: fetchContainer, Image: ctr.Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff",
				Message: fmt.Sprintf("Back-off pulling image %q: not found", ctr.Image)}},
		}}}
		_, err := n.c.CoreV1().Pods(n.ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		close(sp.exited)
		return err
	case n.neverReady:
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: n.hostIP, PodIPs: []corev1.PodIP{{IP: n.hostIP}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: containerName, Image: ctr.Image, ImageID: "fake",
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
		_, err := n.c.CoreV1().Pods(n.ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		close(sp.exited)
		return err
	}
	// The init container: the bundle by digest from the object store.
	bundleDir := n.store.bundleDir(pod.Annotations[AnnotationBundle])
	if _, err := os.Stat(filepath.Join(bundleDir, "bundle.json")); err != nil {
		close(sp.exited)
		return fmt.Errorf("fake init container: bundle %s not in the object store: %w", pod.Annotations[AnnotationBundle], err)
	}
	var args []string
	if n.ortLib != "" {
		args = append(args, "--ort-lib", n.ortLib)
	}
	for i := 0; i < len(ctr.Args); i++ {
		switch ctr.Args[i] {
		case "--bundle":
			args = append(args, "--bundle", bundleDir)
			i++
		case "--listen":
			args = append(args, "--listen", n.hostIP+":0")
			i++
		default:
			args = append(args, ctr.Args[i])
		}
	}
	cmd := exec.Command(n.worker, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		close(sp.exited)
		return err
	}
	sp.cmd = cmd
	events := make(chan map[string]any, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				events <- ev
			}
		}
		close(events)
		cmd.Wait()
		close(sp.exited)
	}()
	gotReady := false
	for ev := range events {
		switch ev["event"] {
		case "listening":
			sp.addr, _ = ev["addr"].(string)
		case "failed":
			return fmt.Errorf("fake kubelet: worker failed: %v", ev["error"])
		}
		if ev["event"] == "ready" {
			gotReady = true
			break
		}
	}
	go func() {
		for range events {
		}
	}()
	if !gotReady {
		return fmt.Errorf("fake kubelet: worker exited before it was ready")
	}
	_, portStr, _ := net.SplitHostPort(sp.addr)
	var port int32
	fmt.Sscan(portStr, &port)
	now := metav1.Now()
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: n.hostIP, PodIPs: []corev1.PodIP{{IP: n.hostIP}}, StartTime: &now,
		Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: containerName, Ready: true, Image: ctr.Image, ImageID: "fake",
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}}
	if _, err := n.c.CoreV1().Pods(n.ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		return err
	}
	svc, err := n.c.CoreV1().Services(n.ns).Get(ctx, dep.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: n.ns,
			Labels:          map[string]string{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: "fake-node.openeas.io"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID}}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{n.hostIP},
			Conditions: discoveryv1.EndpointConditions{Ready: new(true), Serving: new(true), Terminating: new(false)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: n.ns, Name: pod.Name, UID: pod.UID}}},
		Ports: []discoveryv1.EndpointPort{{Name: new("http"), Port: &port, Protocol: new(corev1.ProtocolTCP)}},
	}
	if _, err := n.c.DiscoveryV1().EndpointSlices(n.ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		return err
	}
	n.mu.Lock()
	sp.ready = true
	n.mu.Unlock()
	return nil
}

// terminate withdraws the pod's endpoint, waits until nothing routes to it any more (the
// preStop sleep's job in a real cluster), then stops the worker (SIGTERM: it drains) and
// deletes the pod and its slice.
func (n *fakeNode) terminate(ctx context.Context, p *simPod) {
	if sl, err := n.c.DiscoveryV1().EndpointSlices(n.ns).Get(ctx, p.name, metav1.GetOptions{}); err == nil {
		sl.Endpoints[0].Conditions = discoveryv1.EndpointConditions{Ready: new(false), Serving: new(true), Terminating: new(true)}
		n.c.DiscoveryV1().EndpointSlices(n.ns).Update(ctx, sl, metav1.UpdateOptions{})
		deadline := time.Now().Add(10 * time.Second)
		for n.router.routes(p.addr) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
	n.c.DiscoveryV1().EndpointSlices(n.ns).Delete(ctx, p.name, metav1.DeleteOptions{})
	err := n.c.CoreV1().Pods(n.ns).Delete(ctx, p.name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})
	if err != nil && !apierrors.IsNotFound(err) {
		n.t.Logf("fake node: delete pod %s: %v", p.name, err)
	}
	n.mu.Lock()
	delete(n.pods, p.name)
	n.mu.Unlock()
}

// hostIP is an address of this machine that EndpointSlice validation accepts (not loopback).
func hostIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			return ipn.IP.String()
		}
	}
	return ""
}

// sealBundle seals a real bundle around model (with a distinguishing report) and returns its
// directory in a bundle store, the way the deploy pipeline hands it to Apply.
func sealBundle(t *testing.T, data, model, tag string) string {
	t.Helper()
	st, err := bundle.OpenStore(data)
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	b, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "m.onnx"), b, 0o644)
	digest, err := st.Seal(context.Background(), src, bundle.Manifest{Schema: 1, Processor: "onnxruntime_cpu", ModelEntry: "m.onnx"},
		map[string][]byte{"tag.json": []byte(`{"tag":"` + tag + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := st.Path(digest)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("OPENEAS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

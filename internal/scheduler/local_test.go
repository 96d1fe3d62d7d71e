package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeWorker is the fake eas-worker binary, built once by TestMain.
var fakeWorker string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fakeworker")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fakeWorker = filepath.Join(dir, "fakeworker")
	out, err := exec.Command("go", "build", "-o", fakeWorker, "./testdata/fakeworker").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build fakeworker: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// waitLimit only guards against hangs; no test asserts on durations.
const waitLimit = 30 * time.Second

// router records every endpoint set it is given; check runs inside SetEndpoints.
type router struct {
	mu      sync.Mutex
	history map[string][][]Endpoint
	check   func(service string, eps []Endpoint)
	changed chan struct{}
}

func newRouter() *router {
	return &router{history: map[string][][]Endpoint{}, changed: make(chan struct{}, 1)}
}

func (r *router) SetEndpoints(service string, eps []Endpoint) {
	r.mu.Lock()
	r.history[service] = append(r.history[service], eps)
	check := r.check
	r.mu.Unlock()
	if check != nil {
		check(service, eps)
	}
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *router) sets(service string) [][]Endpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.history[service])
}

func (r *router) last(service string) []Endpoint {
	h := r.sets(service)
	if len(h) == 0 {
		return nil
	}
	return h[len(h)-1]
}

// events records scheduler events.
type events struct {
	mu   sync.Mutex
	list []string
	more chan struct{}
}

func (e *events) add(service, typ, msg string) {
	e.mu.Lock()
	e.list = append(e.list, typ+" "+service+": "+msg)
	e.mu.Unlock()
	select {
	case e.more <- struct{}{}:
	default:
	}
}

// waitFor returns the first event, from index from on, containing every part.
func (e *events) waitFor(t *testing.T, from int, parts ...string) (string, int) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		e.mu.Lock()
		for i := from; i < len(e.list); i++ {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(e.list[i], p)
			}
			if ok {
				ev := e.list[i]
				e.mu.Unlock()
				return ev, i + 1
			}
		}
		all := strings.Join(e.list, "\n")
		e.mu.Unlock()
		select {
		case <-e.more:
		case <-deadline:
			t.Fatalf("no event containing %q; events:\n%s", parts, all)
		}
	}
}

type harness struct {
	l      *Local
	router *router
	events *events
	cancel context.CancelFunc
	runErr chan error
	mu     sync.Mutex
	pids   []int // every worker process started
}

// start runs a Local with fast backoffs and registers cleanup: cancel, Run returns, no worker
// process is left and no goroutine leaked.
func start(t *testing.T, tweak func(*Options)) *harness {
	t.Helper()
	before := runtime.NumGoroutine()
	h := &harness{router: newRouter(), events: &events{more: make(chan struct{}, 1)}, runErr: make(chan error, 1)}
	opts := Options{
		WorkerBinary: fakeWorker,
		Router:       h.router,
		Events:       h.events.add,
		ReadyTimeout: waitLimit,
		StopTimeout:  waitLimit,
		BackoffMin:   10 * time.Millisecond,
		BackoffMax:   time.Second,
		StartProcess: func(cmd *exec.Cmd) error {
			err := cmd.Start()
			if err == nil {
				h.mu.Lock()
				h.pids = append(h.pids, cmd.Process.Pid)
				h.mu.Unlock()
			}
			return err
		},
	}
	if tweak != nil {
		tweak(&opts)
	}
	h.l = NewLocal(opts)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.runErr <- h.l.Run(ctx) }()
	t.Cleanup(func() {
		h.shutdown(t)
		for _, pid := range h.started() {
			if alive(pid) {
				t.Errorf("worker pid %d still alive after Run returned", pid)
			}
		}
		checkGoroutines(t, before)
	})
	return h
}

func (h *harness) shutdown(t *testing.T) {
	t.Helper()
	h.cancel()
	select {
	case err, ok := <-h.runErr:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		if ok {
			close(h.runErr)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after cancel")
	}
}

func (h *harness) started() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.pids)
}

func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// bundle makes a bundle directory whose fake.json is cfg.
func bundle(t *testing.T, cfg map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	writeFake(t, dir, cfg)
	return dir
}

func writeFake(t *testing.T, dir string, cfg map[string]any) {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fake.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func predict(t *testing.T, addr, query, body string) string {
	t.Helper()
	resp, err := client.Post("http://"+addr+"/predict"+query, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatalf("predict %s: %v", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("predict %s: status %d, %v", addr, resp.StatusCode, err)
	}
	return string(b)
}

func apply(t *testing.T, l *Local, d Deployment) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := l.Apply(ctx, d); err != nil {
		t.Fatalf("Apply %+v: %v", d, err)
	}
}

func TestScaleUpAndDown(t *testing.T) {
	h := start(t, nil)
	dir := bundle(t, map[string]any{"tag": "v1"})
	d := Deployment{Service: "echo", Version: 1, BundleDir: dir}
	for _, n := range []int{1, 3, 1, 0, 2} {
		before := h.l.Status("echo")
		d.Replicas = n
		apply(t, h.l, d)

		eps := h.router.last("echo")
		if len(eps) != n {
			t.Fatalf("replicas %d: routed %d endpoints: %+v", n, len(eps), eps)
		}
		st := h.l.Status("echo")
		if st.Ready != n || st.Total != n || len(st.Instances) != n {
			t.Fatalf("replicas %d: status %+v", n, st)
		}
		addrs := map[string]bool{}
		for _, ep := range eps {
			addrs[ep.Addr] = true
			if got := predict(t, ep.Addr, "", "hi"); got != "v1:hi" {
				t.Errorf("predict via %s = %q", ep.Addr, got)
			}
		}
		if len(addrs) != n {
			t.Errorf("replicas %d: endpoints share addresses: %+v", n, eps)
		}
		// Instances that are no longer in the status are gone for good.
		kept := map[int]bool{}
		for _, in := range st.Instances {
			kept[in.PID] = true
		}
		for _, in := range before.Instances {
			if !kept[in.PID] && alive(in.PID) {
				t.Errorf("replicas %d: removed instance %s (pid %d) still runs", n, in.ID, in.PID)
			}
		}
	}
	// Scale-down never routes to an instance after it was told to stop: each set is a subset
	// of the previous one or a superset (scale-up), never empty except at replicas 0.
	for i, eps := range h.router.sets("echo") {
		if len(eps) == 0 && i != 3 {
			t.Errorf("routing set %d is empty: %v", i, h.router.sets("echo"))
		}
	}
}

func TestCrashIsRestartedWithEvent(t *testing.T) {
	h := start(t, nil)
	dir := bundle(t, map[string]any{"tag": "v1", "stderr": []string{"loading model.onnx"}})
	apply(t, h.l, Deployment{Service: "echo", Version: 1, BundleDir: dir, Replicas: 1})
	first := h.l.Status("echo").Instances[0]
	nsets := len(h.router.sets("echo"))

	resp, err := client.Post("http://"+first.Addr+"/crash", "text/plain", nil)
	if err == nil {
		resp.Body.Close()
	}
	ev, next := h.events.waitFor(t, 0, "Warning", first.ID, "exit status 3", "restarting in 10ms")
	if !strings.Contains(ev, "loading model.onnx") {
		t.Errorf("crash event does not quote stderr: %q", ev)
	}
	h.events.waitFor(t, next, "Normal", first.ID, "restarted and ready")

	st := h.l.Status("echo")
	if st.Ready != 1 || st.Instances[0].Restarts != 1 || st.Instances[0].PID == first.PID {
		t.Fatalf("after restart: %+v (first pid %d)", st, first.PID)
	}
	if alive(first.PID) {
		t.Errorf("crashed pid %d alive", first.PID)
	}
	sets := h.router.sets("echo")[nsets:]
	if len(sets) != 2 || len(sets[0]) != 0 || len(sets[1]) != 1 || sets[1][0].Addr != st.Instances[0].Addr {
		t.Errorf("routing after crash: want [] then the new address %s, got %+v", st.Instances[0].Addr, sets)
	}
	if got := predict(t, st.Instances[0].Addr, "", "again"); got != "v1:again" {
		t.Errorf("predict after restart = %q", got)
	}
}

func TestCrashLoopBacksOff(t *testing.T) {
	h := start(t, nil)
	dir := bundle(t, map[string]any{"tag": "v1"})
	apply(t, h.l, Deployment{Service: "loop", Version: 1, BundleDir: dir, Replicas: 1})
	inst := h.l.Status("loop").Instances[0]

	writeFake(t, dir, map[string]any{"fail": "model file is corrupt"}) // every restart now fails to load
	syscall.Kill(inst.PID, syscall.SIGKILL)

	_, next := h.events.waitFor(t, 0, "Warning", "signal: killed", "restarting in 10ms")
	_, next = h.events.waitFor(t, next, "Warning", "model file is corrupt", "restarting in 20ms")
	h.events.waitFor(t, next, "Warning", "model file is corrupt", "restarting in 40ms")
	st := h.l.Status("loop")
	if st.Ready != 0 || st.Total != 1 || st.Instances[0].Restarts < 2 {
		t.Errorf("status in a crash loop: %+v", st)
	}
	if len(h.router.last("loop")) != 0 {
		t.Errorf("a crash-looping instance is routed: %+v", h.router.last("loop"))
	}
}

func TestFailedLoadIsReported(t *testing.T) {
	cases := []struct {
		name string
		cfg  map[string]any
		env  []string
		args []string
		want []string
	}{
		{"failed event", map[string]any{"fail": "processor tensorflow_cpu is not available in this worker"}, nil, nil,
			[]string{"processor tensorflow_cpu is not available in this worker"}},
		{"exit without event", map[string]any{"exit": 5, "stderr": []string{"panic: out of memory"}},
			[]string{"FAKE_ENV=on"}, []string{"--note", "hello", "--name", "overridden"},
			[]string{"exit status 5", "panic: out of memory", "fakeworker svc starting", "FAKE_ENV=on", "note=hello"}},
		{"ready before listening", map[string]any{"no_listen": true}, nil, nil, []string{"ready before listening"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := start(t, nil)
			good := bundle(t, map[string]any{"tag": "v1"})
			apply(t, h.l, Deployment{Service: "svc", Version: 1, BundleDir: good, Replicas: 1})
			serving := h.router.last("svc")

			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			err := h.l.Apply(ctx, Deployment{Service: "svc", Version: 2, BundleDir: bundle(t, c.cfg), Replicas: 2, Env: c.env, Args: c.args})
			if err == nil {
				t.Fatal("Apply succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			// The old version keeps serving; the failed instances are gone.
			st := h.l.Status("svc")
			if st.Ready != 1 || len(st.Instances) != 1 || st.Instances[0].Version != 1 {
				t.Errorf("status after failed update: %+v", st)
			}
			if got := h.router.last("svc"); !slices.Equal(got, serving) {
				t.Errorf("routing changed by a failed update: %+v, was %+v", got, serving)
			}
			for _, pid := range h.started()[1:] {
				if alive(pid) {
					t.Errorf("failed worker pid %d still alive", pid)
				}
			}
		})
	}
}

func TestRollingUpdate(t *testing.T) {
	h := start(t, nil)
	v1 := bundle(t, map[string]any{"tag": "v1"})
	apply(t, h.l, Deployment{Service: "roll", Version: 1, BundleDir: v1, Replicas: 2})
	var oldPIDs []int
	for _, in := range h.l.Status("roll").Instances {
		oldPIDs = append(oldPIDs, in.PID)
	}
	var mu sync.Mutex
	var problems []string
	h.router.mu.Lock()
	h.router.check = func(service string, eps []Endpoint) {
		mu.Lock()
		defer mu.Unlock()
		if len(eps) == 0 {
			problems = append(problems, "routing became empty")
		}
		for _, pid := range oldPIDs {
			if !alive(pid) {
				problems = append(problems, fmt.Sprintf("old pid %d stopped before routing changed to %+v", pid, eps))
			}
		}
	}
	h.router.mu.Unlock()
	nsets := len(h.router.sets("roll"))

	// A slow request in flight on an old instance must finish during the drain.
	resp, err := client.Post("http://"+h.router.last("roll")[0].Addr+"/predict?hold=300ms", "text/plain", strings.NewReader("slow"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()

	apply(t, h.l, Deployment{Service: "roll", Version: 2, BundleDir: bundle(t, map[string]any{"tag": "v2"}), Replicas: 2})

	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "v1:slow" {
		t.Errorf("in-flight request during drain: %q, %v", body, err)
	}
	mu.Lock()
	for _, p := range problems {
		t.Error(p)
	}
	mu.Unlock()
	sets := h.router.sets("roll")[nsets:]
	versions := func(eps []Endpoint) (v []int) {
		for _, ep := range eps {
			v = append(v, ep.Version)
		}
		slices.Sort(v)
		return v
	}
	if len(sets) != 2 || !slices.Equal(versions(sets[0]), []int{1, 1, 2, 2}) || !slices.Equal(versions(sets[1]), []int{2, 2}) {
		t.Errorf("routing during the update: want v1+v2 then v2 only, got %+v", sets)
	}
	for _, pid := range oldPIDs {
		if alive(pid) {
			t.Errorf("old pid %d alive after the update", pid)
		}
	}
	for _, ep := range h.router.last("roll") {
		if got := predict(t, ep.Addr, "", "x"); got != "v2:x" {
			t.Errorf("predict after update = %q", got)
		}
	}
}

func TestStopLeavesNoProcess(t *testing.T) {
	h := start(t, nil)
	apply(t, h.l, Deployment{Service: "a", Version: 1, BundleDir: bundle(t, map[string]any{}), Replicas: 2})
	apply(t, h.l, Deployment{Service: "b", Version: 1, BundleDir: bundle(t, map[string]any{}), Replicas: 1})
	st := h.l.Status("a")
	if err := h.l.Stop(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	for _, in := range st.Instances {
		if alive(in.PID) {
			t.Errorf("pid %d alive after Stop", in.PID)
		}
	}
	if got := h.l.Status("a"); got.Total != 0 || len(got.Instances) != 0 {
		t.Errorf("status after Stop: %+v", got)
	}
	if eps := h.router.last("a"); len(eps) != 0 {
		t.Errorf("routing after Stop: %+v", eps)
	}
	if got := h.l.Status("b"); got.Ready != 1 {
		t.Errorf("Stop of a touched b: %+v", got)
	}
}

func TestRunCancelStopsAll(t *testing.T) {
	h := start(t, nil)
	apply(t, h.l, Deployment{Service: "a", Version: 1, BundleDir: bundle(t, map[string]any{}), Replicas: 2})
	apply(t, h.l, Deployment{Service: "b", Version: 3, BundleDir: bundle(t, map[string]any{}), Replicas: 1})
	pids := h.started()
	h.shutdown(t)
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d alive after Run returned", pid)
		}
	}
	for _, svc := range []string{"a", "b"} {
		if eps := h.router.last(svc); len(eps) != 0 {
			t.Errorf("%s still routed after shutdown: %+v", svc, eps)
		}
	}
	err := h.l.Apply(context.Background(), Deployment{Service: "a", Version: 1, BundleDir: "x", Replicas: 1})
	if !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after shutdown: %v, want ErrClosed", err)
	}
}

func TestApplyRejectsBadDeployment(t *testing.T) {
	l := NewLocal(Options{WorkerBinary: fakeWorker})
	for _, d := range []Deployment{
		{Version: 1, BundleDir: "x", Replicas: 1},
		{Service: "s", Version: 1, Replicas: 1},
		{Service: "s", Version: 1, BundleDir: "x", Replicas: -1},
	} {
		if err := l.Apply(context.Background(), d); err == nil {
			t.Errorf("Apply(%+v) succeeded", d)
		}
	}
}

func TestStartFailureIsReported(t *testing.T) {
	h := start(t, func(o *Options) { o.WorkerBinary = filepath.Join(t.TempDir(), "missing") })
	err := h.l.Apply(context.Background(), Deployment{Service: "s", Version: 1, BundleDir: t.TempDir(), Replicas: 1})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Apply with a missing worker binary: %v", err)
	}
}

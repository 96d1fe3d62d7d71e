package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/plugin"
	"github.com/openeas/openeas/internal/scheduler"
	"github.com/openeas/openeas/internal/store"
)

// fakeScheduler records what the manager asks of it. Apply fails for versions in failVersions.
type fakeScheduler struct {
	mu           sync.Mutex
	applied      []scheduler.Deployment
	stopped      []string
	ready        map[string]int
	failVersions map[int]bool
}

func newFakeScheduler() *fakeScheduler {
	return &fakeScheduler{ready: map[string]int{}, failVersions: map[int]bool{}}
}

func (f *fakeScheduler) Apply(ctx context.Context, d scheduler.Deployment) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, d)
	if f.failVersions[d.Version] {
		return errors.New("instance failed to load: boom")
	}
	f.ready[d.Service] = d.Replicas
	return nil
}

func (f *fakeScheduler) Stop(ctx context.Context, service string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = append(f.stopped, service)
	f.ready[service] = 0
	return nil
}

func (f *fakeScheduler) Status(service string) scheduler.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return scheduler.Status{Service: service, Ready: f.ready[service], Total: f.ready[service]}
}

func (f *fakeScheduler) applies() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.applied)
}

func (f *fakeScheduler) failVersion(v int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failVersions[v] = true
}

func (f *fakeScheduler) lastApply() scheduler.Deployment {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied[len(f.applied)-1]
}

type harness struct {
	t     *testing.T
	data  string
	st    *store.Store
	sched *fakeScheduler
	m     *Manager
	stop  func()
}

func newHarness(t *testing.T, data string) *harness {
	t.Helper()
	if data == "" {
		data = t.TempDir()
	}
	os.MkdirAll(filepath.Join(data, "tmp"), 0o755)
	st, err := store.Open(context.Background(), filepath.Join(data, "easd.db"))
	if err != nil {
		t.Fatal(err)
	}
	bs, err := bundle.OpenStore(data)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, data: data, st: st, sched: newFakeScheduler()}
	h.m = New(Options{DataDir: data, Store: st, Bundles: bs, Scheduler: h.sched, EndpointURL: "http://127.0.0.1:1", RuntimeVersion: "test"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.m.Run(ctx) }()
	h.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		st.Close()
	}
	t.Cleanup(func() {
		if h.stop != nil {
			h.stop()
		}
	})
	return h
}

func (h *harness) close() { h.stop(); h.stop = nil }

// wait follows the service's events until it settles and returns its description
// (nil once it is deleted).
func (h *harness) wait(name string) *api.Service {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.m.Follow(ctx, name, 0, func(api.Event) error { return nil }); err != nil {
		h.t.Fatalf("follow %s: %v", name, err)
	}
	s, err := h.m.Describe(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *harness) events(name string) string {
	evs, err := h.m.Events(context.Background(), name, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%s|", e.Message)
	}
	return b.String()
}

func writeModel(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLifecycle(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	model := writeModel(t, t.TempDir(), "m.onnx", "model v1")
	doc := fmt.Sprintf(`{"name":"svc","model_path":%q,"processor":"onnx_cpu","metadata":{"instance":2}}`, model)

	out, err := h.m.Create(ctx, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if out.AccessToken == "" || out.Status != api.StatusCreating {
		t.Fatalf("create answer: %+v", out)
	}
	s := h.wait("svc")
	if s.Status != api.StatusRunning || s.RunningInstance != 2 || !strings.HasPrefix(s.Image, "sha256:") || s.Processor != "onnx_cpu" {
		t.Fatalf("after create: %+v\n%s", s, h.events("svc"))
	}
	if d := h.sched.lastApply(); d.Version != 1 || d.Replicas != 2 || !strings.Contains(d.BundleDir, strings.TrimPrefix(s.Image, "sha256:")) {
		t.Fatalf("apply: %+v", d)
	}
	for _, want := range []string{"Service is now creating", "Downloading model", "Bundle sealed", "Service is running"} {
		if !strings.Contains(h.events("svc"), want) {
			t.Fatalf("events lack %q: %s", want, h.events("svc"))
		}
	}
	if _, err := h.m.Create(ctx, []byte(doc)); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}

	// Scaling alone keeps the version and the bundle.
	if _, err := h.m.Modify(ctx, "svc", []byte(`{"metadata":{"instance":3}}`)); err != nil {
		t.Fatal(err)
	}
	s2 := h.wait("svc")
	if s2.Version != 1 || s2.Image != s.Image || s2.RunningInstance != 3 {
		t.Fatalf("after scale: %+v\n%s", s2, h.events("svc"))
	}

	// A rate limit applies to the running version: no new version, no new bundle.
	if _, err := h.m.Modify(ctx, "svc", []byte(`{"metadata":{"rpc":{"rate_limit":50}}}`)); err != nil {
		t.Fatal(err)
	}
	if s := h.wait("svc"); s.Version != 1 || s.Image != s2.Image || !strings.Contains(h.events("svc"), "Applying metadata.rpc.rate_limit 50") {
		t.Fatalf("after rate_limit change: %+v\n%s", s, h.events("svc"))
	}

	// A new model that fails to start leaves version 1 serving, and says so.
	model2 := writeModel(t, t.TempDir(), "m.onnx", "model v2")
	h.sched.failVersion(2)
	if _, err := h.m.Modify(ctx, "svc", []byte(fmt.Sprintf(`{"model_path":%q}`, model2))); err != nil {
		t.Fatal(err)
	}
	s3 := h.wait("svc")
	if s3.Status != api.StatusRunning || s3.Version != 1 || s3.Image != s.Image || !strings.Contains(s3.Message, "version 1 keeps serving") {
		t.Fatalf("after failed update: %+v", s3)
	}

	// A good update moves to a new version and bundle.
	model3 := writeModel(t, t.TempDir(), "m.onnx", "model v3")
	if _, err := h.m.Modify(ctx, "svc", []byte(fmt.Sprintf(`{"model_path":%q}`, model3))); err != nil {
		t.Fatal(err)
	}
	s4 := h.wait("svc")
	if s4.Status != api.StatusRunning || s4.Version != 3 || s4.Image == s.Image || s4.Message != "" {
		t.Fatalf("after update: %+v", s4)
	}

	if _, err := h.m.Stop(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	if s := h.wait("svc"); s.Status != api.StatusStopped || s.RunningInstance != 0 {
		t.Fatalf("after stop: %+v", s)
	}
	if _, err := h.m.Start(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	if s := h.wait("svc"); s.Status != api.StatusRunning || s.Image != s4.Image {
		t.Fatalf("after start: %+v", s)
	}
	if _, err := h.m.Start(ctx, "svc"); !errors.Is(err, ErrConflict) {
		t.Fatalf("start while running: %v, want ErrConflict", err)
	}

	if _, err := h.m.Delete(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	h.wait("svc")
	if _, err := h.m.Describe(ctx, "svc"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v, want ErrNotFound", err)
	}
}

func TestResumeRunningWithoutRefetch(t *testing.T) {
	data := t.TempDir()
	modelDir := t.TempDir()
	model := writeModel(t, modelDir, "m.onnx", "model")
	h := newHarness(t, data)
	doc := fmt.Sprintf(`{"name":"svc","model_path":%q,"processor":"onnxruntime_cpu"}`, model)
	if _, err := h.m.Create(context.Background(), []byte(doc)); err != nil {
		t.Fatal(err)
	}
	before := h.wait("svc")
	h.close()

	// The model is gone: a restart must not need it.
	os.Remove(model)
	h2 := newHarness(t, data)
	waitFor(t, func() bool { return h2.sched.applies() > 0 })
	after, err := h2.m.Describe(context.Background(), "svc")
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != api.StatusRunning || after.AccessToken != before.AccessToken || after.Image != before.Image {
		t.Fatalf("after restart: %+v, before %+v", after, before)
	}
	if d := h2.sched.lastApply(); d.Version != 1 || d.Replicas != 1 {
		t.Fatalf("restart applied %+v", d)
	}
}

func TestBadCreate(t *testing.T) {
	h := newHarness(t, "")
	cases := []struct{ doc, says string }{
		{`{"name":"a"}`, "model_path: required"},
		{`{"name":"a","model_path":"/m.onnx","processor":"onnx","metadata":{"instance":0}}`, "metadata.instance"},
	}
	for _, c := range cases {
		_, err := h.m.Create(context.Background(), []byte(c.doc))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want ErrInvalid mentioning %q", c.doc, err, c.says)
		}
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUnusedBundlesRemoved(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	model := writeModel(t, t.TempDir(), "m.onnx", "model v1")
	// bundlesAre waits until DATA/bundles holds exactly the bundles of these digests.
	bundlesAre := func(step string, digests ...string) {
		t.Helper()
		want := make([]string, len(digests))
		for i, d := range digests {
			want[i] = strings.TrimPrefix(d, "sha256:")
		}
		slices.Sort(want)
		var got []string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			ents, _ := os.ReadDir(filepath.Join(h.data, bundle.BundlesDir))
			got = got[:0]
			for _, e := range ents {
				got = append(got, e.Name())
			}
			if slices.Equal(got, want) {
				return
			}
		}
		t.Fatalf("%s: bundles %v, want %v", step, got, want)
	}
	create := func(name, model string) *api.Service {
		doc := fmt.Sprintf(`{"name":%q,"model_path":%q,"processor":"onnx_cpu"}`, name, model)
		if _, err := h.m.Create(ctx, []byte(doc)); err != nil {
			t.Fatal(err)
		}
		return h.wait(name)
	}
	modify := func(name, model string) *api.Service {
		if _, err := h.m.Modify(ctx, name, []byte(fmt.Sprintf(`{"model_path":%q}`, model))); err != nil {
			t.Fatal(err)
		}
		return h.wait(name)
	}
	del := func(name string) {
		if _, err := h.m.Delete(ctx, name); err != nil {
			t.Fatal(err)
		}
		h.wait(name)
	}

	a, b := create("a", model), create("b", model)
	if a.Image != b.Image {
		t.Fatalf("the same model and settings sealed two bundles: %s, %s", a.Image, b.Image)
	}
	bundlesAre("two services on one bundle", a.Image)
	waitFor(t, func() bool {
		ents, err := os.ReadDir(filepath.Join(h.data, bundle.ModelsDir))
		return err == nil && len(ents) == 0
	}) // fetched model trees go once their builds are done

	h.sched.failVersion(2)
	if s := modify("a", writeModel(t, t.TempDir(), "m.onnx", "model v2")); s.Image != a.Image {
		t.Fatalf("failed update: %+v", s)
	}
	bundlesAre("the failed update's bundle goes", a.Image)

	a3 := modify("a", writeModel(t, t.TempDir(), "m.onnx", "model v3"))
	bundlesAre("a superseded bundle that b still serves stays", a.Image, a3.Image)

	del("b")
	bundlesAre("b deleted: its bundle goes, a's stays", a3.Image)

	// Going back to the first model seals its bundle again (from the cached fetch).
	if s := modify("a", model); s.Status != api.StatusRunning || s.Image != a.Image {
		t.Fatalf("back to model v1: %+v\n%s", s, h.events("a"))
	}
	bundlesAre("back to model v1", a.Image)

	del("a")
	bundlesAre("everything deleted")
}

func TestPluginCacheBound(t *testing.T) {
	for _, tt := range []struct {
		name    string
		max     int64
		results []int // plugin results in DATA/plugins after deploying model 1, model 2, model 1 again
		runs    int   // plugin runs in all
	}{
		{"unbounded: model 1 again reuses its result", 0, []int{1, 2, 2}, 2},
		{"room for one: model 2's result evicts model 1's", 1500, []int{1, 1, 1}, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "")
			h.m.opts.PluginCacheMaxBytes = tt.max
			var runs atomic.Int32
			h.m.opts.RunPlugin = func(ctx context.Context, service, key string, ps plugin.Spec, o plugin.RunOptions) (plugin.Result, error) {
				runs.Add(1)
				return plugin.Result{}, os.WriteFile(filepath.Join(o.OutputDir, "m.bin"), []byte(strings.Repeat("o", 1000)), 0o644)
			}
			models := []string{writeModel(t, t.TempDir(), "m.bin", "model 1"), writeModel(t, t.TempDir(), "m.bin", "model 2")}
			for i, model := range []string{models[0], models[1], models[0]} {
				name := fmt.Sprintf("s%d", i)
				doc := fmt.Sprintf(`{"name":%q,"model_path":%q,"model_entry":"m.bin","processor":"onnx_cpu",
					"plugins":[{"image":"registry/eas/pai-blade-deploy:cpu_latest","command":"blade --mode eas_plugin --optimize_for cpu"}]}`, name, model)
				if _, err := h.m.Create(context.Background(), []byte(doc)); err != nil {
					t.Fatal(err)
				}
				if s := h.wait(name); s.Status != api.StatusRunning {
					t.Fatalf("%s: %s", name, h.events(name))
				}
				// The cache is trimmed after the operation: wait for it before the next deploy.
				waitFor(t, func() bool {
					ents, err := os.ReadDir(filepath.Join(h.data, bundle.PluginsDir))
					return err == nil && len(ents) == tt.results[i]
				})
			}
			if n := int(runs.Load()); n != tt.runs {
				t.Errorf("plugin ran %d times, want %d", n, tt.runs)
			}
		})
	}
}

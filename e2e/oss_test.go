package e2e

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/objstore/miniotest"
)

var modelDigestRE = regexp.MustCompile(`Model fetched: .* digest (sha256:[0-9a-f]+)`)

// A service whose model_path is on object storage deploys and predicts exactly like one with
// a local path; the same object is never downloaded twice; bad paths and bad credentials fail
// their own service only, with a clear message; the secret key appears nowhere.
func TestDeployFromObjectStorage(t *testing.T) {
	e := requireEnv(t)
	srv := miniotest.Start(t)
	proxy := srv.Proxy(t) // counts the GETs easd makes
	t.Setenv("EAS_OSS_ENDPOINT", proxy.URL)
	t.Setenv("OSS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("OSS_ACCESS_KEY_SECRET", srv.SecretKey)
	t.Setenv("EAS_OSS_BUCKET", "models")
	d := startEasd(t, e, "")
	local := filepath.Join(e.repo, clsModel)
	ref := openModel(t, e, local)

	// eascmd upload creates the bucket and prints the path to deploy from.
	// The object keeps the file's name, so the fetched tree (and its digest) is the local one.
	const objPath = "oss://models/ocr/ch_ppocr_mobile_v2.0_cls_infer.onnx"
	out, err := d.eascmd("upload", local, "--key", "ocr/")
	if err != nil || !strings.Contains(out, "[OK] oss target path: ["+objPath+"]") {
		t.Fatalf("eascmd upload: %v\n%s", err, out)
	}
	deploy := func(name, modelPath string) {
		t.Helper()
		f := writeJSON(t, filepath.Join(t.TempDir(), name+".json"), map[string]any{
			"name": name, "model_path": modelPath, "processor": "onnxruntime_cpu", "metadata": map[string]any{"instance": 1},
		})
		if out, err := d.eascmd("create", f); err != nil && !strings.Contains(out, "[FAILED]") {
			t.Fatalf("eascmd create %s: %v\n%s", name, err, out)
		}
	}

	deploy("cls_local", local)
	deploy("cls_oss", objPath)
	d.waitStatus("cls_local", api.StatusRunning, 2*time.Minute)
	svc := d.waitStatus("cls_oss", api.StatusRunning, 2*time.Minute)
	digestOf := func(name string) string {
		m := modelDigestRE.FindStringSubmatch(d.eventText(name))
		if m == nil {
			t.Fatalf("no 'Model fetched' event for %s:\n%s", name, d.eventText(name))
		}
		return m[1]
	}
	if a, b := digestOf("cls_local"), digestOf("cls_oss"); a != b {
		t.Errorf("model digest from oss:// %s, from the local path %s: want the same model", b, a)
	}
	x := clsInput(1)
	want := ref.reference(t, x)
	for _, name := range []string{"cls_local", "cls_oss"} {
		s, err := d.client.Describe(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		code, body, err := predictJSON(d, name, s.AccessToken, ref.in, x)
		if err != nil || code != 200 {
			t.Fatalf("predict %s: %d %s %v", name, code, body, err)
		}
		assertClose(t, "predict "+name, jsonOutput(t, body, ref.out), want, 1e-5)
	}
	gets := proxy.Counts().Get
	if gets == 0 {
		t.Fatal("no object GET went through the counting proxy")
	}

	// A second service on the same object: served from the object cache, no GET.
	deploy("cls_oss_2", objPath)
	d.waitStatus("cls_oss_2", api.StatusRunning, 2*time.Minute)
	if c := proxy.Counts(); c.Get != gets {
		t.Errorf("second service on the same object made %d object GETs, want 0", c.Get-gets)
	}
	if ev := d.eventText("cls_oss_2"); !strings.Contains(ev, "from the object cache: nothing downloaded") {
		t.Errorf("events do not say the model came from the cache:\n%s", ev)
	}

	// A missing key fails that service with a clear message; the others keep serving.
	deploy("cls_missing", "oss://models/ocr/nope.onnx")
	bad := d.waitStatus("cls_missing", api.StatusFailed, time.Minute)
	if !strings.Contains(bad.Message, "oss://models/ocr/nope.onnx") || !strings.Contains(bad.Message, "no such object") {
		t.Errorf("missing key: message %q", bad.Message)
	}
	if code, _, _ := predictJSON(d, "cls_oss", svc.AccessToken, ref.in, x); code != 200 {
		t.Errorf("cls-oss after another service failed: status %d", code)
	}

	// The secret is nowhere: easd's log, events, desc output.
	for _, name := range []string{"cls_oss", "cls_oss_2", "cls_missing"} {
		desc, _ := d.eascmd("desc", name)
		for what, text := range map[string]string{"events": d.eventText(name), "desc": desc} {
			if strings.Contains(text, srv.SecretKey) {
				t.Errorf("%s of %s shows the secret key", what, name)
			}
		}
	}
	if strings.Contains(d.log.String(), srv.SecretKey) {
		t.Error("the easd log shows the secret key")
	}

	// Wrong credentials: a second easd whose secret is wrong fails the service, saying why.
	wrong := "wrong-" + srv.SecretKey
	t.Setenv("OSS_ACCESS_KEY_SECRET", wrong)
	d2 := startEasd(t, e, "")
	f := writeJSON(t, filepath.Join(t.TempDir(), "denied.json"), map[string]any{
		"name": "cls_denied", "model_path": objPath, "processor": "onnxruntime_cpu",
		"oss_endpoint": srv.Endpoint(), // the service's endpoint wins over easd's
	})
	_, _ = d2.eascmd("create", f)
	denied := d2.waitStatus("cls_denied", api.StatusFailed, time.Minute)
	if !strings.Contains(denied.Message, "access denied") {
		t.Errorf("wrong secret: message %q", denied.Message)
	}
	desc, _ := d2.eascmd("desc", "cls_denied")
	for _, text := range []string{d2.log.String(), d2.eventText("cls_denied"), desc} {
		if strings.Contains(text, srv.SecretKey) {
			t.Error("the secret shows in the log, events or desc of the second easd")
		}
	}
}

// Two easd processes with --bundle-store oss://…: a plugin result made by one is reused by the
// other, and a bundle missing from a data directory is fetched by digest before the worker
// starts.
func TestSharedBundleStore(t *testing.T) {
	e := requireEnv(t)
	plugin := buildTestPlugin(t, e)
	srv := miniotest.Start(t)
	t.Setenv("EAS_OSS_ENDPOINT", srv.Endpoint())
	t.Setenv("OSS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("OSS_ACCESS_KEY_SECRET", srv.SecretKey)
	t.Setenv("EASD_BUNDLE_STORE", "oss://openeas-shared/cluster-1/")
	svcFile := writeJSON(t, filepath.Join(t.TempDir(), "service.json"), map[string]any{
		"name": "cls", "model_path": filepath.Join(e.repo, clsModel), "processor": "onnxruntime_cpu",
		"metadata": map[string]any{"instance": 1},
		"plugins":  []any{map[string]any{"command": "scale-plugin --mode eas_plugin", "image": "local://" + plugin}},
	})

	a := startEasd(t, e, "")
	if out, err := a.eascmd("create", svcFile); err != nil {
		t.Fatalf("create on the first easd: %v\n%s", err, out)
	}
	image := a.waitStatus("cls", api.StatusRunning, 2*time.Minute).Image
	if ev := a.eventText("cls"); strings.Contains(ev, "result cached") {
		t.Fatalf("the first easd found a cached plugin result in an empty store:\n%s", ev)
	}

	bDir := t.TempDir()
	b := startEasd(t, e, bDir)
	if out, err := b.eascmd("create", svcFile); err != nil {
		t.Fatalf("create on the second easd: %v\n%s", err, out)
	}
	svc := b.waitStatus("cls", api.StatusRunning, 2*time.Minute)
	if ev := b.eventText("cls"); !strings.Contains(ev, "result cached for this model and config: not run again") {
		t.Errorf("the second easd ran the plugin again instead of using the shared result:\n%s", ev)
	}
	if svc.Image != image {
		t.Errorf("bundle %s on the second easd, %s on the first", svc.Image, image)
	}

	// Lose the bundle from the second data directory: after a restart it comes back from the
	// shared store, verified, and the service serves again.
	b.stop()
	if err := modelsource.RemoveAll(filepath.Join(bDir, "bundles")); err != nil {
		t.Fatal(err)
	}
	b = startEasd(t, e, bDir)
	svc = b.waitStatus("cls", api.StatusRunning, 2*time.Minute)
	if !strings.Contains(b.log.String(), "entry fetched from the shared store") {
		t.Errorf("easd log does not show the bundle fetched from the shared store:\n%s", tail(b.log.String(), 30))
	}
	ref := openModel(t, e, filepath.Join(e.repo, clsModel))
	if code, body, err := predictJSON(b, "cls", svc.AccessToken, ref.in, clsInput(2)); err != nil || code != 200 {
		t.Fatalf("predict after the bundle came back: %d %s %v", code, body, err)
	}
}

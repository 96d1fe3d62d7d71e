package main

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/bundle"
	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/objstore"
	"github.com/openeas/openeas/internal/objstore/miniotest"
)

var (
	workerOnce sync.Once
	workerExe  string
	workerErr  error
	workerOut  []byte
)

// workerBinary builds the real eas-worker once for the tests that run it as the pods do.
func workerBinary(t *testing.T) string {
	t.Helper()
	workerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "eas-worker-test-")
		if err != nil {
			workerErr = err
			return
		}
		workerExe = filepath.Join(dir, "eas-worker")
		workerOut, workerErr = exec.Command("go", "build", "-o", workerExe, ".").CombinedOutput()
	})
	if workerErr != nil {
		t.Fatalf("build: %v\n%s", workerErr, workerOut)
	}
	return workerExe
}

// sharedCase is one kind of shared store and the environment a pod would get for it from
// easd's object-store Secret.
type sharedCase struct {
	name string
	env  map[string]string
	// tamper replaces the stored copy of the bundle at digest with tree's content.
	tamper func(t *testing.T, digest, tree string)
}

func sharedCases(t *testing.T) []sharedCase {
	dirRoot := filepath.Join(t.TempDir(), "shared")
	t.Cleanup(func() { modelsource.RemoveAll(dirRoot) })
	cases := []sharedCase{{
		name: "directory",
		env:  map[string]string{envBundleStore: dirRoot},
		tamper: func(t *testing.T, digest, tree string) {
			dst := filepath.Join(dirRoot, "bundles", strings.TrimPrefix(digest, "sha256:"))
			if err := modelsource.RemoveAll(dst); err != nil {
				t.Fatal(err)
			}
			if err := modelsource.CopyTree(context.Background(), tree, dst); err != nil {
				t.Fatal(err)
			}
		},
	}}
	srv := miniotest.Start(t)
	cl := srv.Client(t)
	// The object store's own tree-digest check is skipped when an object has none, so this
	// copy, uploaded without it, reaches fetch-bundle's check of the bundle digest.
	tamperObject := func(bucket, prefix string) func(t *testing.T, digest, tree string) {
		return func(t *testing.T, digest, tree string) {
			key := prefix + "bundles/" + strings.TrimPrefix(digest, "sha256:") + ".tar"
			if err := cl.PutStream(context.Background(), bucket, key, bytes.NewReader(tarOf(t, tree)), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases = append(cases,
		sharedCase{
			name: "s3",
			env: map[string]string{
				envBundleStore: "s3://openeas-shared/cluster-a", "AWS_ENDPOINT_URL": srv.Endpoint(),
				"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey,
			},
			tamper: tamperObject("openeas-shared", "cluster-a/"),
		},
		sharedCase{
			name: "oss",
			env: map[string]string{
				envBundleStore: "oss://openeas-oss", "EAS_OSS_ENDPOINT": srv.Endpoint(),
				"OSS_ACCESS_KEY_ID": srv.AccessKey, "OSS_ACCESS_KEY_SECRET": srv.SecretKey,
			},
			tamper: tamperObject("openeas-oss", ""),
		},
	)
	return cases
}

func tarOf(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// openLikeEasd opens the store as easd does for the same environment.
func openLikeEasd(t *testing.T, env map[string]string) *bundle.Shared {
	t.Helper()
	oss, s3 := objstore.ConfigFromEnv(func(k string) string { return env[k] })
	sh, err := bundle.OpenShared(context.Background(), env[envBundleStore], oss, s3, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

// runWorker runs the real binary with exactly env (nothing inherited but PATH and HOME).
func runWorker(t *testing.T, env map[string]string, args ...string) (stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, workerBinary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), 0
}

// files maps every regular file under dir (slash paths) to its content.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func write(t *testing.T, p, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func TestFetchBundle(t *testing.T) {
	for _, c := range sharedCases(t) {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			// easd's side: seal a bundle into its data directory with the shared store behind it.
			shared := openLikeEasd(t, c.env)
			data := filepath.Join(t.TempDir(), "data")
			t.Cleanup(func() { modelsource.RemoveAll(data) })
			st, err := bundle.OpenStoreWith(data, bundle.StoreOptions{Shared: shared.Bundles})
			if err != nil {
				t.Fatal(err)
			}
			model := t.TempDir()
			write(t, filepath.Join(model, "m.onnx"), "weights of "+c.name, 0o644)
			write(t, filepath.Join(model, "sub", "vocab.txt"), "a b c", 0o644)
			digest, err := st.Seal(ctx, model, bundle.Manifest{
				Processor: "onnxruntime_cpu", ModelEntry: "m.onnx",
				ModelDigest: "sha256:" + strings.Repeat("ab", 32), ModelPath: "/models/m.onnx",
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			sealed, err := st.Path(digest)
			if err != nil {
				t.Fatal(err)
			}

			// The pod's init container: an empty emptyDir mount.
			dir := t.TempDir()
			if out, code := runWorker(t, c.env, "fetch-bundle", "--digest", digest, "--dir", dir); code != 0 {
				t.Fatalf("fetch-bundle: exit %d\n%s", code, out)
			}
			if want, got := mustTreeDigest(t, sealed), mustTreeDigest(t, dir); got != want {
				t.Errorf("fetched tree digest %s, want the sealed bundle's %s", got, want)
			}
			if got := files(t, dir)["model/sub/vocab.txt"]; got != "a b c" {
				t.Errorf("model/sub/vocab.txt = %q", got)
			}
			// A restarted init container finds the bundle there and succeeds.
			if out, code := runWorker(t, c.env, "fetch-bundle", "--digest", digest, "--dir", dir); code != 0 {
				t.Errorf("second fetch into the same dir: exit %d\n%s", code, out)
			}

			missing := "sha256:" + strings.Repeat("0", 64)
			out, code := runWorker(t, c.env, "fetch-bundle", "--digest", missing, "--dir", t.TempDir())
			if code != 1 || !strings.Contains(out, missing) || !strings.Contains(out, "is not in the shared store") {
				t.Errorf("missing bundle: exit %d, want 1 and a message naming %s\n%s", code, missing, out)
			}

			// Someone changes the stored copy: the pod refuses it and leaves its dir empty.
			bad := t.TempDir()
			if err := modelsource.CopyTree(ctx, sealed, bad); err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(bad, "model", "m.onnx"), "tampered weights", 0o644)
			c.tamper(t, digest, bad)
			dir2 := t.TempDir()
			out, code = runWorker(t, c.env, "fetch-bundle", "--digest", digest, "--dir", dir2)
			if code != 1 || !strings.Contains(out, "bundle is corrupt") || !strings.Contains(out, "hashes to") {
				t.Errorf("tampered bundle: exit %d, want 1 and a corrupt-bundle message\n%s", code, out)
			}
			if left := files(t, dir2); len(left) != 0 {
				t.Errorf("a refused bundle left files behind: %v", left)
			}
		})
	}
}

func mustTreeDigest(t *testing.T, dir string) string {
	t.Helper()
	d, err := modelsource.TreeDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A plugin Job's containers and easd move trees through the same place.
func TestObjstoreRoundTrip(t *testing.T) {
	for _, c := range sharedCases(t) {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			shared := openLikeEasd(t, c.env)
			in := t.TempDir()
			write(t, filepath.Join(in, "m.onnx"), "model", 0o644)
			write(t, filepath.Join(in, "deep", "er", "x.bin"), "\x00\x01binary", 0o644)
			if err := shared.Jobs.PutTree(ctx, "plugins/k1/input/", in); err != nil {
				t.Fatal(err)
			}

			// fetch-input: easd's upload, read by the pod.
			got1, got2 := t.TempDir(), filepath.Join(t.TempDir(), "made")
			if out, code := runWorker(t, c.env, "objstore", "get", "plugins/k1/input/", got1, "plugins/k1/config/", got2); code != 0 {
				t.Fatalf("objstore get: exit %d\n%s", code, out)
			}
			want := files(t, in)
			if got := files(t, got1); !maps.Equal(got, want) {
				t.Errorf("get input = %v, want %v", got, want)
			}
			if got := files(t, got2); len(got) != 0 {
				t.Errorf("get of an empty prefix = %v, want an empty dir", got)
			}

			// upload-output: the pod's upload, read by easd.
			outDir, repDir := t.TempDir(), t.TempDir()
			write(t, filepath.Join(outDir, "opt", "m.onnx"), "optimized", 0o644)
			write(t, filepath.Join(repDir, "report.json"), `{"speedup":2}`, 0o644)
			if out, code := runWorker(t, c.env, "objstore", "put", outDir, "plugins/k1/output/", repDir, "plugins/k1/report/"); code != 0 {
				t.Fatalf("objstore put: exit %d\n%s", code, out)
			}
			back := t.TempDir()
			if err := shared.Jobs.GetTree(ctx, "plugins/k1/output/", back); err != nil {
				t.Fatal(err)
			}
			if got, want := files(t, back), files(t, outDir); !maps.Equal(got, want) {
				t.Errorf("easd reads output %v, want %v", got, want)
			}
			rep := t.TempDir()
			if out, code := runWorker(t, c.env, "objstore", "get", "plugins/k1/report/", rep); code != 0 {
				t.Fatalf("objstore get report: exit %d\n%s", code, out)
			}
			if got := files(t, rep)["report.json"]; got != `{"speedup":2}` {
				t.Errorf("report.json = %q", got)
			}

			out, code := runWorker(t, c.env, "objstore", "get", "../../etc/", t.TempDir())
			if code != 1 || !strings.Contains(out, `tree prefix "../../etc/"`) {
				t.Errorf("escaping prefix: exit %d, want 1 and a message naming it\n%s", code, out)
			}
		})
	}
}

// Bad invocations are refused with a message saying what is wrong, before any I/O.
func TestStoreCommandUsage(t *testing.T) {
	ok := map[string]string{envBundleStore: t.TempDir()}
	digest := "sha256:" + strings.Repeat("1", 64)
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no store", nil, []string{"fetch-bundle", "--digest", digest, "--dir", t.TempDir()}, 1, "set $EASD_BUNDLE_STORE"},
		{"local store", map[string]string{envBundleStore: "local"}, []string{"objstore", "get", "p/", t.TempDir()}, 1, "no shared store"},
		{"bad scheme", map[string]string{envBundleStore: "ftp://x/y"}, []string{"fetch-bundle", "--digest", digest, "--dir", t.TempDir()}, 1, `bundle store "ftp://x/y"`},
		{"no digest", ok, []string{"fetch-bundle", "--dir", t.TempDir()}, 2, "--digest and --dir are required"},
		{"bad digest", ok, []string{"fetch-bundle", "--digest", "sha256:beef", "--dir", t.TempDir()}, 1, `digest "sha256:beef": want sha256:<64 hex digits>`},
		{"odd pairs", ok, []string{"objstore", "get", "p/"}, 2, "want get PREFIX DIR"},
		{"unknown op", ok, []string{"objstore", "copy", "a", "b"}, 2, "want get PREFIX DIR"},
		{"missing source", ok, []string{"objstore", "put", "/nonexistent/dir", "p/"}, 1, "/nonexistent/dir"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			var code int
			getenv := func(k string) string { return c.env[k] }
			if c.args[0] == "fetch-bundle" {
				code = runFetchBundle(context.Background(), c.args[1:], getenv, &stderr)
			} else {
				code = runObjstore(context.Background(), c.args[1:], getenv, &stderr)
			}
			if code != c.code || !strings.Contains(stderr.String(), c.want) {
				t.Errorf("exit %d, want %d with %q in:\n%s", code, c.code, c.want, stderr.String())
			}
		})
	}
}

// A directory that holds something else is never overwritten.
func TestFetchBundleRefusesForeignDir(t *testing.T) {
	env := map[string]string{envBundleStore: t.TempDir()}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "mine.txt"), "keep me", 0o644)
	var stderr bytes.Buffer
	code := runFetchBundle(context.Background(), []string{"--digest", "sha256:" + strings.Repeat("2", 64), "--dir", dir},
		func(k string) string { return env[k] }, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "is not empty and does not hold bundle") {
		t.Errorf("exit %d\n%s", code, stderr.String())
	}
	if got := files(t, dir); got["mine.txt"] != "keep me" || len(got) != 1 {
		t.Errorf("dir now holds %v", got)
	}
}

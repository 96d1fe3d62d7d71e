package bundle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/processor"
)

func put(t *testing.T, p string, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func modelDir(t *testing.T, weights string) string {
	t.Helper()
	dir := t.TempDir()
	put(t, filepath.Join(dir, "m.onnx"), weights, 0o644)
	put(t, filepath.Join(dir, "sub", "vocab.txt"), "a b c", 0o644)
	return dir
}

func manifest() Manifest {
	return Manifest{
		Processor:   "onnxruntime_cpu",
		ModelEntry:  "m.onnx",
		Runtime:     processor.Runtime{IntraOpThreads: 2},
		ModelDigest: "sha256:" + strings.Repeat("ab", 32),
		ModelPath:   "/models/m.onnx",
		Plugins: []PluginRun{{
			ID: "eas-plugin-12345678", Image: "local:///bin/p", Command: "p", Key: "sha256:" + strings.Repeat("cd", 32),
			Report: "reports/plugin-0.json", Duration: 3 * time.Second,
		}},
		Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

var reports = map[string][]byte{"plugin-0.json": []byte(`{"speedup": 2}`)}

func openStore(t *testing.T) *Store {
	t.Helper()
	root := filepath.Join(t.TempDir(), "data")
	s, err := OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	// Sealed entries are read-only; t.TempDir's own cleanup could not remove them as non-root.
	t.Cleanup(func() { modelsource.RemoveAll(root) })
	return s
}

func TestSealOpenVerify(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	src := modelDir(t, "weights-1")
	digest, err := s.Seal(ctx, src, manifest(), reports)
	if err != nil {
		t.Fatal(err)
	}
	m, dir, err := s.Open(digest)
	if err != nil {
		t.Fatal(err)
	}
	want := manifest()
	want.Schema = 1
	if !reflect.DeepEqual(*m, want) {
		t.Errorf("manifest = %+v\nwant %+v", *m, want)
	}
	for p, body := range map[string]string{"model/m.onnx": "weights-1", "model/sub/vocab.txt": "a b c", "reports/plugin-0.json": `{"speedup": 2}`} {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil || string(b) != body {
			t.Errorf("%s = %q, %v; want %q", p, b, err, body)
		}
	}
	if hexPart, _ := modelsource.ParseDigest(digest); dir != filepath.Join(s.root, "bundles", hexPart) {
		t.Errorf("bundle dir %s is not bundles/<hex>", dir)
	}
	if err := s.Verify(digest); err != nil {
		t.Fatal(err)
	}
	// Sealed files are read-only.
	for _, p := range []string{ManifestFile, "model/m.onnx", "reports/plugin-0.json"} {
		info, err := os.Stat(filepath.Join(dir, p))
		if err != nil || info.Mode().Perm()&0o222 != 0 {
			t.Errorf("%s mode %v, %v: want read-only", p, info.Mode(), err)
		}
	}
	// The source changing afterwards does not change the bundle.
	put(t, filepath.Join(src, "m.onnx"), "weights-2", 0o644)
	if err := s.Verify(digest); err != nil {
		t.Errorf("bundle changed with its source: %v", err)
	}
	if ents, _ := os.ReadDir(s.TmpDir()); len(ents) != 0 {
		t.Errorf("seal left %d entries in tmp", len(ents))
	}
}

func TestSealIsContentAddressed(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	d1, err := s.Seal(ctx, modelDir(t, "w"), manifest(), reports)
	if err != nil {
		t.Fatal(err)
	}
	// Same content, different provenance (a later deploy, plugins from the cache): same bundle.
	again := manifest()
	again.Created = again.Created.Add(time.Hour)
	again.Plugins[0].Cached = true
	again.Plugins[0].Duration = time.Millisecond
	d2, err := s.Seal(ctx, modelDir(t, "w"), again, reports)
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Fatalf("identical content sealed twice: %s vs %s", d1, d2)
	}
	m, _, _ := s.Open(d1)
	if !m.Created.Equal(manifest().Created) || m.Plugins[0].Cached {
		t.Errorf("existing bundle was overwritten: %+v", m)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.root, "bundles")); len(ents) != 1 {
		t.Errorf("%d bundle dirs, want 1", len(ents))
	}

	changes := map[string]func(m *Manifest) (string, map[string][]byte){
		"model byte": func(m *Manifest) (string, map[string][]byte) { return modelDir(t, "W"), reports },
		"runtime": func(m *Manifest) (string, map[string][]byte) {
			m.Runtime.IntraOpThreads = 4
			return modelDir(t, "w"), reports
		},
		"processor": func(m *Manifest) (string, map[string][]byte) {
			m.Processor = "onnxruntime_gpu"
			return modelDir(t, "w"), reports
		},
		"report": func(m *Manifest) (string, map[string][]byte) {
			return modelDir(t, "w"), map[string][]byte{"plugin-0.json": []byte(`{"speedup": 3}`)}
		},
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			m := manifest()
			dir, reps := change(&m)
			d, err := s.Seal(ctx, dir, m, reps)
			if err != nil {
				t.Fatal(err)
			}
			if d == d1 {
				t.Error("different content got the same digest")
			}
		})
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	tamper := map[string]func(t *testing.T, dir string){
		"model byte": func(t *testing.T, dir string) { writeForce(t, filepath.Join(dir, "model", "m.onnx"), "weightz") },
		"added file": func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, "model"), 0o755)
			put(t, filepath.Join(dir, "model", "evil.so"), "x", 0o644)
		},
		"removed report": func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, "reports"), 0o755)
			os.Remove(filepath.Join(dir, "reports", "plugin-0.json"))
		},
		"manifest processor": func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
			writeForce(t, filepath.Join(dir, ManifestFile), strings.Replace(string(b), "onnxruntime_cpu", "onnxruntime_gpu", 1))
		},
		"exec bit": func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, "model", "m.onnx"), 0o555) },
	}
	for name, f := range tamper {
		t.Run(name, func(t *testing.T) {
			s := openStore(t)
			d, err := s.Seal(context.Background(), modelDir(t, "weights"), manifest(), reports)
			if err != nil {
				t.Fatal(err)
			}
			dir, _ := s.Path(d)
			os.Chmod(dir, 0o755)
			f(t, dir)
			if err := s.Verify(d); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Verify = %v, want ErrCorrupt", err)
			}
		})
	}
}

func writeForce(t *testing.T, p, data string) {
	t.Helper()
	os.Chmod(p, 0o644)
	put(t, p, data, 0o644)
}

func TestSealErrors(t *testing.T) {
	s := openStore(t)
	tests := []struct {
		name    string
		edit    func(m *Manifest)
		reports map[string][]byte
		want    string
	}{
		{"missing entry", func(m *Manifest) { m.ModelEntry = "other.onnx" }, reports, `model_entry "other.onnx": no such file`},
		{"escaping entry", func(m *Manifest) { m.ModelEntry = "../m.onnx" }, reports, `model_entry "../m.onnx": want a slash-separated path inside the model`},
		{"no processor", func(m *Manifest) { m.Processor = "" }, reports, "processor is empty"},
		{"schema", func(m *Manifest) { m.Schema = 2 }, reports, "schema 2"},
		{"bad report json", nil, map[string][]byte{"plugin-0.json": []byte("{oops")}, "report plugin-0.json is not valid JSON"},
		{"bad report name", nil, map[string][]byte{"../x.json": []byte("{}"), "plugin-0.json": []byte("{}")}, `report name "../x.json"`},
		{"dangling plugin report", nil, nil, `plugins[0].report "reports/plugin-0.json"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := manifest()
			if tc.edit != nil {
				tc.edit(&m)
			}
			_, err := s.Seal(context.Background(), modelDir(t, "w"), m, tc.reports)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("symlink in model", func(t *testing.T) {
		dir := modelDir(t, "w")
		os.Symlink("/etc/passwd", filepath.Join(dir, "leak"))
		_, err := s.Seal(context.Background(), dir, manifest(), reports)
		if err == nil || !strings.Contains(err.Error(), "leak: symbolic links are not allowed") {
			t.Fatalf("err = %v", err)
		}
	})
	if ents, _ := os.ReadDir(s.TmpDir()); len(ents) != 0 {
		t.Errorf("failed seals left %d entries in tmp", len(ents))
	}
	for _, d := range []string{"nope", "sha256:" + strings.Repeat("0", 64)} {
		if _, _, err := s.Open(d); err == nil {
			t.Errorf("Open(%q) succeeded", d)
		}
	}
	if _, err := s.Path("sha256:" + strings.Repeat("0", 64)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Path of a missing bundle: %v, want ErrNotFound", err)
	}
}

func TestRemove(t *testing.T) {
	s := openStore(t)
	d, err := s.Seal(context.Background(), modelDir(t, "w"), manifest(), reports)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Path(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("bundle still there: %v", err)
	}
	if err := s.Remove(d); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

func TestPrune(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	keep, err := s.Seal(ctx, modelDir(t, "kept"), manifest(), reports)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := s.Seal(ctx, modelDir(t, "unused weights"), manifest(), reports)
	if err != nil {
		t.Fatal(err)
	}
	put(t, filepath.Join(s.root, BundlesDir, "not-a-digest", "f"), "x", 0o644) // not the store's: left alone
	n, freed, err := s.Prune(map[string]bool{keep: true})
	if err != nil || n != 1 || freed <= int64(len("unused weights")) {
		t.Fatalf("Prune: %d removed, %d bytes, %v; want 1 and the bundle's size", n, freed, err)
	}
	if _, err := s.Path(gone); !errors.Is(err, ErrNotFound) {
		t.Errorf("unused bundle still there: %v", err)
	}
	if err := s.Verify(keep); err != nil {
		t.Errorf("kept bundle: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.root, BundlesDir, "not-a-digest", "f")); err != nil {
		t.Errorf("foreign entry: %v", err)
	}
}

func TestPluginCache(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	key := "sha256:" + strings.Repeat("1f", 32)
	if _, _, ok := s.CachedPlugin(key); ok {
		t.Fatal("empty cache hit")
	}
	out := modelDir(t, "optimized")
	cached, err := s.PutPlugin(ctx, key, out, []byte(`{"ok":true}`))
	if err != nil {
		t.Fatal(err)
	}
	dir, report, ok := s.CachedPlugin(key)
	if !ok || dir != cached || string(report) != `{"ok":true}` {
		t.Fatalf("CachedPlugin = %q, %q, %v", dir, report, ok)
	}
	d1, _ := modelsource.TreeDigest(out)
	if d2, _ := modelsource.TreeDigest(dir); d1 != d2 {
		t.Error("cached output differs from the plugin output")
	}
	if _, err := s.PutPlugin(ctx, "not-a-key", out, nil); err == nil {
		t.Error("bad key accepted")
	}
	if _, err := s.PutPlugin(ctx, key, out, []byte("{bad")); err == nil {
		t.Error("bad report accepted")
	}

	t.Run("concurrent puts of one key", func(t *testing.T) {
		key := "sha256:" + strings.Repeat("2e", 32)
		var wg sync.WaitGroup
		dirs := make([]string, 8)
		errs := make([]error, 8)
		for i := range dirs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dirs[i], errs[i] = s.PutPlugin(ctx, key, out, nil)
			}()
		}
		wg.Wait()
		for i := range dirs {
			if errs[i] != nil || dirs[i] != dirs[0] {
				t.Errorf("put %d: %q, %v", i, dirs[i], errs[i])
			}
		}
		if _, report, ok := s.CachedPlugin(key); !ok || report != nil {
			t.Errorf("CachedPlugin after concurrent puts: report %q ok %v", report, ok)
		}
	})
	if ents, _ := os.ReadDir(s.TmpDir()); len(ents) != 0 {
		t.Errorf("puts left %d entries in tmp", len(ents))
	}
}

func TestTrimPlugins(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	keys := make([]string, 3)
	base := time.Now().Add(-time.Hour)
	var size int64
	for i := range keys {
		keys[i] = "sha256:" + strings.Repeat(fmt.Sprintf("%02x", i+0xa0), 32)
		if _, err := s.PutPlugin(ctx, keys[i], modelDir(t, strings.Repeat("w", 1000)), nil); err != nil {
			t.Fatal(err)
		}
		hexPart, _ := modelsource.ParseDigest(keys[i])
		dir := filepath.Join(s.root, PluginsDir, hexPart)
		size = treeBytes(dir)
		// Put in order 0, 1, 2: 0 is the least recently used.
		if err := os.Chtimes(dir, base.Add(time.Duration(i)*time.Minute), base.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if n, _, err := s.TrimPlugins(0); n != 0 || err != nil {
		t.Fatalf("TrimPlugins(0) removed %d (%v); 0 is no bound", n, err)
	}
	// A hit renews result 0, so result 1 is now the least recently used.
	if _, _, ok := s.CachedPlugin(keys[0]); !ok {
		t.Fatal("miss")
	}
	n, freed, err := s.TrimPlugins(2 * size)
	if err != nil || n != 1 || freed != size {
		t.Fatalf("TrimPlugins: removed %d, %d bytes, %v; want 1 result of %d bytes", n, freed, err, size)
	}
	for i, want := range []bool{true, false, true} {
		if _, _, ok := s.CachedPlugin(keys[i]); ok != want {
			t.Errorf("result %d cached: %v, want %v", i, ok, want)
		}
	}
}

func TestModelCache(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	mk := func() string {
		// Made under the store's tmp, as a fetch would be, so the put is a rename.
		dir, err := os.MkdirTemp(s.TmpDir(), "fetch-")
		if err != nil {
			t.Fatal(err)
		}
		put(t, filepath.Join(dir, "m.onnx"), "w", 0o644)
		return dir
	}
	a := mk()
	want, _ := modelsource.TreeDigest(a)
	d1, p1, err := s.PutModel(ctx, a)
	if err != nil || d1 != want {
		t.Fatalf("PutModel = %s, %v; want %s", d1, err, want)
	}
	d2, p2, err := s.PutModel(ctx, mk())
	if err != nil || d2 != d1 || p2 != p1 {
		t.Fatalf("second PutModel = %s %s %v", d2, p2, err)
	}
	if got, ok := s.Model(d1); !ok || got != p1 {
		t.Errorf("Model = %q, %v", got, ok)
	}
	if ents, _ := os.ReadDir(s.TmpDir()); len(ents) != 0 {
		t.Errorf("PutModel left %d entries in tmp (inputs are consumed)", len(ents))
	}
	if _, ok := s.Model("sha256:" + strings.Repeat("9", 64)); ok {
		t.Error("missing model found")
	}
	// Another put from outside tmp (possibly another filesystem) is copied and consumed too.
	other := modelDir(t, "other")
	if _, _, err := s.PutModel(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(other); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("PutModel did not consume %s", other)
	}
}

func TestClearTmp(t *testing.T) {
	s := openStore(t)
	put(t, filepath.Join(s.TmpDir(), "old", "x"), "x", 0o644)
	modelsource.MakeReadOnly(filepath.Join(s.TmpDir(), "old"))
	if err := s.ClearTmp(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(s.TmpDir()); len(ents) != 0 {
		t.Errorf("tmp not empty")
	}
	if _, err := OpenStore(""); err == nil {
		t.Error("empty root accepted")
	}
}

func TestCanonicalManifest(t *testing.T) {
	got, err := canonicalManifest([]byte(`{"schema":1,"created":"2025-01-01T00:00:00Z","future_field":1.50,
		"plugins":[{"id":"p","cached":true,"duration":5}]}`))
	if err != nil {
		t.Fatal(err)
	}
	// Provenance dropped, keys sorted, numbers kept exactly as written.
	if want := `{"future_field":1.50,"plugins":[{"id":"p"}],"schema":1}`; string(got) != want {
		t.Errorf("canonical = %s, want %s", got, want)
	}
	if _, err := canonicalManifest([]byte(`{oops`)); err == nil {
		t.Error("invalid manifest accepted")
	}
}

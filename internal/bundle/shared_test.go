package bundle

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/objstore/miniotest"
)

func openShared(t *testing.T, shared BundleStore) *Store {
	t.Helper()
	root := filepath.Join(t.TempDir(), "data")
	s, err := OpenStoreWith(root, StoreOptions{Shared: shared})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { modelsource.RemoveAll(root) })
	return s
}

// sharedStores runs the test against every BundleStore implementation.
func sharedStores(t *testing.T, test func(t *testing.T, shared BundleStore)) {
	t.Run("disk", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "shared")
		d, err := NewDiskStore(root)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { modelsource.RemoveAll(root) })
		test(t, d)
	})
	t.Run("object", func(t *testing.T) {
		srv := miniotest.Start(t)
		o, err := NewObjectStore(context.Background(), srv.Client(t), "openeas-bundles", "cluster-a")
		if err != nil {
			t.Fatal(err)
		}
		test(t, o)
	})
}

// Two data directories (two easd processes) share bundles and plugin results.
func TestSharedStore(t *testing.T) {
	sharedStores(t, func(t *testing.T, shared BundleStore) {
		ctx := context.Background()
		a, b := openShared(t, shared), openShared(t, shared)

		digest, err := a.Seal(ctx, modelDir(t, "weights-shared"), manifest(), reports)
		if err != nil {
			t.Fatal(err)
		}
		dir, err := b.PathContext(ctx, digest)
		if err != nil {
			t.Fatalf("second store: %v", err)
		}
		if err := b.VerifyContext(ctx, digest); err != nil {
			t.Fatal(err)
		}
		m, _, err := b.Open(digest)
		if err != nil || m.ModelEntry != "m.onnx" {
			t.Fatalf("open in second store: %+v, %v", m, err)
		}
		if got, err := os.ReadFile(filepath.Join(dir, ModelDir, "sub", "vocab.txt")); err != nil || string(got) != "a b c" {
			t.Errorf("vocab.txt in the fetched bundle = %q, %v", got, err)
		}
		if _, err := b.PathContext(ctx, "sha256:"+strings.Repeat("0", 64)); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing bundle: err = %v, want ErrNotFound", err)
		}

		key := "sha256:" + strings.Repeat("5e", 32)
		out := t.TempDir()
		put(t, filepath.Join(out, "m.onnx"), "optimized", 0o644)
		put(t, filepath.Join(out, "run.sh"), "#!/bin/sh", 0o755)
		if _, err := a.PutPlugin(ctx, key, out, []byte(`{"speedup":3}`)); err != nil {
			t.Fatal(err)
		}
		got, report, ok := b.CachedPluginContext(ctx, key)
		if !ok {
			t.Fatal("plugin result put by the first store is not found by the second")
		}
		if !bytes.Equal(report, []byte(`{"speedup":3}`)) {
			t.Errorf("report = %s", report)
		}
		if d1, d2 := mustDigest(t, out), mustDigest(t, got); d1 != d2 {
			t.Errorf("plugin output digest %s, want %s (exec bit and content kept)", d2, d1)
		}
		if _, _, ok := b.CachedPlugin("sha256:" + strings.Repeat("0", 64)); ok {
			t.Error("a key nobody put is reported cached")
		}
	})
}

func mustDigest(t *testing.T, dir string) string {
	t.Helper()
	d, err := modelsource.TreeDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A shared copy that does not hash to its digest is never used.
func TestSharedStoreRejectsCorruptBundle(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "shared")
	d, err := NewDiskStore(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { modelsource.RemoveAll(root) })
	a, b := openShared(t, d), openShared(t, d)
	digest, err := a.Seal(ctx, modelDir(t, "weights"), manifest(), reports)
	if err != nil {
		t.Fatal(err)
	}
	hexPart, _ := modelsource.ParseDigest(digest)
	writeForce(t, filepath.Join(root, "bundles", hexPart, ModelDir, "m.onnx"), "tampered")
	if _, err := b.PathContext(ctx, digest); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("tampered shared bundle: err = %v, want ErrCorrupt", err)
	}
}

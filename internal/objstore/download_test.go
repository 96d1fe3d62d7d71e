package objstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/objstore"
	"github.com/openeas/openeas/internal/objstore/miniotest"
)

// Downloads are checked against what the server says about the object; a lie is an error.
func TestDownloadVerifies(t *testing.T) {
	srv := miniotest.Start(t)
	cl := srv.Client(t)
	ctx := context.Background()
	if err := cl.EnsureBucket(ctx, "models"); err != nil {
		t.Fatal(err)
	}
	if err := cl.EnsureBucket(ctx, "models"); err != nil {
		t.Fatalf("EnsureBucket on an existing bucket: %v", err)
	}
	src := filepath.Join(t.TempDir(), "m.onnx")
	data := []byte(strings.Repeat("weights ", 1000))
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	obj, err := cl.Upload(ctx, "models", "m.onnx", src, map[string]string{"Tree-Digest": "sha256:x"})
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != int64(len(data)) || len(obj.ETag) != 32 || obj.Meta["Tree-Digest"] != "sha256:x" {
		t.Fatalf("uploaded object %+v: want size %d, an MD5 ETag and the metadata", obj, len(data))
	}
	if obj.Checksums["CRC32C"] == "" {
		t.Errorf("uploaded object has no full-object CRC32C (checksums %v): multipart downloads could not be verified", obj.Checksums)
	}

	download := func(o objstore.Object) ([]byte, error) {
		f, err := os.CreateTemp(t.TempDir(), "dl")
		if err != nil {
			t.Fatal(err)
		}
		err = cl.Download(ctx, o, f)
		f.Close()
		got, _ := os.ReadFile(f.Name())
		return got, err
	}
	got, err := download(obj)
	if err != nil || string(got) != string(data) {
		t.Fatalf("download: %d bytes, %v", len(got), err)
	}

	bad := []struct {
		name   string
		change func(o *objstore.Object)
		want   string
	}{
		{"wrong SHA256", func(o *objstore.Object) { o.Checksums = map[string]string{"SHA256": "AAAA"} }, "SHA256 checksum"},
		{"wrong CRC32C", func(o *objstore.Object) { o.Checksums = map[string]string{"CRC32C": "AAAAAA=="} }, "CRC32C checksum"},
		{"shorter than announced", func(o *objstore.Object) { o.Size++ }, "got 8000 bytes, want 8001"},
		{"longer than announced", func(o *objstore.Object) { o.Size-- }, "more than the 7999 bytes announced"},
		{"replaced meanwhile", func(o *objstore.Object) { o.ETag = strings.Repeat("0", 32) }, "the object changed while it was downloaded"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			o := obj
			tc.change(&o)
			_, err := download(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}

	if _, err := cl.Stat(ctx, "models", "missing"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("stat missing: %v", err)
	}
	objs, err := cl.List(ctx, "models", "")
	if err != nil || len(objs) != 1 || objs[0].Key != "m.onnx" || objs[0].ETag != obj.ETag {
		t.Errorf("list = %+v, %v", objs, err)
	}
}

package modelsource

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a.onnx")
	os.WriteFile(src, []byte("model bytes"), 0o644)
	dst := filepath.Join(dir, "out", "sub", "a.onnx") // parent directories are created
	if err := CopyFile(src, dst); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(src, []byte("new"), 0o644)
	if err := CopyFile(src, dst); err != nil { // an existing file is replaced
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "new" {
		t.Fatalf("dst holds %q, want %q", b, "new")
	}
	if err := CopyFile(filepath.Join(dir, "missing"), dst); err == nil {
		t.Fatal("copying a missing file succeeded")
	}
}

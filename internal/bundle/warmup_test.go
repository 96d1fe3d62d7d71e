package bundle

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSealWarmUp(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	warm := t.TempDir()
	put(t, filepath.Join(warm, "b.bin"), "\x12\x00", 0o644)
	put(t, filepath.Join(warm, "a", "reqs.jsonl"), `{"inputs":{"x":[[1]]}}`, 0o644)

	plain, err := s.Seal(ctx, modelDir(t, "w"), manifest(), reports)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := s.SealWarmUp(ctx, modelDir(t, "w"), warm, manifest(), reports)
	if err != nil {
		t.Fatal(err)
	}
	if digest == plain {
		t.Error("the warm-up data does not change the bundle digest")
	}
	m, dir, err := s.Open(digest)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"warmup/a/reqs.jsonl", "warmup/b.bin"}; !slices.Equal(m.WarmUpData, want) {
		t.Errorf("warm_up_data %v, want %v", m.WarmUpData, want)
	}
	for _, f := range m.WarmUpData {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f))); err != nil {
			t.Errorf("warm-up file %s not in the bundle: %v", f, err)
		}
	}
	if err := s.Verify(digest); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if m, _, _ := s.Open(plain); len(m.WarmUpData) != 0 {
		t.Errorf("bundle without warm-up data lists %v", m.WarmUpData)
	}

	preset := manifest()
	preset.WarmUpData = []string{"warmup/x"}
	if _, err := s.SealWarmUp(ctx, modelDir(t, "w"), "", preset, reports); err == nil || !strings.Contains(err.Error(), "warm_up_data") {
		t.Errorf("manifest with warm_up_data set by the caller: %v", err)
	}
	if _, err := s.SealWarmUp(ctx, modelDir(t, "w"), t.TempDir(), manifest(), reports); err == nil || !strings.Contains(err.Error(), "holds no files") {
		t.Errorf("empty warm-up directory: %v", err)
	}
}

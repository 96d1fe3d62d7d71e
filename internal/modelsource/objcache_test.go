package modelsource

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestTrimObjectCache: the least recently used objects that only the cache holds go first,
// until the rest fit; the object just added, objects a model tree links to, and objects used
// within the last minute stay.
func TestTrimObjectCache(t *testing.T) {
	dir, trees := t.TempDir(), t.TempDir()
	now := time.Now()
	files := []struct {
		name   string
		size   int
		age    time.Duration
		linked bool // a fetched model tree links it too
	}{
		{"oldest", 100, 5 * time.Hour, false},
		{"old-linked", 500, 4 * time.Hour, true},
		{"old", 100, 3 * time.Hour, false},
		{"newer", 100, 2 * time.Hour, false},
		{"just-used", 100, 10 * time.Second, false},
		{"added", 100, 0, false},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, make([]byte, f.size), 0o444); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-f.age), now.Add(-f.age)); err != nil {
			t.Fatal(err)
		}
		if f.linked {
			if err := os.Link(p, filepath.Join(trees, f.name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	left := func() []string {
		es, _ := os.ReadDir(dir)
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		slices.Sort(names)
		return names
	}
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		max  int64
		want []string
	}{
		{0, []string{"added", "just-used", "newer", "old", "old-linked", "oldest"}},   // no limit
		{500, []string{"added", "just-used", "newer", "old", "old-linked", "oldest"}}, // 500 of its own: fits
		{350, []string{"added", "just-used", "newer", "old-linked"}},                  // the two oldest go
		{10, []string{"added", "just-used", "old-linked"}},                            // never added, recent or linked
	} {
		trimObjectCache(dir, tc.max, filepath.Join(dir, "added"), log)
		if got := left(); !slices.Equal(got, tc.want) {
			t.Errorf("limit %d: cache holds %v, want %v", tc.max, got, tc.want)
		}
	}

	// A cache hit renews an object's place in the order.
	touchObject(filepath.Join(dir, "just-used"))
	if fi, err := os.Stat(filepath.Join(dir, "just-used")); err != nil || time.Since(fi.ModTime()) > time.Minute {
		t.Errorf("touchObject left mtime %v (%v)", fi.ModTime(), err)
	}
}

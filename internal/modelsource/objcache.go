package modelsource

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// trimObjectCache keeps the object cache dir within maxBytes of disk of its own: it removes the
// least recently used cached objects (by modification time, which a cache hit renews) until
// the files that exist only in the cache fit, never removing keep. A cached object that a
// fetched model tree also links to costs the cache nothing (the tree holds the same disk
// blocks), so it is neither counted nor removed; it counts again once the tree is gone. Nor is
// an object used within recentUse removed: a fetch that just found it may be about to link it.
// maxBytes <= 0: no limit. Errors are logged: a cache that cannot be trimmed still works.
func trimObjectCache(dir string, maxBytes int64, keep string, log *slog.Logger) {
	if maxBytes <= 0 {
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		log.Warn("object cache: cannot list it to trim", "dir", dir, "error", err)
		return
	}
	type item struct {
		path string
		size int64
		used time.Time
	}
	var own []item
	var total int64
	recent := time.Now().Add(-recentUse)
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			continue // a model tree links it too
		}
		p := filepath.Join(dir, e.Name())
		total += fi.Size()
		if p != keep && fi.ModTime().Before(recent) {
			own = append(own, item{p, fi.Size(), fi.ModTime()})
		}
	}
	if total <= maxBytes {
		return
	}
	slices.SortFunc(own, func(a, b item) int { return a.used.Compare(b.used) })
	var freed int64
	removed := 0
	for _, it := range own {
		if total <= maxBytes {
			break
		}
		if err := os.Remove(it.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("object cache: cannot remove an entry", "file", it.path, "error", err)
			continue
		}
		total -= it.size
		freed += it.size
		removed++
	}
	log.Info("object cache trimmed", "removed", removed, "freed_bytes", freed, "cache_bytes", total, "limit_bytes", maxBytes)
}

// recentUse is how long a cached object that was just used is safe from trimming.
const recentUse = time.Minute

// touchObject marks a cached object as just used, for trimObjectCache's order.
func touchObject(path string) {
	now := time.Now()
	_ = os.Chtimes(path, now, now)
}

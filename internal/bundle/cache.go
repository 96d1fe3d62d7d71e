package bundle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/openeas/openeas/internal/modelsource"
)

// Layout of a plugin cache entry, plugins/<hex of key>/.
const (
	PluginOutputDir  = "output"
	PluginReportFile = "report.json"
)

// CachedPlugin looks up the plugin result stored under the content key ("sha256:<hex>").
// outDir is the cached output model directory (read-only; copy it, never write to it) and
// report the plugin's JSON report, nil when the plugin wrote none.
//
// With a shared tier, a result missing from the data directory is fetched from it first
// (CachedPluginContext bounds that); a failure to fetch counts as a miss.
func (s *Store) CachedPlugin(key string) (outDir string, report []byte, ok bool) {
	return s.CachedPluginContext(context.Background(), key)
}

// CachedPluginContext is CachedPlugin; ctx bounds fetching from the shared tier.
func (s *Store) CachedPluginContext(ctx context.Context, key string) (outDir string, report []byte, ok bool) {
	dir, err := entryPath(s.plugins, key, "plugin result")
	if errors.Is(err, ErrNotFound) && s.shared != nil {
		dir, err = s.pull(ctx, KindPlugin, key, s.plugins, "plugin result")
		if err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Warn("shared plugin result unusable; the plugin runs again", "key", key, "error", err)
		}
	}
	if err != nil {
		return "", nil, false
	}
	out := filepath.Join(dir, PluginOutputDir)
	if info, err := os.Stat(out); err != nil || !info.IsDir() {
		return "", nil, false
	}
	report, err = os.ReadFile(filepath.Join(dir, PluginReportFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", nil, false
	}
	now := time.Now()
	_ = os.Chtimes(dir, now, now) // a hit renews the entry for TrimPlugins
	return out, report, true
}

// TrimPlugins removes the least recently used plugin results from the data directory (never
// from the shared tier) until the rest hold at most maxBytes, and returns how many it removed
// and the bytes they held. maxBytes <= 0: no bound. The caller must make sure no build runs.
func (s *Store) TrimPlugins(maxBytes int64) (removed int, freed int64, err error) {
	if maxBytes <= 0 {
		return 0, 0, nil
	}
	ents, err := digestEntries(s.plugins)
	if err != nil {
		return 0, 0, fmt.Errorf("trim plugin results: %w", err)
	}
	type entry struct {
		dir  string
		size int64
		used time.Time
	}
	var all []entry
	var total int64
	for _, e := range ents {
		info, ierr := e.Info()
		if ierr != nil {
			continue // removed meanwhile
		}
		dir := filepath.Join(s.plugins, e.Name())
		n := treeBytes(dir)
		all = append(all, entry{dir, n, info.ModTime()})
		total += n
	}
	slices.SortFunc(all, func(a, b entry) int { return a.used.Compare(b.used) })
	var oldest []string
	for _, e := range all {
		if total <= maxBytes {
			break
		}
		oldest = append(oldest, e.dir)
		total -= e.size
	}
	removed, freed, err = s.removeEntries(oldest)
	if err != nil {
		err = fmt.Errorf("trim plugin results: %w", err)
	}
	return removed, freed, err
}

// PutPlugin stores a copy of a plugin's output directory and report under key and returns the
// cached output directory. It is atomic and idempotent: concurrent puts of the same key are
// safe, and the first one to finish wins (results for one key are interchangeable by design).
func (s *Store) PutPlugin(ctx context.Context, key string, outDir string, report []byte) (string, error) {
	hexPart, err := modelsource.ParseDigest(key)
	if err != nil {
		return "", fmt.Errorf("cache plugin result: key: %w", err)
	}
	if report != nil && !json.Valid(report) {
		return "", fmt.Errorf("cache plugin result %s: report is not valid JSON", key)
	}
	work, err := os.MkdirTemp(s.tmp, "plugin-")
	if err != nil {
		return "", fmt.Errorf("cache plugin result %s: %w", key, err)
	}
	defer modelsource.RemoveAll(work)
	if err := modelsource.CopyTree(ctx, outDir, filepath.Join(work, PluginOutputDir)); err != nil {
		return "", fmt.Errorf("cache plugin result %s: copy output: %w", key, err)
	}
	if report != nil {
		if err := os.WriteFile(filepath.Join(work, PluginReportFile), report, 0o644); err != nil {
			return "", fmt.Errorf("cache plugin result %s: %w", key, err)
		}
	}
	final := filepath.Join(s.plugins, hexPart)
	if err := publish(work, final); err != nil {
		return "", fmt.Errorf("cache plugin result %s: %w", key, err)
	}
	if err := s.share(ctx, KindPlugin, key, final); err != nil {
		return "", fmt.Errorf("cache plugin result: %w", err)
	}
	return filepath.Join(final, PluginOutputDir), nil
}

// Model returns the cached model tree with the given digest (as from modelsource.TreeDigest).
func (s *Store) Model(digest string) (dir string, ok bool) {
	dir, err := entryPath(s.models, digest, "model")
	return dir, err == nil
}

// PutModel moves the model tree dir (for example modelsource.Fetched.Dir, made under TmpDir)
// into the model cache, keyed by its tree digest, and returns the digest and cached directory.
// dir is consumed: it is renamed into place, or removed when the cache already holds the tree.
func (s *Store) PutModel(ctx context.Context, dir string) (digest, cached string, err error) {
	digest, err = modelsource.TreeDigest(dir)
	if err != nil {
		return "", "", fmt.Errorf("cache model %s: %w", dir, err)
	}
	hexPart, _ := modelsource.ParseDigest(digest)
	final := filepath.Join(s.models, hexPart)
	if _, err := os.Stat(final); err == nil {
		return digest, final, modelsource.RemoveAll(dir)
	}
	work, err := os.MkdirTemp(s.tmp, "model-")
	if err != nil {
		return "", "", fmt.Errorf("cache model %s: %w", digest, err)
	}
	defer modelsource.RemoveAll(work)
	tree := filepath.Join(work, "tree")
	if err := os.Rename(dir, tree); err != nil {
		// Another filesystem: copy instead, then drop the original.
		if err := modelsource.CopyTree(ctx, dir, tree); err != nil {
			return "", "", fmt.Errorf("cache model %s: %w", digest, err)
		}
		if err := modelsource.RemoveAll(dir); err != nil {
			return "", "", fmt.Errorf("cache model %s: %w", digest, err)
		}
	}
	if err := publish(tree, final); err != nil {
		return "", "", fmt.Errorf("cache model %s: %w", digest, err)
	}
	return digest, final, nil
}

package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/openeas/openeas/internal/modelsource"
)

// Directory names inside the data directory and inside a bundle.
const (
	BundlesDir = "bundles"
	PluginsDir = "plugins"
	ModelsDir  = "models"
	TmpDir     = "tmp"

	ModelDir   = "model"   // inside a bundle: the model to serve
	ReportsDir = "reports" // inside a bundle: one JSON report per plugin run
	WarmUpDir  = "warmup"  // inside a bundle: the warm-up requests (Manifest.WarmUpData)
)

// Sentinel errors, checked with errors.Is.
var (
	ErrNotFound = errors.New("bundle not found")
	ErrCorrupt  = errors.New("bundle is corrupt")
)

// Store keeps sealed bundles, the plugin result cache and fetched model trees under one data
// directory. Entries are written once, atomically (a temporary directory renamed into place),
// and never modified, so any number of goroutines and processes may use one Store at once.
//
// With a shared tier (OpenStoreWith), bundles and plugin results are also put into a
// BundleStore that other easd processes read, and looked up there when missing locally.
type Store struct {
	root    string
	bundles string
	plugins string
	models  string
	tmp     string
	shared  BundleStore // nil: the data directory only
	log     *slog.Logger
}

// OpenStore opens (creating when needed) the store rooted at the data directory root:
// root/bundles, root/plugins, root/models and root/tmp.
func OpenStore(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("open bundle store: data directory is empty")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open bundle store %s: %w", root, err)
	}
	s := &Store{
		root:    abs,
		bundles: filepath.Join(abs, BundlesDir),
		plugins: filepath.Join(abs, PluginsDir),
		models:  filepath.Join(abs, ModelsDir),
		tmp:     filepath.Join(abs, TmpDir),
		log:     slog.New(slog.DiscardHandler),
	}
	for _, d := range []string{s.bundles, s.plugins, s.models, s.tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open bundle store %s: %w", root, err)
		}
	}
	return s, nil
}

// TmpDir is the scratch directory (root/tmp) on the store's filesystem; work directories made
// there (fetches, plugin outputs) can be renamed into the store.
func (s *Store) TmpDir() string { return s.tmp }

// ClearTmp empties the scratch directory. Call it at start-up, before anything else uses the
// store: it removes work that a previous process left behind.
func (s *Store) ClearTmp() error {
	ents, err := os.ReadDir(s.tmp)
	if err != nil {
		return fmt.Errorf("clear %s: %w", s.tmp, err)
	}
	for _, e := range ents {
		if err := modelsource.RemoveAll(filepath.Join(s.tmp, e.Name())); err != nil {
			return fmt.Errorf("clear %s: %w", s.tmp, err)
		}
	}
	return nil
}

// Seal copies modelDir into a new bundle together with the manifest m (written as bundle.json)
// and the plugin reports (name is the file name under reports/, e.g. "plugin-0.json"; data must
// be JSON). It returns the bundle digest, "sha256:<hex>"; the bundle lives in bundles/<hex>.
//
// The digest covers every file's path, exec bit and content, except that bundle.json is hashed
// with its provenance fields cleared (created, plugins[].cached, plugins[].duration): sealing the
// same model with the same settings again, for instance with cached plugin results, yields the
// same digest and reuses the existing bundle, which keeps its first manifest.
//
// m.Schema 0 means 1; m.Created zero means now. m.ModelEntry must name a file in modelDir.
func (s *Store) Seal(ctx context.Context, modelDir string, m Manifest, reports map[string][]byte) (string, error) {
	return s.SealWarmUp(ctx, modelDir, "", m, reports)
}

// SealWarmUp is Seal that also copies the tree warmUpDir (the fetched warm_up_data_path; ""
// for none) into the bundle's warmup/ directory and lists its files, sorted, in
// m.WarmUpData, which must be empty on the way in.
func (s *Store) SealWarmUp(ctx context.Context, modelDir, warmUpDir string, m Manifest, reports map[string][]byte) (string, error) {
	if len(m.WarmUpData) > 0 {
		return "", errors.New("seal bundle: manifest warm_up_data is set by SealWarmUp, not by the caller")
	}
	if warmUpDir != "" {
		files, err := modelsource.ListFiles(warmUpDir)
		if err != nil {
			return "", fmt.Errorf("seal bundle: warm-up data: %w", err)
		}
		if len(files) == 0 {
			return "", fmt.Errorf("seal bundle: warm-up data %s holds no files", warmUpDir)
		}
		for _, f := range files {
			m.WarmUpData = append(m.WarmUpData, path.Join(WarmUpDir, f))
		}
	}
	if err := s.checkManifest(modelDir, &m, reports); err != nil {
		return "", fmt.Errorf("seal bundle: %w", err)
	}
	work, err := os.MkdirTemp(s.tmp, "seal-")
	if err != nil {
		return "", fmt.Errorf("seal bundle: %w", err)
	}
	defer modelsource.RemoveAll(work) // a no-op once renamed into place
	if err := modelsource.CopyTree(ctx, modelDir, filepath.Join(work, ModelDir)); err != nil {
		return "", fmt.Errorf("seal bundle: copy model: %w", err)
	}
	if warmUpDir != "" {
		if err := modelsource.CopyTree(ctx, warmUpDir, filepath.Join(work, WarmUpDir)); err != nil {
			return "", fmt.Errorf("seal bundle: copy warm-up data: %w", err)
		}
	}
	if err := os.Mkdir(filepath.Join(work, ReportsDir), 0o755); err != nil {
		return "", fmt.Errorf("seal bundle: %w", err)
	}
	for name, data := range reports {
		if err := os.WriteFile(filepath.Join(work, ReportsDir, name), data, 0o644); err != nil {
			return "", fmt.Errorf("seal bundle: write report %s: %w", name, err)
		}
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", fmt.Errorf("seal bundle: encode manifest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(work, ManifestFile), append(mj, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("seal bundle: %w", err)
	}
	digest, err := bundleDigest(work)
	if err != nil {
		return "", fmt.Errorf("seal bundle: %w", err)
	}
	hexPart, _ := modelsource.ParseDigest(digest)
	final := filepath.Join(s.bundles, hexPart)
	if err := publish(work, final); err != nil {
		return "", fmt.Errorf("seal bundle %s: %w", digest, err)
	}
	if err := s.share(ctx, KindBundle, digest, final); err != nil {
		return "", fmt.Errorf("seal bundle: %w", err)
	}
	return digest, nil
}

func (s *Store) checkManifest(modelDir string, m *Manifest, reports map[string][]byte) error {
	if m.Schema == 0 {
		m.Schema = 1
	}
	if m.Schema != 1 {
		return fmt.Errorf("manifest schema %d: only schema 1 is known", m.Schema)
	}
	if m.Processor == "" {
		return errors.New("manifest processor is empty")
	}
	if m.Created.IsZero() {
		m.Created = time.Now().UTC()
	}
	entry := filepath.FromSlash(m.ModelEntry)
	if m.ModelEntry == "" || !filepath.IsLocal(entry) || strings.Contains(m.ModelEntry, "\\") {
		return fmt.Errorf("manifest model_entry %q: want a slash-separated path inside the model", m.ModelEntry)
	}
	info, err := os.Stat(filepath.Join(modelDir, entry))
	if err != nil || !info.Mode().IsRegular() {
		return fmt.Errorf("manifest model_entry %q: no such file in %s", m.ModelEntry, modelDir)
	}
	for name, data := range reports {
		if name == "" || strings.ContainsAny(name, `/\`) || !filepath.IsLocal(name) {
			return fmt.Errorf("report name %q: want a plain file name such as plugin-0.json", name)
		}
		if !json.Valid(data) {
			return fmt.Errorf("report %s is not valid JSON", name)
		}
	}
	for i, p := range m.Plugins {
		if p.Report == "" {
			continue
		}
		dir, name := path.Split(p.Report)
		if dir != ReportsDir+"/" || reports[name] == nil {
			return fmt.Errorf("manifest plugins[%d].report %q: want reports/<name> with that report given to Seal", i, p.Report)
		}
	}
	return nil
}

// bundleDigest is TreeDigest with bundle.json replaced by its canonical, provenance-free form.
func bundleDigest(dir string) (string, error) {
	return modelsource.TreeDigestFunc(dir, func(rel string) ([]byte, bool, error) {
		if rel != ManifestFile {
			return nil, false, nil
		}
		data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
		if err != nil {
			return nil, false, err
		}
		b, err := canonicalManifest(data)
		return b, true, err
	})
}

// canonicalManifest is bundle.json without its provenance fields, re-encoded with sorted keys.
// It works on the JSON itself rather than on the Manifest type, so adding a field to Manifest
// later does not change the digests of bundles sealed before.
func canonicalManifest(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	delete(m, "created")
	if plugins, ok := m["plugins"].([]any); ok {
		for _, p := range plugins {
			if run, ok := p.(map[string]any); ok {
				delete(run, "cached")
				delete(run, "duration")
			}
		}
	}
	return json.Marshal(m)
}

func readManifest(p string) (*Manifest, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	if m.Schema != 1 {
		return nil, fmt.Errorf("%s: schema %d: only schema 1 is known", ManifestFile, m.Schema)
	}
	return &m, nil
}

// Path returns the directory of the bundle with the given digest. With a shared tier, a
// bundle missing from the data directory is first fetched from it (PathContext bounds that).
func (s *Store) Path(digest string) (string, error) {
	return s.PathContext(context.Background(), digest)
}

// PathContext is Path; ctx bounds fetching the bundle from the shared tier.
func (s *Store) PathContext(ctx context.Context, digest string) (string, error) {
	dir, err := entryPath(s.bundles, digest, "bundle")
	if errors.Is(err, ErrNotFound) && s.shared != nil {
		return s.pull(ctx, KindBundle, digest, s.bundles, "bundle")
	}
	return dir, err
}

func entryPath(base, digest, what string) (string, error) {
	hexPart, err := modelsource.ParseDigest(digest)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	dir := filepath.Join(base, hexPart)
	info, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s %s: %w", what, digest, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", what, digest, err)
	}
	if !info.IsDir() {
		return "", fmt.Errorf("%s %s: %w: not a directory", what, digest, ErrCorrupt)
	}
	return dir, nil
}

// Open reads the manifest of a sealed bundle and returns it with the bundle directory.
// It does not re-hash the bundle; use Verify for that.
func (s *Store) Open(digest string) (*Manifest, string, error) {
	dir, err := s.Path(digest)
	if err != nil {
		return nil, "", err
	}
	m, err := manifestIn(dir, digest)
	if err != nil {
		return nil, "", err
	}
	return m, dir, nil
}

// manifestIn reads the manifest of the bundle digest sealed in dir.
func manifestIn(dir, digest string) (*Manifest, error) {
	m, err := readManifest(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("open bundle %s: %w: %v", digest, ErrCorrupt, err)
	}
	return m, nil
}

// LocalManifest reads the manifest of a bundle in this data directory, never fetching it from
// the shared tier (ErrNotFound when it is not here).
func (s *Store) LocalManifest(digest string) (*Manifest, error) {
	dir, err := entryPath(s.bundles, digest, "bundle")
	if err != nil {
		return nil, err
	}
	return manifestIn(dir, digest)
}

// Verify recomputes the digest of a sealed bundle and returns an error wrapping ErrCorrupt when
// any file was changed, added or removed since sealing.
func (s *Store) Verify(digest string) error {
	return s.VerifyContext(context.Background(), digest)
}

// VerifyContext is Verify; ctx bounds fetching the bundle from the shared tier.
func (s *Store) VerifyContext(ctx context.Context, digest string) error {
	dir, err := s.PathContext(ctx, digest)
	if err != nil {
		return err
	}
	got, err := bundleDigest(dir)
	if err != nil {
		return fmt.Errorf("verify bundle %s: %w: %v", digest, ErrCorrupt, err)
	}
	if got != digest {
		return fmt.Errorf("verify bundle %s: %w: its content now hashes to %s", digest, ErrCorrupt, got)
	}
	return nil
}

// Remove deletes a sealed bundle from the data directory (never from the shared tier, which
// other processes may rely on). Removing a missing bundle is not an error.
func (s *Store) Remove(digest string) error {
	dir, err := entryPath(s.bundles, digest, "bundle")
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return removeEntry(dir, s.tmp)
}

// removeEntry renames dir into tmp first, so readers never see a half-deleted entry.
func removeEntry(dir, tmp string) error {
	trash, err := os.MkdirTemp(tmp, "trash-")
	if err != nil {
		return err
	}
	// Moving a directory to another parent updates its ".." entry, which needs write permission.
	_ = os.Chmod(dir, 0o755)
	if err := os.Rename(dir, filepath.Join(trash, "x")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		modelsource.RemoveAll(trash)
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return modelsource.RemoveAll(trash)
}

// publish makes work read-only and renames it to final. When final already exists (sealed
// earlier, or by a concurrent caller), work is discarded and the existing entry is kept: both
// have the same content by construction.
func publish(work, final string) error {
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	ents, err := os.ReadDir(work)
	if err != nil {
		return err
	}
	// The top directory stays writable until after the rename: renaming a directory needs
	// write permission on it (to update its ".." entry).
	for _, e := range ents {
		if err := modelsource.MakeReadOnly(filepath.Join(work, e.Name())); err != nil {
			return err
		}
	}
	if err := os.Rename(work, final); err != nil {
		if _, serr := os.Stat(final); serr == nil {
			return nil // lost a race to an identical entry
		}
		return err
	}
	return os.Chmod(final, 0o555)
}

// Prune removes the bundles in the data directory whose digests keep does not hold (never
// from the shared tier) and returns how many it removed and the bytes they held. The caller
// must make sure no bundle is being sealed for a digest it has not recorded yet.
func (s *Store) Prune(keep map[string]bool) (removed int, freed int64, err error) {
	return s.prune(s.bundles, keep)
}

// PruneModels removes every fetched model tree (DATA/models). They are a build's staging
// area: a build fetches its model again and finds its plugin results by content, so a tree
// that outlives its build only costs disk. The caller must make sure no build runs.
func (s *Store) PruneModels() (removed int, freed int64, err error) {
	return s.prune(s.models, nil)
}

// prune removes the entries of base (one directory per digest) not in keep.
func (s *Store) prune(base string, keep map[string]bool) (removed int, freed int64, err error) {
	ents, err := digestEntries(base)
	if err != nil {
		return 0, 0, fmt.Errorf("prune %s: %w", base, err)
	}
	var unused []string
	for _, e := range ents {
		if !keep[modelsource.DigestPrefix+e.Name()] {
			unused = append(unused, filepath.Join(base, e.Name()))
		}
	}
	removed, freed, err = s.removeEntries(unused)
	if err != nil {
		err = fmt.Errorf("prune %s: %w", base, err)
	}
	return removed, freed, err
}

// digestEntries lists the entries of base named by a digest's hex part: those the store made.
func digestEntries(base string) ([]fs.DirEntry, error) {
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(ents, func(e fs.DirEntry) bool {
		_, err := modelsource.ParseDigest(modelsource.DigestPrefix + e.Name())
		return err != nil
	}), nil
}

// removeEntries removes the entry directories dirs and returns how many it removed and the
// bytes they held; one that cannot be removed is reported and the rest still go.
func (s *Store) removeEntries(dirs []string) (removed int, freed int64, err error) {
	for _, dir := range dirs {
		n := treeBytes(dir)
		if rerr := removeEntry(dir, s.tmp); rerr != nil {
			err = errors.Join(err, rerr)
			continue
		}
		removed++
		freed += n
	}
	return removed, freed, err
}

// treeBytes is the size of the regular files under dir (0 for what cannot be read).
func treeBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, ierr := d.Info(); ierr == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

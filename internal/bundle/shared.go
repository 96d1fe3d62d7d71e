package bundle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/openeas/openeas/internal/modelsource"
)

// Kind names a class of shareable store entries.
type Kind string

// The entries a BundleStore shares. Model trees are not shared: they are fetched again from
// model_path, which is itself shared storage.
const (
	KindBundle Kind = BundlesDir // sealed bundles, by bundle digest
	KindPlugin Kind = PluginsDir // plugin results (output/ and report.json), by content key
)

// BundleStore is a place where sealed bundles and plugin results are kept by digest so that
// several easd processes can share them. Entries are immutable and content-addressed, so
// implementations need no locking beyond making each Put appear atomically.
//
// Implementations: DiskStore (a directory, local or on a shared filesystem) and ObjectStore
// (an S3-compatible bucket). Both are safe for concurrent use.
type BundleStore interface {
	// Put stores a copy of the entry directory dir under (kind, digest). Storing an entry
	// that exists already does nothing. Cancelling ctx abandons the copy; no partial entry
	// becomes visible.
	Put(ctx context.Context, kind Kind, digest, dir string) error
	// Get copies the entry into dst, which must not exist (its parent must). It returns an
	// error wrapping ErrNotFound when the store does not hold the entry, and ErrCorrupt when
	// the copy does not match what was put.
	Get(ctx context.Context, kind Kind, digest, dst string) error
}

// StoreOptions configure OpenStoreWith.
type StoreOptions struct {
	// Shared, when set, is a second tier behind the data directory: bundles are put there
	// once sealed and plugin results once cached, and entries missing from the data
	// directory are looked for there (and copied in) before being reported missing.
	Shared BundleStore
	// Logger receives a line per entry shared or fetched; nil discards them.
	Logger *slog.Logger
}

// OpenStoreWith is OpenStore with a shared tier.
func OpenStoreWith(root string, o StoreOptions) (*Store, error) {
	s, err := OpenStore(root)
	if err != nil {
		return nil, err
	}
	s.shared = o.Shared
	s.log = o.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// share puts a published entry into the shared tier, when there is one.
func (s *Store) share(ctx context.Context, kind Kind, digest, dir string) error {
	if s.shared == nil {
		return nil
	}
	if err := s.shared.Put(ctx, kind, digest, dir); err != nil {
		return fmt.Errorf("share %s %s: %w", kind, digest, err)
	}
	s.log.Info("entry shared", "kind", string(kind), "digest", digest)
	return nil
}

// pull copies an entry from the shared tier into base/<hex> of the data directory and returns
// its directory; without a shared tier, or when it lacks the entry, the error wraps ErrNotFound.
func (s *Store) pull(ctx context.Context, kind Kind, digest, base, what string) (string, error) {
	if s.shared == nil {
		return "", fmt.Errorf("%s %s: %w", what, digest, ErrNotFound)
	}
	hexPart, err := modelsource.ParseDigest(digest)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	work, err := os.MkdirTemp(s.tmp, "pull-")
	if err != nil {
		return "", fmt.Errorf("fetch %s %s: %w", what, digest, err)
	}
	defer modelsource.RemoveAll(work)
	dst := filepath.Join(work, "entry")
	if err := s.shared.Get(ctx, kind, digest, dst); err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", fmt.Errorf("%s %s: %w (not in the data directory nor in the shared store)", what, digest, ErrNotFound)
		}
		return "", fmt.Errorf("fetch %s %s from the shared store: %w", what, digest, err)
	}
	if kind == KindBundle {
		// The digest is the bundle's content: a bundle that hashes otherwise is never used.
		got, err := bundleDigest(dst)
		if err != nil {
			return "", fmt.Errorf("fetch %s %s: %w: %v", what, digest, ErrCorrupt, err)
		}
		if got != digest {
			return "", fmt.Errorf("fetch %s %s: %w: the shared copy hashes to %s", what, digest, ErrCorrupt, got)
		}
	}
	final := filepath.Join(base, hexPart)
	if err := publish(dst, final); err != nil {
		return "", fmt.Errorf("fetch %s %s: %w", what, digest, err)
	}
	s.log.Info("entry fetched from the shared store", "kind", string(kind), "digest", digest)
	return final, nil
}

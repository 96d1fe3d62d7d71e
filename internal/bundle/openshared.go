package bundle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/objstore"
)

// JobsDir is where, inside a shared store, plugin Jobs' input and output trees travel.
const JobsDir = "jobs"

// Shared is the store named by easd's --bundle-store ($EASD_BUNDLE_STORE), opened the same
// way by easd and by the pods' eas-worker fetch-bundle / objstore commands, so both sides
// agree on where every byte lives.
type Shared struct {
	// Bundles holds sealed bundles and plugin results by digest.
	Bundles BundleStore
	// Jobs holds the directory trees plugin Jobs move, keyed by prefix, under jobs/.
	Jobs TreeStore
	// Location names the store in messages (a directory or oss://bucket/prefix); no secrets.
	Location string
}

// OpenShared opens the shared store named by spec: a directory (local or on a filesystem
// every node mounts), oss://bucket/prefix (signed with oss) or s3://bucket/prefix (with s3).
// "" and "local" mean no shared store: it returns nil, nil. An object store's bucket is
// created when missing.
func OpenShared(ctx context.Context, spec string, oss, s3 objstore.Config, log *slog.Logger) (*Shared, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch {
	case spec == "" || spec == "local":
		return nil, nil
	case strings.HasPrefix(spec, "oss://") || strings.HasPrefix(spec, "s3://"):
		loc, err := objstore.ParseURL(spec)
		if err != nil {
			return nil, fmt.Errorf("bundle store: %w", err)
		}
		cfg := oss
		if loc.Scheme == "s3" {
			cfg = s3
		}
		cfg.Scheme, cfg.Logger = loc.Scheme, log
		cl, err := objstore.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("bundle store: %w", err)
		}
		st, err := NewObjectStore(ctx, cl, loc.Bucket, loc.Key)
		if err != nil {
			return nil, err
		}
		log.Info("sharing bundles and plugin results in object storage", "location", loc.String(), "store", cfg)
		return &Shared{
			Bundles:  st,
			Jobs:     ObjectTrees{Client: cl, Bucket: loc.Bucket, Prefix: st.prefix + JobsDir + "/"},
			Location: loc.String(),
		}, nil
	case strings.Contains(spec, "://"):
		return nil, fmt.Errorf("bundle store %q: want local, a directory, oss://bucket/prefix or s3://bucket/prefix", spec)
	default:
		st, err := NewDiskStore(spec)
		if err != nil {
			return nil, err
		}
		log.Info("sharing bundles and plugin results in a directory", "dir", spec)
		return &Shared{Bundles: st, Jobs: DirTrees{Root: filepath.Join(st.root, JobsDir)}, Location: st.root}, nil
	}
}

// FetchBundle copies the sealed bundle digest from s into dir and checks that it hashes to
// digest; a bundle that hashes otherwise is refused (ErrCorrupt) and nothing is left in dir.
// dir is made when missing; an existing dir must be empty or hold that bundle already (then
// nothing is fetched), so a restarted init container succeeds. A missing bundle wraps
// ErrNotFound.
func FetchBundle(ctx context.Context, s BundleStore, digest, dir string) error {
	if _, err := modelsource.ParseDigest(digest); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bundle directory: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("bundle directory: %w", err)
	}
	held := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), fetchPrefix) {
			// Scratch of an earlier attempt that was cut short.
			if err := modelsource.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("bundle directory: %w", err)
			}
			continue
		}
		held++
	}
	if held > 0 {
		if got, err := bundleDigest(dir); err == nil && got == digest {
			return nil
		}
		return fmt.Errorf("bundle directory %s is not empty and does not hold bundle %s", dir, digest)
	}
	// The scratch copy lives inside dir (dir may be a mount point, which cannot be replaced),
	// so moving the verified files into place is a rename on the same filesystem.
	work, err := os.MkdirTemp(dir, fetchPrefix)
	if err != nil {
		return fmt.Errorf("bundle directory: %w", err)
	}
	defer modelsource.RemoveAll(work)
	got := filepath.Join(work, "bundle")
	if err := s.Get(ctx, KindBundle, digest, got); err != nil {
		return fmt.Errorf("fetch bundle %s: %w", digest, err)
	}
	sum, err := bundleDigest(got)
	if err != nil {
		return fmt.Errorf("fetch bundle %s: %w: %v", digest, ErrCorrupt, err)
	}
	if sum != digest {
		return fmt.Errorf("fetch bundle %s: %w: the stored copy hashes to %s", digest, ErrCorrupt, sum)
	}
	ents, err = os.ReadDir(got)
	if err != nil {
		return fmt.Errorf("fetch bundle %s: %w", digest, err)
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(got, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return errors.Join(fmt.Errorf("fetch bundle %s: %w", digest, err), clearDir(dir, work))
		}
	}
	return nil
}

const fetchPrefix = ".fetch-"

// clearDir removes everything in dir but keep, so a failed fetch leaves dir as it found it.
func clearDir(dir, keep string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if p := filepath.Join(dir, e.Name()); p != keep {
			errs = append(errs, modelsource.RemoveAll(p))
		}
	}
	return errors.Join(errs...)
}

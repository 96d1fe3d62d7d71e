package bundle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/objstore"
)

// TreeStore moves directory trees by key prefix ("plugins/<key>/input/"): easd on one side,
// a plugin Job's containers (eas-worker objstore get|put) on the other. Its method set is
// the Kubernetes backend's TreeStore.
type TreeStore interface {
	// PutTree uploads every regular file under dir to prefix + its relative path.
	PutTree(ctx context.Context, prefix, dir string) error
	// GetTree downloads every file under prefix into dir (made when missing); a prefix with
	// nothing under it leaves dir empty and is no error.
	GetTree(ctx context.Context, prefix, dir string) error
}

// checkPrefix refuses prefixes that are not plain relative keys, so no tree reads or writes
// outside the store's jobs/ area.
func checkPrefix(prefix string) error {
	clean := path.Clean("/" + prefix)
	if prefix == "" || clean == "/" || strings.HasPrefix(prefix, "/") || strings.Contains(prefix, "\\") ||
		strings.Contains("/"+prefix+"/", "/../") || strings.Contains("/"+prefix+"/", "/./") {
		return fmt.Errorf("tree prefix %q: expected a relative key prefix such as plugins/KEY/input/", prefix)
	}
	return nil
}

// DirTrees is a TreeStore in a directory (the jobs/ directory of a directory bundle store).
type DirTrees struct{ Root string }

func (d DirTrees) path(prefix string) (string, error) {
	if err := checkPrefix(prefix); err != nil {
		return "", err
	}
	return filepath.Join(d.Root, filepath.FromSlash(path.Clean(prefix))), nil
}

// PutTree implements TreeStore: a copy beside the target, renamed into place, so a reader
// sees the old tree or the new one, never a mix.
func (d DirTrees) PutTree(ctx context.Context, prefix, dir string) error {
	dst, err := d.path(prefix)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("put tree %s: %w", prefix, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".put-")
	if err != nil {
		return fmt.Errorf("put tree %s: %w", prefix, err)
	}
	defer modelsource.RemoveAll(tmp)
	tree := filepath.Join(tmp, "tree")
	if err := modelsource.CopyTree(ctx, dir, tree); err != nil {
		return fmt.Errorf("put tree %s: %w", prefix, err)
	}
	if err := modelsource.RemoveAll(dst); err != nil {
		return fmt.Errorf("put tree %s: %w", prefix, err)
	}
	if err := os.Rename(tree, dst); err != nil {
		return fmt.Errorf("put tree %s: %w", prefix, err)
	}
	return nil
}

// GetTree implements TreeStore.
func (d DirTrees) GetTree(ctx context.Context, prefix, dir string) error {
	src, err := d.path(prefix)
	if err != nil {
		return err
	}
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		return os.MkdirAll(dir, 0o755)
	}
	if err := modelsource.CopyTree(ctx, src, dir); err != nil {
		return fmt.Errorf("get tree %s: %w", prefix, err)
	}
	return nil
}

// ObjectTrees is a TreeStore in an S3-compatible bucket: one object per file, keyed
// Prefix + tree prefix + relative path.
type ObjectTrees struct {
	Client *objstore.Client
	Bucket string
	Prefix string // "" or ending in "/", e.g. "openeas/jobs/"
}

// PutTree implements TreeStore.
func (o ObjectTrees) PutTree(ctx context.Context, prefix, dir string) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("put tree %s: %w", prefix, err)
		}
		if !e.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		key := o.Prefix + prefix + filepath.ToSlash(rel)
		if _, err := o.Client.Upload(ctx, o.Bucket, key, p, nil); err != nil {
			return fmt.Errorf("put tree %s: %w", prefix, err)
		}
		return nil
	})
}

// GetTree implements TreeStore.
func (o ObjectTrees) GetTree(ctx context.Context, prefix, dir string) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	objs, err := o.Client.List(ctx, o.Bucket, o.Prefix+prefix)
	if err != nil && !errors.Is(err, objstore.ErrNotFound) {
		return fmt.Errorf("get tree %s: %w", prefix, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("get tree %s: %w", prefix, err)
	}
	for _, obj := range objs {
		rel := strings.TrimPrefix(obj.Key, o.Prefix+prefix)
		if rel == "" || strings.HasSuffix(rel, "/") {
			continue
		}
		clean := path.Clean(rel)
		if clean == ".." || strings.HasPrefix(clean, "../") || path.IsAbs(clean) {
			return fmt.Errorf("get tree %s: object %s escapes the tree", prefix, obj.Key)
		}
		dst := filepath.Join(dir, filepath.FromSlash(clean))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("get tree %s: %w", prefix, err)
		}
		f, err := os.Create(dst)
		if err != nil {
			return fmt.Errorf("get tree %s: %w", prefix, err)
		}
		err = o.Client.Download(ctx, obj, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("get tree %s: %w", prefix, err)
		}
	}
	return nil
}

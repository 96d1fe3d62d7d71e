package kubernetes

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

// DirTrees is a TreeStore in a directory that easd and every node mount (a shared filesystem).
type DirTrees struct{ Root string }

func (d DirTrees) path(prefix string) (string, error) {
	clean := path.Clean("/" + prefix)
	if clean == "/" || strings.Contains(prefix, "..") {
		return "", fmt.Errorf("tree prefix %q: expected a relative key prefix", prefix)
	}
	return filepath.Join(d.Root, filepath.FromSlash(clean)), nil
}

// PutTree implements TreeStore: a copy beside the target, renamed into place.
func (d DirTrees) PutTree(ctx context.Context, prefix, dir string) error {
	dst, err := d.path(prefix)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".tmp"
	os.RemoveAll(tmp)
	if err := modelsource.CopyTree(ctx, dir, tmp); err != nil {
		return fmt.Errorf("put tree %s: %w", prefix, err)
	}
	os.RemoveAll(dst)
	return os.Rename(tmp, dst)
}

// GetTree implements TreeStore; dir must be absent or empty.
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

// ObjectTrees is a TreeStore in an S3-compatible bucket (OSS, S3, MinIO): one object per file,
// keyed Prefix + tree prefix + relative path.
type ObjectTrees struct {
	Client *objstore.Client
	Bucket string
	Prefix string // e.g. "openeas/jobs/"
}

// PutTree implements TreeStore.
func (o ObjectTrees) PutTree(ctx context.Context, prefix, dir string) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
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
	objs, err := o.Client.List(ctx, o.Bucket, o.Prefix+prefix)
	if err != nil {
		return fmt.Errorf("get tree %s: %w", prefix, err)
	}
	for _, obj := range objs {
		rel := strings.TrimPrefix(obj.Key, o.Prefix+prefix)
		if rel == "" || strings.HasSuffix(rel, "/") {
			continue
		}
		clean := path.Clean(rel)
		if strings.HasPrefix(clean, "../") || clean == ".." || path.IsAbs(clean) {
			return fmt.Errorf("get tree %s: object %s escapes the tree", prefix, obj.Key)
		}
		dst := filepath.Join(dir, filepath.FromSlash(clean))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		f, err := os.Create(dst)
		if err != nil {
			return err
		}
		err = o.Client.Download(ctx, obj, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("get tree %s: %w", prefix, err)
		}
	}
	return os.MkdirAll(dir, 0o755)
}

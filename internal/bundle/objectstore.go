package bundle

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/openeas/openeas/internal/modelsource"
	"github.com/openeas/openeas/internal/objstore"
)

// treeDigestMeta is the user metadata holding an entry's modelsource.TreeDigest, checked on Get.
const treeDigestMeta = "Tree-Digest"

// ObjectStore is a BundleStore in an S3-compatible bucket: one tar object per entry,
// PREFIX/bundles/<hex>.tar and PREFIX/plugins/<hex>.tar. A single PUT makes an entry visible
// whole; the tree digest kept in its metadata is checked after every Get.
type ObjectStore struct {
	cl     *objstore.Client
	bucket string
	prefix string // "" or ending in "/"
}

// NewObjectStore makes an ObjectStore in bucket under prefix (e.g. "openeas/"), creating the
// bucket when it does not exist.
func NewObjectStore(ctx context.Context, cl *objstore.Client, bucket, prefix string) (*ObjectStore, error) {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if err := cl.EnsureBucket(ctx, bucket); err != nil {
		return nil, fmt.Errorf("open bundle store: %w", err)
	}
	return &ObjectStore{cl: cl, bucket: bucket, prefix: prefix}, nil
}

func (o *ObjectStore) key(kind Kind, digest string) (string, error) {
	if kind != KindBundle && kind != KindPlugin {
		return "", fmt.Errorf("bundle store: unknown entry kind %q", kind)
	}
	hexPart, err := modelsource.ParseDigest(digest)
	if err != nil {
		return "", fmt.Errorf("bundle store: %w", err)
	}
	return o.prefix + string(kind) + "/" + hexPart + ".tar", nil
}

// Put implements BundleStore, streaming the tar straight into the upload (memory: one part).
func (o *ObjectStore) Put(ctx context.Context, kind Kind, digest, dir string) error {
	key, err := o.key(kind, digest)
	if err != nil {
		return err
	}
	if _, err := o.cl.Stat(ctx, o.bucket, key); err == nil {
		return nil
	} else if !errors.Is(err, objstore.ErrNotFound) {
		return err
	}
	tree, err := modelsource.TreeDigest(dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(ctx, pw, dir)) }()
	err = o.cl.PutStream(ctx, o.bucket, key, pr, map[string]string{treeDigestMeta: tree})
	pr.CloseWithError(errors.New("upload ended")) // stops writeTar if the upload failed
	return err
}

// Get implements BundleStore.
func (o *ObjectStore) Get(ctx context.Context, kind Kind, digest, dst string) error {
	key, err := o.key(kind, digest)
	if err != nil {
		return err
	}
	obj, err := o.cl.Stat(ctx, o.bucket, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(dst), ".entry-*.tar")
	if err != nil {
		return fmt.Errorf("bundle store: %w", err)
	}
	defer os.Remove(f.Name())
	err = o.cl.Download(ctx, obj, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		return fmt.Errorf("bundle store: %w", err)
	}
	if err := modelsource.UnpackFile(ctx, f.Name(), key, dst, 0, 0); err != nil {
		return fmt.Errorf("bundle store: %s: %w: %v", key, ErrCorrupt, err)
	}
	if want := obj.Meta[treeDigestMeta]; want != "" {
		got, err := modelsource.TreeDigest(dst)
		if err != nil || got != want {
			return fmt.Errorf("bundle store: %s: %w: content hashes to %s, stored as %s (%v)", key, ErrCorrupt, got, want, err)
		}
	}
	return nil
}

// writeTar writes the regular files and directories under dir as a tar stream, keeping the
// exec bit (all a tree digest records).
func writeTar(ctx context.Context, w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755})
		case d.Type().IsRegular():
			mode := int64(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: info.Size()}); err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		default:
			return fmt.Errorf("%s: not a regular file or directory", name)
		}
	})
	if err != nil {
		return fmt.Errorf("archive %s: %w", dir, err)
	}
	return tw.Close()
}

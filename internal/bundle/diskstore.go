package bundle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/openeas/openeas/internal/modelsource"
)

// DiskStore is a BundleStore in a directory: root/bundles/<hex>, root/plugins/<hex>, root/tmp.
// Put on a shared filesystem (NFS and the like), it lets several easd processes share entries.
type DiskStore struct {
	root string
}

// NewDiskStore opens (creating when needed) the directory store at root.
func NewDiskStore(root string) (*DiskStore, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open bundle store %s: %w", root, err)
	}
	for _, d := range []string{string(KindBundle), string(KindPlugin), TmpDir} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o755); err != nil {
			return nil, fmt.Errorf("open bundle store %s: %w", root, err)
		}
	}
	return &DiskStore{root: abs}, nil
}

func (d *DiskStore) entry(kind Kind, digest string) (string, error) {
	if kind != KindBundle && kind != KindPlugin {
		return "", fmt.Errorf("bundle store: unknown entry kind %q", kind)
	}
	hexPart, err := modelsource.ParseDigest(digest)
	if err != nil {
		return "", fmt.Errorf("bundle store: %w", err)
	}
	return filepath.Join(d.root, string(kind), hexPart), nil
}

// Put implements BundleStore: a copy made under root/tmp, then renamed into place.
func (d *DiskStore) Put(ctx context.Context, kind Kind, digest, dir string) error {
	final, err := d.entry(kind, digest)
	if err != nil {
		return err
	}
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	work, err := os.MkdirTemp(filepath.Join(d.root, TmpDir), "put-")
	if err != nil {
		return fmt.Errorf("bundle store %s: %w", d.root, err)
	}
	defer modelsource.RemoveAll(work)
	tree := filepath.Join(work, "entry")
	if err := modelsource.CopyTree(ctx, dir, tree); err != nil {
		return fmt.Errorf("bundle store %s: copy %s: %w", d.root, digest, err)
	}
	if err := publish(tree, final); err != nil {
		return fmt.Errorf("bundle store %s: %w", d.root, err)
	}
	return nil
}

// Get implements BundleStore.
func (d *DiskStore) Get(ctx context.Context, kind Kind, digest, dst string) error {
	src, err := d.entry(kind, digest)
	if err != nil {
		return err
	}
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("bundle store %s: %s %s: %w", d.root, kind, digest, ErrNotFound)
	}
	if err := modelsource.CopyTree(ctx, src, dst); err != nil {
		return fmt.Errorf("bundle store %s: copy %s: %w", d.root, digest, err)
	}
	return nil
}

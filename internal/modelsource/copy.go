package modelsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
)

// limits counts what a fetch has written so far and refuses to go past the caps.
type limits struct {
	maxBytes int64
	maxFiles int
	bytes    int64
	files    int
}

func (l *limits) addEntry(name string) error {
	l.files++
	if l.files > l.maxFiles {
		return fmt.Errorf("%s: model has more than %d files and directories (limit)", name, l.maxFiles)
	}
	return nil
}

func (l *limits) errTooBig(name string) error {
	return fmt.Errorf("%s: model is larger than %d bytes (limit)", name, l.maxBytes)
}

// copyCapped copies src to dst in chunks, checking ctx between chunks and counting every
// byte against the size cap, so a decompression bomb stops at the cap, not at its end.
func copyCapped(ctx context.Context, dst io.Writer, src io.Reader, lim *limits, name string) error {
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			lim.bytes += int64(n)
			if lim.bytes > lim.maxBytes {
				return lim.errTooBig(name)
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return fmt.Errorf("write %s: %w", name, err)
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return &readError{name: name, err: rerr}
		}
	}
}

// readError is a failure reading a source (as opposed to writing the copy).
type readError struct {
	name string
	err  error
}

func (e *readError) Error() string { return "read " + e.name + ": " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// fileMode keeps only the exec bit: that is all the digest records, and all a model needs.
func fileMode(m fs.FileMode) fs.FileMode {
	if m&0o111 != 0 {
		return 0o755
	}
	return 0o644
}

// writeFile creates dst (which must not exist) from src.
func writeFile(ctx context.Context, dst string, src io.Reader, mode fs.FileMode, lim *limits, name string) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode(mode))
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: duplicate entry", name)
		}
		return fmt.Errorf("create %s: %w", name, err)
	}
	if err := copyCapped(ctx, f, src, lim, name); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func copyOne(ctx context.Context, src, dst string, mode fs.FileMode, lim *limits) error {
	name := filepath.Base(src)
	if err := lim.addEntry(name); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer in.Close()
	return writeFile(ctx, dst, in, mode, lim, name)
}

// copyTree copies the regular files and directories under src into dst (which exists).
// Symbolic links and special files are refused: following them could pull files from outside
// the model directory into a deployed model.
func copyTree(ctx context.Context, src, dst string, lim *limits) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		target := filepath.Join(dst, rel)
		if err := lim.addEntry(filepath.ToSlash(rel)); err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Mkdir(target, 0o755)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return fmt.Errorf("stat %s: %w", p, err)
			}
			in, err := os.Open(p)
			if err != nil {
				return fmt.Errorf("open %s: %w", p, err)
			}
			defer in.Close()
			return writeFile(ctx, target, in, info.Mode(), lim, filepath.ToSlash(rel))
		case d.Type()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s: symbolic links are not allowed in a model directory", filepath.ToSlash(rel))
		default:
			return fmt.Errorf("%s: not a regular file or directory (%s)", filepath.ToSlash(rel), d.Type())
		}
	})
}

// CopyTree copies the directory tree src into dst, which must not exist or be empty. Only
// regular files (keeping their exec bit) and directories are copied; symbolic links and special
// files are an error. Cancelling ctx stops the copy; dst is then left partial for the caller to remove.
func CopyTree(ctx context.Context, src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	return copyTree(ctx, src, dst, &limits{maxBytes: math.MaxInt64, maxFiles: math.MaxInt})
}

// RemoveAll removes path like os.RemoveAll, first restoring write permission on directories
// that were made read-only (sealed bundles, cached plugin outputs).
func RemoveAll(path string) error {
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(path)
}

// MakeReadOnly removes the write bits from every file and directory under root (root included),
// keeping exec bits. It is a guard against accidents, not a security boundary (root ignores it).
func MakeReadOnly(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			return os.Chmod(p, info.Mode().Perm()&^0o222)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("make %s read-only: %w", root, err)
	}
	// Deepest first, so a parent is still writable while its children change.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i], 0o555); err != nil {
			return fmt.Errorf("make %s read-only: %w", dirs[i], err)
		}
	}
	return nil
}

// CopyFile copies the regular file src to dst, creating dst's directory and replacing dst
// if it exists. For files a program writes around a model (Blade's outputs), not for
// untrusted trees: those go through CopyTree and its caps.
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return out.Close()
}

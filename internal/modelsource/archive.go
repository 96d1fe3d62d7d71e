package modelsource

import (
	"archive/tar"
	"archive/zip"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// archiveKind names the archive format by file name: "tar.gz", "tar.bz2", "tar", "zip" or "".
func archiveKind(name string) string {
	n := strings.ToLower(name)
	switch {
	case strings.HasSuffix(n, ".tar.gz"), strings.HasSuffix(n, ".tgz"):
		return "tar.gz"
	case strings.HasSuffix(n, ".tar.bz2"), strings.HasSuffix(n, ".tbz2"):
		return "tar.bz2"
	case strings.HasSuffix(n, ".tar"):
		return "tar"
	case strings.HasSuffix(n, ".zip"):
		return "zip"
	}
	return ""
}

func archiveSuffix(name string) string {
	switch archiveKind(name) {
	case "tar.gz":
		return ".tar.gz"
	case "tar.bz2":
		return ".tar.bz2"
	case "tar":
		return ".tar"
	case "zip":
		return ".zip"
	}
	return ""
}

// unpack extracts the archive file src of the given kind into dst (an existing empty directory).
// name is the archive's name as the user knows it, for error messages.
func unpack(ctx context.Context, src, name, kind, dst string, lim *limits) error {
	var err error
	switch kind {
	case "zip":
		err = unzip(ctx, src, dst, lim)
	default:
		err = untarFile(ctx, src, kind, dst, lim)
	}
	if err != nil {
		return fmt.Errorf("unpack %s: %w", name, err)
	}
	return nil
}

func untarFile(ctx context.Context, src, kind, dst string, lim *limits) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	switch kind {
	case "tar.gz":
		gz, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("not a gzip file: %w", err)
		}
		defer gz.Close()
		r = gz
	case "tar.bz2":
		r = bzip2.NewReader(f)
	}
	return untar(ctx, r, dst, lim)
}

func untar(ctx context.Context, r io.Reader, dst string, lim *limits) error {
	tr := tar.NewReader(r)
	entries := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			if entries == 0 {
				return errors.New("archive is empty or not a tar archive")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("corrupt archive: %w", err)
		}
		entries++
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		rel, err := memberPath(h.Name)
		if err != nil {
			return err
		}
		if rel == "" {
			continue // "./" itself
		}
		if err := lim.addEntry(h.Name); err != nil {
			return err
		}
		target := filepath.Join(dst, filepath.FromSlash(rel))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := mkdirUnder(dst, rel); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old archivers still write TypeRegA
			if h.Size > lim.maxBytes-lim.bytes {
				return lim.errTooBig(h.Name)
			}
			if err := mkdirUnder(dst, path.Dir(rel)); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			if err := writeFile(ctx, target, tr, h.FileInfo().Mode(), lim, h.Name); err != nil {
				return corrupt(err)
			}
		case tar.TypeSymlink:
			return fmt.Errorf("%s: symbolic links are not allowed in model archives (points to %q)", h.Name, h.Linkname)
		case tar.TypeLink:
			return fmt.Errorf("%s: hard links are not allowed in model archives (points to %q)", h.Name, h.Linkname)
		default:
			return fmt.Errorf("%s: unsupported archive entry type %q (only files and directories)", h.Name, string(rune(h.Typeflag)))
		}
	}
}

func unzip(ctx context.Context, src, dst string, lim *limits) error {
	zr, err := zip.OpenReader(src)
	if err != nil {
		return fmt.Errorf("corrupt archive: %w", err)
	}
	defer zr.Close()
	if len(zr.File) == 0 {
		return errors.New("archive is empty")
	}
	for _, f := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := memberPath(f.Name)
		if err != nil {
			return err
		}
		if rel == "" {
			continue
		}
		if err := lim.addEntry(f.Name); err != nil {
			return err
		}
		mode := f.Mode()
		switch {
		case mode.IsDir():
			if err := mkdirUnder(dst, rel); err != nil {
				return fmt.Errorf("%s: %w", f.Name, err)
			}
		case mode&fs.ModeSymlink != 0:
			return fmt.Errorf("%s: symbolic links are not allowed in model archives", f.Name)
		case mode.IsRegular():
			// The declared size is only a hint (a bomb lies); copyCapped counts the real bytes.
			if f.UncompressedSize64 > uint64(lim.maxBytes-lim.bytes) {
				return lim.errTooBig(f.Name)
			}
			if err := mkdirUnder(dst, path.Dir(rel)); err != nil {
				return fmt.Errorf("%s: %w", f.Name, err)
			}
			if err := unzipOne(ctx, f, filepath.Join(dst, filepath.FromSlash(rel)), lim); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unsupported archive entry type %s (only files and directories)", f.Name, mode.Type())
		}
	}
	return nil
}

func unzipOne(ctx context.Context, f *zip.File, target string, lim *limits) error {
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("%s: corrupt archive: %w", f.Name, err)
	}
	defer rc.Close()
	if err := writeFile(ctx, target, rc, f.Mode(), lim, f.Name); err != nil {
		return corrupt(err)
	}
	return nil
}

// memberPath validates an archive member name and returns it cleaned and slash-separated,
// or "" for the archive root. Absolute names and names escaping the root with ".." are refused
// rather than silently rewritten, so a hostile archive is reported, not half-extracted.
func memberPath(name string) (string, error) {
	n := strings.ReplaceAll(name, "\\", "/")
	if n == "" {
		return "", errors.New("archive member with an empty name")
	}
	if strings.HasPrefix(n, "/") || (len(n) >= 2 && n[1] == ':') {
		return "", fmt.Errorf("%s: absolute paths are not allowed in model archives", name)
	}
	clean := path.Clean(n)
	if clean == "." {
		return "", nil
	}
	if !filepath.IsLocal(filepath.FromSlash(clean)) {
		return "", fmt.Errorf("%s: path escapes the model directory", name)
	}
	for _, el := range strings.Split(n, "/") {
		if el == ".." {
			return "", fmt.Errorf("%s: \"..\" is not allowed in model archive paths", name)
		}
	}
	return clean, nil
}

// mkdirUnder creates dst/rel and its parents. Extraction never creates symlinks, so every
// existing component is a real directory inside dst.
func mkdirUnder(dst, rel string) error {
	if rel == "." || rel == "" {
		return nil
	}
	return os.MkdirAll(filepath.Join(dst, filepath.FromSlash(rel)), 0o755)
}

// corrupt labels read failures while extracting (bad checksums, truncated data) as a corrupt
// archive; other errors (limits, duplicates) pass unchanged.
func corrupt(err error) error {
	var re *readError
	if errors.As(err, &re) {
		return fmt.Errorf("corrupt archive: %w", err)
	}
	return err
}

// UnpackFile extracts the archive file at src into dst (an existing, empty directory) under the
// same rules as a model_path archive: the format comes from name's suffix (.tar, .tar.gz, .tgz,
// .tar.bz2, .zip), only regular files and directories are allowed, no member may leave dst, and
// at most maxBytes (0: DefaultMaxBytes) and maxFiles (0: DefaultMaxFiles) are extracted.
func UnpackFile(ctx context.Context, src, name, dst string, maxBytes int64, maxFiles int) error {
	kind := archiveKind(name)
	if kind == "" {
		return fmt.Errorf("unpack %s: not a known archive name (.tar, .tar.gz, .tgz, .tar.bz2, .zip)", name)
	}
	o := Options{MaxBytes: maxBytes, MaxFiles: maxFiles}.withDefaults()
	return unpack(ctx, src, name, kind, dst, &limits{maxBytes: o.MaxBytes, maxFiles: o.MaxFiles})
}

package modelsource

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DigestPrefix starts every digest string.
const DigestPrefix = "sha256:"

// TreeDigest returns "sha256:<hex>" over the regular files under dir: for each file, in byte
// order of its slash-separated relative path, the path, whether it is executable, and the sha256
// of its content. Modification times, owners, other permission bits and empty directories do not
// count, so copies of the same model always get the same digest. Symbolic links and special files
// are an error (a model tree never holds them).
func TreeDigest(dir string) (string, error) {
	return TreeDigestFunc(dir, nil)
}

// TreeDigestFunc is TreeDigest where content, when not nil, may supply the bytes hashed for a
// file instead of its content on disk (return ok=false to hash the file itself). Bundles use it
// to hash a canonical form of their manifest.
func TreeDigestFunc(dir string, content func(rel string) (data []byte, ok bool, err error)) (string, error) {
	files, err := listFiles(dir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, rel := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		info, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("digest %s: %w", rel, err)
		}
		sum, err := fileSum(p, rel, content)
		if err != nil {
			return "", err
		}
		mode := "-"
		if info.Mode()&0o111 != 0 {
			mode = "x"
		}
		// rel cannot contain NUL, so the record is unambiguous: path NUL mode NUL hex LF.
		fmt.Fprintf(h, "%s\x00%s\x00%s\n", rel, mode, sum)
	}
	return DigestPrefix + hex.EncodeToString(h.Sum(nil)), nil
}

func fileSum(p, rel string, content func(string) ([]byte, bool, error)) (string, error) {
	fh := sha256.New()
	if content != nil {
		data, ok, err := content(rel)
		if err != nil {
			return "", fmt.Errorf("digest %s: %w", rel, err)
		}
		if ok {
			fh.Write(data)
			return hex.EncodeToString(fh.Sum(nil)), nil
		}
	}
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("digest %s: %w", rel, err)
	}
	defer f.Close()
	if _, err := io.Copy(fh, f); err != nil {
		return "", fmt.Errorf("digest %s: %w", rel, err)
	}
	return hex.EncodeToString(fh.Sum(nil)), nil
}

// listFiles returns the regular files under dir, slash-separated and sorted bytewise.
func listFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return nil
		case d.Type().IsRegular():
			files = append(files, rel)
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s: symbolic link in model tree", rel)
		default:
			return fmt.Errorf("%s: not a regular file (%s)", rel, d.Type())
		}
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	sort.Strings(files)
	return files, nil
}

// ListFiles returns the regular files under dir, slash-separated, relative to dir, sorted.
func ListFiles(dir string) ([]string, error) { return listFiles(dir) }

// ParseDigest checks a "sha256:<64 lowercase hex>" digest and returns the hex part.
func ParseDigest(digest string) (string, error) {
	hexPart, ok := strings.CutPrefix(digest, DigestPrefix)
	if !ok || len(hexPart) != 64 {
		return "", fmt.Errorf("digest %q: want sha256:<64 hex digits>", digest)
	}
	for _, c := range hexPart {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", fmt.Errorf("digest %q: want sha256:<64 lowercase hex digits>", digest)
		}
	}
	return hexPart, nil
}

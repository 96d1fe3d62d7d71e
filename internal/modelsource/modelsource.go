// Package modelsource fetches a service's model_path (a local path, file://, http://, https://,
// oss:// or s3://) into a fresh local directory, unpacks archives safely, and computes
// deterministic tree digests.
//
// Every fetch produces a private copy: a directory model_path is copied, never linked, so a user
// editing their files later cannot change a model that is already deployed.
package modelsource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/openeas/openeas/internal/objstore"
)

// Defaults for the Options limits.
const (
	DefaultMaxBytes int64 = 8 << 30 // 8 GiB of model files (uncompressed)
	DefaultMaxFiles       = 10000
)

// ErrUnsupported is returned (wrapped) for model_path schemes that are recognised but not available.
var ErrUnsupported = errors.New("unsupported model_path")

// Options configure Fetch. The zero value works apart from Dir, which is required.
type Options struct {
	// Dir is the scratch root; Fetch creates its own subdirectory there. It should be on the
	// same filesystem as the final model store so the result can be renamed into place.
	Dir string
	// MaxBytes caps the total size of the model tree (and of a downloaded archive). Default 8 GiB.
	MaxBytes int64
	// MaxFiles caps the number of files and directories in the model tree. Default 10000.
	MaxFiles int
	// HTTPClient is used for http(s) model paths; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Logger receives progress messages; nil means slog.Default().
	Logger *slog.Logger
	// OSS and S3 say where oss:// and s3:// model paths live and how to sign requests
	// (the zero value: anonymous AWS S3).
	OSS, S3 objstore.Config
	// ObjectCache, when set, keeps every downloaded object by identity (endpoint, bucket, key,
	// ETag, size), so fetching the same object again makes no download. It should be on the
	// same filesystem as Dir: fetched trees hard-link the cached files.
	ObjectCache string
	// ObjectCacheMaxBytes bounds the disk the object cache holds on its own (objects no fetched
	// model tree links to); the least recently used go first. 0: no bound.
	ObjectCacheMaxBytes int64
}

func (o Options) withDefaults() Options {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Fetched describes a fetched model tree.
type Fetched struct {
	// Dir is the root of the model tree: a new directory directly under Options.Dir that the
	// caller owns (move it into a store, or remove it). Fetch leaves nothing else there.
	Dir string
	// Digest is TreeDigest(Dir), "sha256:<hex>".
	Digest string
	// Files lists the regular files of the tree, slash-separated, relative to Dir, sorted.
	Files []string
	// Source is model_path with any credentials (user info, signature query values) removed,
	// fit for logs and manifests.
	Source string
	// Objects is how many objects an oss:// or s3:// model was made of, CachedObjects how
	// many of them came from Options.ObjectCache without a download, and DownloadedBytes what
	// was downloaded from object storage.
	Objects, CachedObjects int
	DownloadedBytes        int64
}

// Fetch copies, downloads and/or unpacks modelPath into a new directory under opts.Dir.
//
// Supported: a local file or directory, file:///abs/path, http://, https://, and
// oss://bucket/key or s3://bucket/key (a key ending in "/" is a directory: every object under
// it). Files whose name ends in .tar.gz, .tgz, .tar.bz2, .tar or .zip are unpacked; any other
// file becomes the single file of the tree, under its own name. Cancelling ctx stops a download
// or copy and removes the partial result.
func Fetch(ctx context.Context, modelPath string, opts Options) (*Fetched, error) {
	opts = opts.withDefaults()
	if opts.Dir == "" {
		return nil, errors.New("modelsource: Options.Dir (scratch directory) is required")
	}
	if strings.TrimSpace(modelPath) == "" {
		return nil, errors.New("model_path is empty")
	}
	source := Redact(modelPath)
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create scratch dir: %w", err)
	}
	tree, err := os.MkdirTemp(opts.Dir, "fetch-")
	if err != nil {
		return nil, fmt.Errorf("create scratch dir: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = RemoveAll(tree)
		}
	}()
	if err := os.Chmod(tree, 0o755); err != nil { // MkdirTemp makes it 0700
		return nil, fmt.Errorf("create scratch dir: %w", err)
	}
	lim := &limits{maxBytes: opts.MaxBytes, maxFiles: opts.MaxFiles}

	var st objectStats
	if err := fetchInto(ctx, modelPath, source, opts.Dir, tree, lim, opts, &st); err != nil {
		return nil, err
	}
	files, err := listFiles(tree)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("model_path %s: no files found", source)
	}
	digest, err := TreeDigest(tree)
	if err != nil {
		return nil, err
	}
	opts.Logger.Info("model fetched", "source", source, "files", len(files), "bytes", lim.bytes, "digest", digest)
	ok = true
	return &Fetched{Dir: tree, Digest: digest, Files: files, Source: source,
		Objects: st.objects, CachedObjects: st.cached, DownloadedBytes: st.downloaded}, nil
}

func fetchInto(ctx context.Context, modelPath, source, scratch, tree string, lim *limits, opts Options, st *objectStats) error {
	scheme := ""
	if i := strings.Index(modelPath, "://"); i > 0 {
		scheme = strings.ToLower(modelPath[:i])
	}
	switch scheme {
	case "":
		return fetchLocal(ctx, modelPath, source, tree, lim)
	case "file":
		u, err := url.Parse(modelPath)
		if err != nil {
			return fmt.Errorf("model_path %s: %w", source, err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return fmt.Errorf("model_path %s: file:// URLs must name a local absolute path (file:///path), got host %q", source, u.Host)
		}
		if u.Path == "" {
			return fmt.Errorf("model_path %s: file:// URL has no path", source)
		}
		return fetchLocal(ctx, u.Path, source, tree, lim)
	case "http", "https":
		return fetchHTTP(ctx, modelPath, source, scratch, tree, lim, opts)
	case "oss", "s3":
		return fetchObject(ctx, modelPath, scratch, tree, lim, opts, st)
	default:
		return fmt.Errorf("%w: model_path %s: scheme %q is not supported (use a local path, file://, http://, https://, oss:// or s3://)", ErrUnsupported, source, scheme)
	}
}

func fetchLocal(ctx context.Context, p, source, tree string, lim *limits) error {
	if !filepath.IsAbs(p) {
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("model_path %s: %w", source, err)
		}
		p = abs
	}
	// Stat follows a symlink given as model_path itself: the user named it on purpose.
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("model_path %s: no such file or directory", source)
		}
		return fmt.Errorf("model_path %s: %w", source, err)
	}
	switch {
	case fi.IsDir():
		return copyTree(ctx, p, tree, lim)
	case fi.Mode().IsRegular():
		if kind := archiveKind(p); kind != "" {
			return unpack(ctx, p, filepath.Base(p), kind, tree, lim)
		}
		return copyOne(ctx, p, filepath.Join(tree, filepath.Base(p)), fi.Mode(), lim)
	default:
		return fmt.Errorf("model_path %s: not a regular file or directory", source)
	}
}

// Redact returns modelPath with credentials removed: URL user info is dropped and the values
// of query parameters that look like secrets (signatures, tokens, keys) are replaced.
func Redact(modelPath string) string {
	if !strings.Contains(modelPath, "://") {
		return modelPath
	}
	u, err := url.Parse(modelPath)
	if err != nil {
		// Unparseable: keep only the scheme so no secret can leak through a log line.
		return modelPath[:strings.Index(modelPath, "://")] + "://(unparseable)"
	}
	u.User = nil
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if secretParam(k) {
				q[k] = []string{"REDACTED"}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func secretParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"sig", "token", "key", "secret", "credential", "password", "auth", "security"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// urlFileName is the file name a download is saved under: the last path element, unescaped.
func urlFileName(u *url.URL) string {
	name := path.Base(u.Path)
	if name == "/" || name == "." || name == "" || !filepath.IsLocal(name) {
		return "model"
	}
	return name
}

package modelsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/openeas/openeas/internal/objstore"
)

// objectStats counts what an object-storage fetch read; Fetch reports it in Fetched.
type objectStats struct {
	objects    int   // objects the model is made of
	cached     int   // of which served by the object cache (no download)
	downloaded int64 // bytes downloaded
}

// fetchObject fetches oss://bucket/key or s3://bucket/key: a single object (unpacked when its
// name is an archive's) or, for a key ending in "/", every object under that prefix as a
// directory tree. A key without the trailing slash that names no object but is a prefix of
// some is taken as a directory too.
func fetchObject(ctx context.Context, modelPath, scratch, tree string, lim *limits, opts Options, st *objectStats) error {
	loc, err := objstore.ParseURL(modelPath)
	if err != nil {
		return fmt.Errorf("model_path: %w", err)
	}
	cfg := opts.OSS
	if loc.Scheme == "s3" {
		cfg = opts.S3
	}
	cfg.Scheme = loc.Scheme
	if cfg.Logger == nil {
		cfg.Logger = opts.Logger
	}
	cl, err := objstore.New(cfg)
	if err != nil {
		return fmt.Errorf("model_path %s: %w", loc, err)
	}
	opts.Logger.Info("fetching model from object storage", "source", loc.String(), "store", cfg)
	if !loc.IsPrefix() {
		obj, err := cl.Stat(ctx, loc.Bucket, loc.Key)
		if errors.Is(err, objstore.ErrNotFound) {
			// "oss://b/models/ocr" often means the folder models/ocr/.
			if objs, lerr := cl.List(ctx, loc.Bucket, loc.Key+"/"); lerr == nil && len(objs) > 0 {
				return fetchObjectDir(ctx, cl, loc.Key+"/", objs, scratch, tree, lim, opts, st)
			}
		}
		if err != nil {
			return err
		}
		return fetchObjectFile(ctx, cl, obj, scratch, tree, lim, opts, st)
	}
	objs, err := cl.List(ctx, loc.Bucket, loc.Key)
	if err != nil {
		return err
	}
	if len(objs) == 0 {
		return fmt.Errorf("model_path %s: no objects under this prefix at %s", loc, cl.Endpoint())
	}
	return fetchObjectDir(ctx, cl, loc.Key, objs, scratch, tree, lim, opts, st)
}

func fetchObjectFile(ctx context.Context, cl *objstore.Client, obj objstore.Object, scratch, tree string, lim *limits, opts Options, st *objectStats) error {
	name := path.Base(obj.Key)
	if !filepath.IsLocal(name) {
		name = "model"
	}
	if obj.Size > lim.maxBytes {
		return lim.errTooBig(name)
	}
	local, cleanup, err := obtainObject(ctx, cl, obj, scratch, opts, st)
	if err != nil {
		return err
	}
	defer cleanup()
	if kind := archiveKind(name); kind != "" {
		return unpack(ctx, local, name, kind, tree, lim)
	}
	return placeObject(ctx, local, filepath.Join(tree, name), obj.Size, lim, name)
}

func fetchObjectDir(ctx context.Context, cl *objstore.Client, prefix string, objs []objstore.Object, scratch, tree string, lim *limits, opts Options, st *objectStats) error {
	// Check names and limits before downloading anything.
	rels := make([]string, len(objs))
	var total int64
	for i, o := range objs {
		rel, err := memberPath(strings.TrimPrefix(o.Key, prefix))
		if err != nil {
			return fmt.Errorf("object %s: %w", o.Key, err)
		}
		if rel == "" {
			return fmt.Errorf("object %s: empty name under the prefix", o.Key)
		}
		rels[i] = rel
		total += o.Size
		if total > lim.maxBytes {
			return lim.errTooBig(rel)
		}
	}
	if len(objs) > lim.maxFiles {
		return fmt.Errorf("%s: model has more than %d files (limit)", prefix, lim.maxFiles)
	}
	for i, o := range objs {
		rel := rels[i]
		if err := mkdirUnder(tree, path.Dir(rel)); err != nil {
			return fmt.Errorf("object %s: %w", o.Key, err)
		}
		local, cleanup, err := obtainObject(ctx, cl, o, scratch, opts, st)
		if err != nil {
			return err
		}
		err = placeObject(ctx, local, filepath.Join(tree, filepath.FromSlash(rel)), o.Size, lim, rel)
		cleanup()
		if err != nil {
			return err
		}
	}
	return nil
}

// obtainObject returns a local file holding the object's verified content: the object cache's
// copy when it has one (no GET at all), else a fresh download, kept in the cache when there is
// one. Downloads land in scratch first (emptied at easd start, so a crash leaves no partial
// file in the cache) and are renamed into the cache once verified. cleanup removes a download
// that is not in the cache.
func obtainObject(ctx context.Context, cl *objstore.Client, obj objstore.Object, scratch string, opts Options, st *objectStats) (string, func(), error) {
	st.objects++
	noop := func() {}
	var cached string
	if opts.ObjectCache != "" {
		cached = filepath.Join(opts.ObjectCache, objectCacheKey(cl.Endpoint(), obj))
		if fi, err := os.Stat(cached); err == nil && fi.Mode().IsRegular() && fi.Size() == obj.Size {
			st.cached++
			touchObject(cached)
			opts.Logger.Info("model object from cache (not downloaded again)", "object", obj.Bucket+"/"+obj.Key,
				"etag", obj.ETag, "bytes", obj.Size)
			return cached, noop, nil
		}
		if err := os.MkdirAll(opts.ObjectCache, 0o755); err != nil {
			return "", noop, fmt.Errorf("object cache: %w", err)
		}
	}
	f, err := os.CreateTemp(scratch, "download-*")
	if err != nil {
		return "", noop, fmt.Errorf("download %s: %w", obj.Key, err)
	}
	tmp := f.Name()
	opts.Logger.Info("downloading model object", "object", obj.Bucket+"/"+obj.Key, "bytes", obj.Size)
	err = cl.Download(ctx, obj, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", noop, err
	}
	st.downloaded += obj.Size
	drop := func() { os.Remove(tmp) }
	if cached == "" {
		return tmp, drop, nil
	}
	// Read-only, since fetched trees hard-link it; renamed last so the cache only ever
	// holds complete, verified objects (a concurrent identical download simply replaces it).
	if err := os.Chmod(tmp, 0o444); err != nil {
		return tmp, drop, nil
	}
	if err := os.Rename(tmp, cached); err != nil {
		// Not fatal: the download is good, only the next fetch will download again.
		opts.Logger.Warn("object cache: cannot keep the download (cache and scratch on different filesystems?)", "error", err)
		return tmp, drop, nil
	}
	trimObjectCache(opts.ObjectCache, opts.ObjectCacheMaxBytes, cached, opts.Logger)
	return cached, noop, nil
}

// objectCacheKey names an object's cache file by its identity: endpoint, bucket, key, ETag and
// size. The endpoint is part of it so a server that lies about ETags cannot plant content that
// another endpoint's object of the same name would then be served from.
func objectCacheKey(endpoint string, obj objstore.Object) string {
	h := sha256.New()
	for _, s := range []string{strings.ToLower(endpoint), obj.Bucket, obj.Key, strings.ToLower(obj.ETag), strconv.FormatInt(obj.Size, 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// placeObject puts the verified file src at dst inside the tree: a hard link when src is in
// the object cache on the same filesystem (no copy of a multi-GB model), else a copy.
func placeObject(ctx context.Context, src, dst string, size int64, lim *limits, name string) error {
	if err := lim.addEntry(name); err != nil {
		return err
	}
	if size > lim.maxBytes-lim.bytes {
		return lim.errTooBig(name)
	}
	if err := os.Link(src, dst); err == nil {
		lim.bytes += size
		return nil
	} else if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: duplicate entry", name)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	defer in.Close()
	return writeFile(ctx, dst, in, 0o644, lim, name)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/openeas/openeas/internal/objstore"
)

// OSSEnv is the object-storage settings eascmd takes from its environment.
type OSSEnv struct {
	Endpoint, Bucket, AccessKeyID, AccessKeySecret string
}

// runUpload puts a file (or every file of a directory) into the configured bucket, creating
// the bucket when it does not exist, and prints the oss:// path to use as model_path.
func runUpload(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("upload")
	bucket := fs.String("bucket", "", "`bucket` to upload to (default: oss_bucket from eascmd config, or EAS_OSS_BUCKET)")
	key := fs.String("key", "", "object `key` (default: the file name; for a directory, its name followed by /)")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	src := pos[0]
	cfg, err := loadConfig(c.configPath)
	if err != nil {
		return err
	}
	env := c.opts.EnvOSS
	for _, f := range []struct {
		dst *string
		v   string
	}{
		{&cfg.OSSEndpoint, env.Endpoint}, {&cfg.OSSBucket, env.Bucket},
		{&cfg.OSSAccessKeyID, env.AccessKeyID}, {&cfg.OSSAccessKeySecret, env.AccessKeySecret},
	} {
		if f.v != "" {
			*f.dst = f.v
		}
	}
	if *bucket != "" {
		cfg.OSSBucket = *bucket
	}
	if cfg.OSSBucket == "" {
		return usagef("eascmd upload: no bucket: pass --bucket, set EAS_OSS_BUCKET, or save one with 'eascmd config --oss-bucket B'")
	}
	if cfg.OSSEndpoint == "" {
		return errors.New("eascmd upload: no object storage endpoint: run 'eascmd config --oss-endpoint HOST' or set EAS_OSS_ENDPOINT")
	}
	if _, err := objstore.ParseURL("oss://" + cfg.OSSBucket + "/"); err != nil {
		return usagef("eascmd upload: %v", err)
	}
	info, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("eascmd upload: %w", err)
	}
	files, err := uploadList(src, info)
	if err != nil {
		return err
	}
	target := *key
	if target == "" {
		target = filepath.Base(filepath.Clean(src))
		if info.IsDir() {
			target += "/"
		}
	}
	target = strings.TrimPrefix(target, "/")
	if info.IsDir() && !strings.HasSuffix(target, "/") {
		target += "/"
	}
	if !info.IsDir() && strings.HasSuffix(target, "/") {
		target += filepath.Base(src)
	}
	if _, err := objstore.ParseURL("oss://" + cfg.OSSBucket + "/" + target); err != nil {
		return usagef("eascmd upload: --key %q: %v", *key, err)
	}

	cl, err := objstore.New(objstore.Config{
		Endpoint: cfg.OSSEndpoint, AccessKeyID: cfg.OSSAccessKeyID, SecretAccessKey: cfg.OSSAccessKeySecret,
		Addressing: cfg.OSSAddressing, Scheme: "oss",
	})
	if err != nil {
		return err
	}
	if err := cl.EnsureBucket(ctx, cfg.OSSBucket); err != nil {
		return err
	}
	fmt.Fprintf(c.opts.Stdout, "[OK] oss endpoint:    [%s]\n", cfg.OSSEndpoint)
	var total int64
	for _, f := range files {
		k := target
		if info.IsDir() {
			k = target + f.rel
		}
		obj, err := cl.Upload(ctx, cfg.OSSBucket, k, f.path, nil)
		if err != nil {
			return err
		}
		total += obj.Size
	}
	fmt.Fprintf(c.opts.Stdout, "[OK] oss target path: [oss://%s/%s]\n", cfg.OSSBucket, target)
	fmt.Fprintf(c.opts.Stdout, "Succeed: Total num: %d, size: %d. OK num: %d\n", len(files), total, len(files))
	return nil
}

type uploadFile struct{ path, rel string }

// uploadList is the file itself, or the regular files under a directory (slash-separated
// relative names); symbolic links and special files are refused, as for a model directory.
func uploadList(src string, info fs.FileInfo) ([]uploadFile, error) {
	if info.Mode().IsRegular() {
		return []uploadFile{{path: src, rel: filepath.Base(src)}}, nil
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("eascmd upload: %s: not a regular file or directory", src)
	}
	var out []uploadFile
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return nil
		case d.Type().IsRegular():
			out = append(out, uploadFile{path: p, rel: path.Clean(filepath.ToSlash(rel))})
			return nil
		default:
			return fmt.Errorf("%s: not a regular file (symbolic links are not uploaded)", filepath.ToSlash(rel))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("eascmd upload: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("eascmd upload: %s: no files to upload", src)
	}
	return out, nil
}

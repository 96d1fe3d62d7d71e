package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/objstore/miniotest"
)

func TestUpload(t *testing.T) {
	srv := miniotest.Start(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.json")
	// The bucket comes from the config file, the secret from the environment.
	err := Run(context.Background(), Options{Args: []string{"--config", cfgPath, "config",
		"--oss-endpoint", srv.Endpoint(), "--oss-bucket", "models", "--oss-access-key-id", srv.AccessKey}})
	if err != nil {
		t.Fatal(err)
	}
	var shown bytes.Buffer
	if err := Run(context.Background(), Options{Args: []string{"--config", cfgPath, "config"}, Stdout: &shown}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(shown.String(), "OSS Bucket: models") {
		t.Errorf("config shows:\n%s", shown.String())
	}
	env := OSSEnv{AccessKeySecret: srv.SecretKey}

	model := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(model, []byte("onnx-bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "ocr")
	for name, body := range map[string]string{"cls.onnx": "cls", "sub/keys.txt": "a\nb\n"} {
		p := filepath.Join(tree, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pathRE := regexp.MustCompile(`\[OK\] oss target path: \[(oss://[^\]]+)\]`)
	cases := []struct {
		name  string
		args  []string
		want  string
		files map[string]string // key -> content
	}{
		{"file, bucket from config", []string{model}, "oss://models/model.onnx", map[string]string{"model.onnx": "onnx-bytes"}},
		{"file, new bucket and key", []string{model, "--bucket", "fresh-bucket", "--key", "v1/m.onnx"}, "oss://fresh-bucket/v1/m.onnx", nil},
		{"key ending in slash", []string{model, "--key", "v2/"}, "oss://models/v2/model.onnx", nil},
		{"directory", []string{tree}, "oss://models/ocr/", map[string]string{"ocr/cls.onnx": "cls", "ocr/sub/keys.txt": "a\nb\n"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := Run(context.Background(), Options{Args: append([]string{"--config", cfgPath, "upload"}, tc.args...),
				EnvOSS: env, Stdout: &out, Stderr: &errOut})
			if err != nil {
				t.Fatalf("%v\n%s", err, errOut.String())
			}
			m := pathRE.FindStringSubmatch(out.String())
			if m == nil || m[1] != tc.want {
				t.Fatalf("output:\n%s\nwant target path %s", out.String(), tc.want)
			}
			bucket := strings.SplitN(strings.TrimPrefix(tc.want, "oss://"), "/", 2)[0]
			for key, body := range tc.files {
				obj, err := srv.Client(t).Stat(context.Background(), bucket, key)
				if err != nil || obj.Size != int64(len(body)) {
					t.Errorf("object %s: %+v, %v", key, obj, err)
				}
			}
			if strings.Contains(out.String()+errOut.String(), srv.SecretKey) {
				t.Error("the secret key was printed")
			}
		})
	}

	bad := []struct {
		name string
		args []string
		env  OSSEnv
		want string
	}{
		{"no such file", []string{filepath.Join(dir, "missing.onnx")}, env, "no such file or directory"},
		{"bad bucket name", []string{model, "--bucket", "Bad_Bucket"}, env, `bucket name "Bad_Bucket"`},
		{"wrong secret", []string{model}, OSSEnv{AccessKeySecret: "wrong"}, "access denied"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(context.Background(), Options{Args: append([]string{"--config", cfgPath, "upload"}, tc.args...), EnvOSS: tc.env})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("no bucket", func(t *testing.T) {
		err := Run(context.Background(), Options{Args: []string{"--config", filepath.Join(dir, "none.json"), "upload", model},
			EnvOSS: OSSEnv{Endpoint: srv.Endpoint()}})
		if err == nil || !strings.Contains(err.Error(), "no bucket") {
			t.Fatalf("err = %v", err)
		}
	})
}

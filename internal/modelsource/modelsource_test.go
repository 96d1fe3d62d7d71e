package modelsource

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// entry is one member of a test archive.
type entry struct {
	name, body, link string
	typ              byte // tar type; 0 = regular file
	mode             int64
}

func buildTar(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg, Linkname: e.link}
		if e.mode != 0 {
			h.Mode = e.mode
		}
		if e.typ != 0 {
			h.Typeflag = e.typ
			if e.typ != tar.TypeReg {
				h.Size = 0
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func buildZip(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		mode := os.FileMode(0o644)
		if e.mode != 0 {
			mode = os.FileMode(e.mode)
		}
		if e.typ == tar.TypeSymlink {
			mode = os.ModeSymlink | 0o777
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		body := e.body
		if e.typ == tar.TypeSymlink {
			body = e.link
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func putFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := ListFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		out[f] = string(b)
	}
	return out
}

// fetchOpts gives each test its own scratch root and checks nothing is left behind on failure.
func fetchOpts(t *testing.T) Options {
	return Options{Dir: filepath.Join(t.TempDir(), "scratch"), Logger: slog.New(slog.DiscardHandler)}
}

func assertNoLeftovers(t *testing.T, scratch string) {
	t.Helper()
	ents, err := os.ReadDir(scratch)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("failed fetch left %d entries in the scratch dir", len(ents))
	}
}

var modelEntries = []entry{
	{name: "model/", typ: tar.TypeDir},
	{name: "model/m.onnx", body: "onnx-bytes"},
	{name: "model/run.sh", body: "#!/bin/sh\n", mode: 0o755},
}

var wantModel = map[string]string{"model/m.onnx": "onnx-bytes", "model/run.sh": "#!/bin/sh\n"}

func TestFetchArchives(t *testing.T) {
	src := t.TempDir()
	tarData := buildTar(t, modelEntries)
	files := map[string][]byte{
		"m.tar":    tarData,
		"m.tar.gz": gz(t, tarData),
		"m.tgz":    gz(t, tarData),
		"m.zip":    buildZip(t, modelEntries),
	}
	bz2, err := os.ReadFile("testdata/model.tar.bz2")
	if err != nil {
		t.Fatal(err)
	}
	files["m.tar.bz2"] = bz2
	var digests []string
	for name, data := range files {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(src, name)
			putFile(t, p, data, 0o644)
			f, err := Fetch(context.Background(), p, fetchOpts(t))
			if err != nil {
				t.Fatal(err)
			}
			if got := readTree(t, f.Dir); !reflect.DeepEqual(got, wantModel) {
				t.Errorf("tree = %v, want %v", got, wantModel)
			}
			if !reflect.DeepEqual(f.Files, []string{"model/m.onnx", "model/run.sh"}) {
				t.Errorf("Files = %v", f.Files)
			}
			info, err := os.Stat(filepath.Join(f.Dir, "model/run.sh"))
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode()&0o100 == 0 {
				t.Errorf("run.sh lost its exec bit: %v", info.Mode())
			}
			digests = append(digests, f.Digest)
		})
	}
	// Every format carries the same tree, so every digest must agree.
	for _, d := range digests[1:] {
		if d != digests[0] {
			t.Errorf("digests differ across archive formats: %v", digests)
		}
	}
}

func TestFetchArchiveAttacks(t *testing.T) {
	big := strings.Repeat("\x00", 4<<20) // compresses to a few KiB
	tests := []struct {
		name    string
		file    string
		data    func(t *testing.T) []byte
		opts    func(o *Options)
		wantErr string
	}{
		{"tar parent escape", "a.tar.gz", func(t *testing.T) []byte {
			return gz(t, buildTar(t, []entry{{name: "ok.onnx", body: "x"}, {name: "../x", body: "evil"}}))
		}, nil, `../x: path escapes the model directory`},
		{"tar inner escape", "a.tar", func(t *testing.T) []byte {
			return buildTar(t, []entry{{name: "a/../../x", body: "evil"}})
		}, nil, `a/../../x: path escapes`},
		{"tar dotdot that stays inside", "a.tar", func(t *testing.T) []byte {
			return buildTar(t, []entry{{name: "a/../x", body: "evil"}})
		}, nil, `a/../x: ".." is not allowed`},
		{"tar absolute", "a.tar", func(t *testing.T) []byte {
			return buildTar(t, []entry{{name: "/etc/evil", body: "evil"}})
		}, nil, `/etc/evil: absolute paths are not allowed`},
		{"tar symlink", "a.tgz", func(t *testing.T) []byte {
			return gz(t, buildTar(t, []entry{{name: "m.onnx", typ: tar.TypeSymlink, link: "/etc/passwd"}}))
		}, nil, `m.onnx: symbolic links are not allowed in model archives (points to "/etc/passwd")`},
		{"tar hardlink", "a.tar", func(t *testing.T) []byte {
			return buildTar(t, []entry{{name: "a", body: "x"}, {name: "b", typ: tar.TypeLink, link: "a"}})
		}, nil, `b: hard links are not allowed`},
		{"tar fifo", "a.tar", func(t *testing.T) []byte {
			return buildTar(t, []entry{{name: "p", typ: tar.TypeFifo}})
		}, nil, `p: unsupported archive entry type`},
		{"tar duplicate", "a.tar", func(t *testing.T) []byte {
			return buildTar(t, []entry{{name: "a", body: "x"}, {name: "./a", body: "y"}})
		}, nil, `./a: duplicate entry`},
		{"gzip bomb", "a.tar.gz", func(t *testing.T) []byte {
			return gz(t, buildTar(t, []entry{{name: "zeros.onnx", body: big}}))
		}, func(o *Options) { o.MaxBytes = 1 << 20 }, `zeros.onnx: model is larger than 1048576 bytes (limit)`},
		{"gzip bomb over several files", "a.tar.gz", func(t *testing.T) []byte {
			return gz(t, buildTar(t, []entry{{name: "a", body: big[:600<<10]}, {name: "b", body: big[:600<<10]}}))
		}, func(o *Options) { o.MaxBytes = 1 << 20 }, `b: model is larger than 1048576 bytes`},
		{"too many files", "a.tar", func(t *testing.T) []byte {
			return buildTar(t, []entry{{name: "a", body: "1"}, {name: "b", body: "2"}, {name: "c", body: "3"}})
		}, func(o *Options) { o.MaxFiles = 2 }, `c: model has more than 2 files`},
		{"truncated gzip", "a.tar.gz", func(t *testing.T) []byte {
			d := gz(t, buildTar(t, []entry{{name: "m.onnx", body: strings.Repeat("abcdefgh", 4096)}}))
			return d[:len(d)/2]
		}, nil, `unpack a.tar.gz: corrupt archive`},
		{"not gzip", "a.tar.gz", func(t *testing.T) []byte { return []byte("hello, not gzip") }, nil, `unpack a.tar.gz: not a gzip file`},
		{"not tar", "a.tar", func(t *testing.T) []byte { return bytes.Repeat([]byte("garbage!"), 200) }, nil, `unpack a.tar: corrupt archive`},
		{"empty tar", "a.tar", func(t *testing.T) []byte { return buildTar(t, nil) }, nil, `archive is empty`},
		{"zip escape", "a.zip", func(t *testing.T) []byte {
			return buildZip(t, []entry{{name: "../../x", body: "evil"}})
		}, nil, `../../x: path escapes the model directory`},
		{"zip absolute", "a.zip", func(t *testing.T) []byte {
			return buildZip(t, []entry{{name: "/tmp/x", body: "evil"}})
		}, nil, `/tmp/x: absolute paths are not allowed`},
		{"zip symlink", "a.zip", func(t *testing.T) []byte {
			return buildZip(t, []entry{{name: "m.onnx", typ: tar.TypeSymlink, link: "../../etc/passwd"}})
		}, nil, `m.onnx: symbolic links are not allowed`},
		{"zip bomb", "a.zip", func(t *testing.T) []byte {
			return buildZip(t, []entry{{name: "zeros.onnx", body: big}})
		}, func(o *Options) { o.MaxBytes = 1 << 20 }, `zeros.onnx: model is larger than 1048576 bytes`},
		{"zip corrupt", "a.zip", func(t *testing.T) []byte { return []byte("PK\x03\x04 but not really a zip") }, nil, `unpack a.zip: corrupt archive`},
		{"zip bad checksum", "a.zip", func(t *testing.T) []byte {
			d := buildZip(t, []entry{{name: "m.onnx", body: strings.Repeat("model ", 1000)}})
			i := bytes.Index(d, []byte("m.onnx")) + len("m.onnx") + 10
			d[i] ^= 0xff // flip a byte of the compressed data
			return d
		}, nil, `corrupt archive`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), tc.file)
			putFile(t, p, tc.data(t), 0o644)
			opts := fetchOpts(t)
			if tc.opts != nil {
				tc.opts(&opts)
			}
			_, err := Fetch(context.Background(), p, opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			assertNoLeftovers(t, opts.Dir)
			if _, err := os.Stat(filepath.Join(filepath.Dir(p), "x")); err == nil {
				t.Error("archive wrote outside the model directory")
			}
		})
	}
}

func TestFetchLocal(t *testing.T) {
	src := t.TempDir()
	putFile(t, filepath.Join(src, "dir", "m.onnx"), []byte("v1"), 0o644)
	putFile(t, filepath.Join(src, "dir", "sub", "vocab.txt"), []byte("a b"), 0o644)
	putFile(t, filepath.Join(src, "single.onnx"), []byte("single"), 0o644)

	t.Run("directory is copied", func(t *testing.T) {
		f, err := Fetch(context.Background(), filepath.Join(src, "dir"), fetchOpts(t))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"m.onnx": "v1", "sub/vocab.txt": "a b"}
		if got := readTree(t, f.Dir); !reflect.DeepEqual(got, want) {
			t.Fatalf("tree = %v", got)
		}
		// The user changes their files after deploying: the fetched copy must not change.
		putFile(t, filepath.Join(src, "dir", "m.onnx"), []byte("v2"), 0o644)
		if got := readTree(t, f.Dir)["m.onnx"]; got != "v1" {
			t.Errorf("fetched model changed with its source: %q", got)
		}
		if d, _ := TreeDigest(f.Dir); d != f.Digest {
			t.Errorf("Digest %s != TreeDigest %s", f.Digest, d)
		}
	})
	t.Run("single file", func(t *testing.T) {
		f, err := Fetch(context.Background(), filepath.Join(src, "single.onnx"), fetchOpts(t))
		if err != nil {
			t.Fatal(err)
		}
		if got := readTree(t, f.Dir); !reflect.DeepEqual(got, map[string]string{"single.onnx": "single"}) {
			t.Fatalf("tree = %v", got)
		}
	})
	t.Run("file URL", func(t *testing.T) {
		f, err := Fetch(context.Background(), "file://"+filepath.Join(src, "dir"), fetchOpts(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Files) != 2 {
			t.Fatalf("Files = %v", f.Files)
		}
		if f.Source != "file://"+filepath.Join(src, "dir") {
			t.Errorf("Source = %q", f.Source)
		}
	})
	t.Run("symlink inside directory refused", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "m")
		putFile(t, filepath.Join(dir, "m.onnx"), []byte("x"), 0o644)
		if err := os.Symlink("/etc/passwd", filepath.Join(dir, "leak")); err != nil {
			t.Fatal(err)
		}
		opts := fetchOpts(t)
		_, err := Fetch(context.Background(), dir, opts)
		if err == nil || !strings.Contains(err.Error(), "leak: symbolic links are not allowed") {
			t.Fatalf("err = %v", err)
		}
		assertNoLeftovers(t, opts.Dir)
	})
	t.Run("directory over the size cap", func(t *testing.T) {
		opts := fetchOpts(t)
		opts.MaxBytes = 3
		_, err := Fetch(context.Background(), filepath.Join(src, "dir"), opts)
		if err == nil || !strings.Contains(err.Error(), "larger than 3 bytes") {
			t.Fatalf("err = %v", err)
		}
	})

	errs := []struct{ path, want string }{
		{filepath.Join(src, "missing"), "no such file or directory"},
		{"file://" + filepath.Join(src, "missing.tar.gz"), "no such file or directory"},
		{"file://host/x", `must name a local absolute path`},
		{"oss://b/m.onnx", `bucket name "b": want 3 to 63 characters`},
		{"oss://user:pw@bucket/m.onnx", "credentials in the URL are not allowed"},
		{"s3://bucket/m.onnx?x=1", "query strings and fragments are not allowed"},
		{"s3://bucket//m.onnx", "empty path element in key"},
		{"ftp://host/m.onnx", `scheme "ftp" is not supported`},
		{"", "model_path is empty"},
		{filepath.Join(t.TempDir()), "no files found"},
	}
	for _, tc := range errs {
		t.Run("error "+tc.path, func(t *testing.T) {
			_, err := Fetch(context.Background(), tc.path, fetchOpts(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := Fetch(context.Background(), "ftp://host/m", fetchOpts(t)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ftp error %v is not ErrUnsupported", err)
	}
}

func TestFetchHTTP(t *testing.T) {
	tgz := gz(t, buildTar(t, modelEntries))
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/m.tar.gz", func(w http.ResponseWriter, r *http.Request) { w.Write(tgz) })
	mux.HandleFunc("/bad.zip", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "not a zip") })
	mux.HandleFunc("/models/m.onnx", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "plain-model") })
	mux.HandleFunc("/missing.onnx", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "NoSuchKey: the object does not exist", http.StatusNotFound)
	})
	mux.HandleFunc("/endless.onnx", func(w http.ResponseWriter, r *http.Request) {
		// No Content-Length: the cap must be enforced while streaming.
		chunk := make([]byte, 64<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/big.onnx", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "999999999")
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("/hang.onnx", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)

	t.Run("archive", func(t *testing.T) {
		f, err := Fetch(context.Background(), srv.URL+"/m.tar.gz", fetchOpts(t))
		if err != nil {
			t.Fatal(err)
		}
		if got := readTree(t, f.Dir); !reflect.DeepEqual(got, wantModel) {
			t.Fatalf("tree = %v", got)
		}
		// The downloaded archive itself must not stay next to the tree.
		if ents, _ := os.ReadDir(filepath.Dir(f.Dir)); len(ents) != 1 {
			t.Errorf("scratch dir holds %d entries, want only the model", len(ents))
		}
	})
	t.Run("plain file and redacted source", func(t *testing.T) {
		u := strings.Replace(srv.URL, "http://", "http://user:s3cret@", 1) + "/models/m.onnx?Signature=abc&Expires=1"
		f, err := Fetch(context.Background(), u, fetchOpts(t))
		if err != nil {
			t.Fatal(err)
		}
		if got := readTree(t, f.Dir); !reflect.DeepEqual(got, map[string]string{"m.onnx": "plain-model"}) {
			t.Fatalf("tree = %v", got)
		}
		if strings.Contains(f.Source, "s3cret") || strings.Contains(f.Source, "user") || strings.Contains(f.Source, "abc") {
			t.Errorf("Source leaks credentials: %s", f.Source)
		}
		if !strings.Contains(f.Source, "Expires=1") {
			t.Errorf("Source lost a harmless parameter: %s", f.Source)
		}
	})
	t.Run("corrupt archive named by its URL", func(t *testing.T) {
		opts := fetchOpts(t)
		_, err := Fetch(context.Background(), srv.URL+"/bad.zip", opts)
		if err == nil || !strings.Contains(err.Error(), "unpack bad.zip: corrupt archive") {
			t.Fatalf("err = %v", err)
		}
		assertNoLeftovers(t, opts.Dir)
	})
	t.Run("status error quoted", func(t *testing.T) {
		opts := fetchOpts(t)
		_, err := Fetch(context.Background(), srv.URL+"/missing.onnx", opts)
		if err == nil || !strings.Contains(err.Error(), `"404 Not Found"`) || !strings.Contains(err.Error(), "NoSuchKey") {
			t.Fatalf("err = %v", err)
		}
		assertNoLeftovers(t, opts.Dir)
	})
	t.Run("streamed size cap", func(t *testing.T) {
		opts := fetchOpts(t)
		opts.MaxBytes = 1 << 20
		_, err := Fetch(context.Background(), srv.URL+"/endless.onnx", opts)
		if err == nil || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
			t.Fatalf("err = %v", err)
		}
		assertNoLeftovers(t, opts.Dir)
	})
	t.Run("declared size over cap", func(t *testing.T) {
		opts := fetchOpts(t)
		opts.MaxBytes = 1 << 20
		_, err := Fetch(context.Background(), srv.URL+"/big.onnx", opts)
		if err == nil || !strings.Contains(err.Error(), "size 999999999 bytes exceeds the limit") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		opts := fetchOpts(t)
		done := make(chan error, 1)
		go func() {
			_, err := Fetch(ctx, srv.URL+"/hang.onnx", opts)
			done <- err
		}()
		// Cancel once the download is under way (the scratch dir then exists).
		for {
			if ents, _ := os.ReadDir(opts.Dir); len(ents) > 0 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		err := <-done
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		assertNoLeftovers(t, opts.Dir)
	})
	t.Run("connection refused", func(t *testing.T) {
		_, err := Fetch(context.Background(), "http://u:pw@127.0.0.1:1/m.onnx?token=zzz", fetchOpts(t))
		if err == nil || strings.Contains(err.Error(), "zzz") || strings.Contains(err.Error(), "pw@") {
			t.Fatalf("err = %v (want an error without credentials)", err)
		}
	})
}

func TestTreeDigest(t *testing.T) {
	mk := func(t *testing.T, files map[string]string) string {
		dir := t.TempDir()
		for name, body := range files {
			putFile(t, filepath.Join(dir, filepath.FromSlash(name)), []byte(body), 0o644)
		}
		return dir
	}
	base := map[string]string{"m.onnx": "weights", "sub/a.txt": "a", "sub.txt": "b"}
	d1, err := TreeDigest(mk(t, base))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("same content different mtimes", func(t *testing.T) {
		dir := mk(t, base)
		old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := os.Chtimes(filepath.Join(dir, "m.onnx"), old, old); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, "sub.txt"), 0o600); err != nil { // non-exec bits don't count
			t.Fatal(err)
		}
		if d, _ := TreeDigest(dir); d != d1 {
			t.Errorf("digest changed: %s vs %s", d, d1)
		}
	})
	changes := map[string]func(t *testing.T, dir string){
		"one byte changed": func(t *testing.T, dir string) {
			putFile(t, filepath.Join(dir, "m.onnx"), []byte("weightS"), 0o644)
		},
		"exec bit set": func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, "m.onnx"), 0o755)
		},
		"file renamed": func(t *testing.T, dir string) {
			os.Rename(filepath.Join(dir, "sub.txt"), filepath.Join(dir, "sub2.txt"))
		},
		"file added": func(t *testing.T, dir string) {
			putFile(t, filepath.Join(dir, "extra"), nil, 0o644)
		},
		"content moved between files": func(t *testing.T, dir string) {
			putFile(t, filepath.Join(dir, "sub/a.txt"), []byte("b"), 0o644)
			putFile(t, filepath.Join(dir, "sub.txt"), []byte("a"), 0o644)
		},
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			dir := mk(t, base)
			change(t, dir)
			d, err := TreeDigest(dir)
			if err != nil {
				t.Fatal(err)
			}
			if d == d1 {
				t.Errorf("digest did not change")
			}
		})
	}
	if !strings.HasPrefix(d1, "sha256:") || len(d1) != len("sha256:")+64 {
		t.Errorf("digest format: %s", d1)
	}
	if _, err := ParseDigest(d1); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "sha256:xyz", strings.TrimPrefix(d1, "sha256:"), "sha256:" + strings.ToUpper(d1[7:])} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("ParseDigest(%q) accepted", bad)
		}
	}
}

func TestResolveEntry(t *testing.T) {
	mk := func(t *testing.T, names ...string) string {
		dir := t.TempDir()
		for _, n := range names {
			putFile(t, filepath.Join(dir, filepath.FromSlash(n)), []byte("x"), 0o644)
		}
		return dir
	}
	tests := []struct {
		name    string
		files   []string
		entry   string
		exts    []string
		want    string
		wantErr string
	}{
		{"single onnx", []string{"model.onnx", "vocab.txt"}, "", nil, "model.onnx", ""},
		{"nested single", []string{"m/1/model.pt", "m/readme"}, "", nil, "m/1/model.pt", ""},
		{"entry picks", []string{"a.onnx", "b.onnx"}, "b.onnx", nil, "b.onnx", ""},
		{"entry with ./", []string{"a.onnx", "d/b.onnx"}, "./d/b.onnx", nil, "d/b.onnx", ""},
		{"entry with unknown ext", []string{"a.onnx", "weights.bin"}, "weights.bin", nil, "weights.bin", ""},
		{"several", []string{"a.onnx", "b.pb"}, "", nil, "", `several model files found ("a.onnx", "b.pb"): set model_entry`},
		{"none", []string{"readme.md"}, "", nil, "", `no model file (.onnx, .pt, .pth, .pb) found in the model; files: "readme.md"`},
		{"missing entry", []string{"a.onnx"}, "c.onnx", nil, "", `model_entry "c.onnx": no such file in the model; model files found: "a.onnx"`},
		{"escaping entry", []string{"a.onnx"}, "../a.onnx", nil, "", `must be a path inside the model`},
		{"entry is dir", []string{"d/a.onnx"}, "d", nil, "", `not a regular file`},
		{"custom exts", []string{"a.onnx", "m.savedmodel"}, "", []string{".savedmodel"}, "m.savedmodel", ""},
		{"case-insensitive ext", []string{"A.ONNX"}, "", nil, "A.ONNX", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveEntry(mk(t, tc.files...), tc.entry, tc.exts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := map[string]string{
		"/models/m.onnx":                            "/models/m.onnx",
		"https://ak:sk@host/m.onnx":                 "https://host/m.onnx",
		"https://host/m.onnx?OSSAccessKeyId=AK&x=1": "https://host/m.onnx?OSSAccessKeyId=REDACTED&x=1",
		"http://host/m.onnx?X-Amz-Signature=s":      "http://host/m.onnx?X-Amz-Signature=REDACTED",
	}
	for in, want := range tests {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCopyTreeAndReadOnly(t *testing.T) {
	src := t.TempDir()
	putFile(t, filepath.Join(src, "a", "b.onnx"), []byte("b"), 0o644)
	putFile(t, filepath.Join(src, "run"), []byte("r"), 0o755)
	dst := filepath.Join(t.TempDir(), "copy")
	if err := CopyTree(context.Background(), src, dst); err != nil {
		t.Fatal(err)
	}
	d1, _ := TreeDigest(src)
	d2, _ := TreeDigest(dst)
	if d1 != d2 {
		t.Errorf("copy digest %s != source %s", d2, d1)
	}
	t.Cleanup(func() { RemoveAll(dst) })
	if err := MakeReadOnly(dst); err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(filepath.Join(dst, "a", "b.onnx"))
	if info.Mode().Perm()&0o222 != 0 {
		t.Errorf("file still writable: %v", info.Mode())
	}
	if d3, _ := TreeDigest(dst); d3 != d1 {
		t.Error("making a tree read-only changed its digest")
	}
	if err := RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RemoveAll left %s", dst)
	}
}

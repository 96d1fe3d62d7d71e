package modelsource

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/objstore"
	"github.com/openeas/openeas/internal/objstore/miniotest"
)

// putObject uploads data as bucket/key through a temporary file.
func putObject(t *testing.T, cl *objstore.Client, bucket, key string, data []byte) {
	t.Helper()
	if err := cl.EnsureBucket(context.Background(), bucket); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "obj")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Upload(context.Background(), bucket, key, p, nil); err != nil {
		t.Fatal(err)
	}
}

// logBuffer collects a Fetch's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func objOpts(t *testing.T, cfg objstore.Config, log io.Writer) Options {
	t.Helper()
	if log == nil {
		log = io.Discard
	}
	dir := t.TempDir()
	return Options{
		Dir: filepath.Join(dir, "tmp"), ObjectCache: filepath.Join(dir, "objects"),
		OSS: cfg, S3: cfg, Logger: slog.New(slog.NewTextHandler(log, nil)),
	}
}

func TestFetchObjectStorage(t *testing.T) {
	srv := miniotest.Start(t)
	cl := srv.Client(t)
	tarGz := gz(t, buildTar(t, []entry{{name: "m/model.onnx", body: "onnx"}, {name: "m/vocab.txt", body: "a b"}}))
	for key, body := range map[string][]byte{
		"single/model.onnx":  []byte("single-onnx"),
		"dir/a.onnx":         []byte("a-onnx"),
		"dir/sub/labels.txt": []byte("cat\ndog\n"),
		"dir/":               nil, // a console's folder marker: skipped
		"arch/model.tar.gz":  tarGz,
	} {
		putObject(t, cl, "models", key, body)
	}

	ok := []struct {
		name, path string
		want       map[string]string
	}{
		{"single file", "oss://models/single/model.onnx", map[string]string{"model.onnx": "single-onnx"}},
		{"s3 scheme", "s3://models/single/model.onnx", map[string]string{"model.onnx": "single-onnx"}},
		{"directory", "oss://models/dir/", map[string]string{"a.onnx": "a-onnx", "sub/labels.txt": "cat\ndog\n"}},
		{"directory without slash", "oss://models/dir", map[string]string{"a.onnx": "a-onnx", "sub/labels.txt": "cat\ndog\n"}},
		{"archive", "oss://models/arch/model.tar.gz", map[string]string{"m/model.onnx": "onnx", "m/vocab.txt": "a b"}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Fetch(context.Background(), tc.path, objOpts(t, srv.Config(), nil))
			if err != nil {
				t.Fatal(err)
			}
			if got := readTree(t, f.Dir); !maps.Equal(got, tc.want) {
				t.Errorf("tree = %v, want %v", got, tc.want)
			}
			if f.Source != tc.path || f.Objects == 0 || f.CachedObjects != 0 {
				t.Errorf("Fetched = %+v", f)
			}
		})
	}

	wrongSecret := srv.Config()
	wrongSecret.SecretAccessKey = "not-the-" + srv.SecretKey
	unknownKey := srv.Config()
	unknownKey.AccessKeyID = "nobody"
	bad := []struct {
		name, path string
		cfg        objstore.Config
		want       string
		is         error
	}{
		{"missing key", "oss://models/single/nope.onnx", srv.Config(), "oss://models/single/nope.onnx at " + srv.Addr + ": not found: no such object", objstore.ErrNotFound},
		{"missing bucket", "oss://nobucket/m.onnx", srv.Config(), `bucket "nobucket" does not exist`, objstore.ErrNotFound},
		{"empty prefix", "oss://models/empty/", srv.Config(), "no objects under this prefix", nil},
		{"wrong secret", "oss://models/single/model.onnx", wrongSecret, "access denied", objstore.ErrAccessDenied},
		{"unknown access key", "oss://models/dir/", unknownKey, "access denied", objstore.ErrAccessDenied},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			var log logBuffer
			opts := objOpts(t, tc.cfg, &log)
			_, err := Fetch(context.Background(), tc.path, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			t.Logf("error: %v", err)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err %v is not %v", err, tc.is)
			}
			for _, where := range []string{err.Error(), log.String()} {
				if strings.Contains(where, srv.SecretKey) {
					t.Errorf("secret key leaked: %s", where)
				}
			}
			assertNoLeftovers(t, opts.Dir)
		})
	}

	t.Run("size limit before download", func(t *testing.T) {
		proxy := srv.Proxy(t)
		cfg := srv.Config()
		cfg.Endpoint = proxy.URL
		opts := objOpts(t, cfg, nil)
		opts.MaxBytes = 10
		for _, p := range []string{"oss://models/single/model.onnx", "oss://models/dir/"} {
			if _, err := Fetch(context.Background(), p, opts); err == nil || !strings.Contains(err.Error(), "larger than 10 bytes") {
				t.Errorf("%s: err = %v", p, err)
			}
		}
		if c := proxy.Counts(); c.Get != 0 {
			t.Errorf("%d GETs for models over the limit, want none", c.Get)
		}
		opts.MaxBytes, opts.MaxFiles = 0, 1
		if _, err := Fetch(context.Background(), "oss://models/dir/", opts); err == nil || !strings.Contains(err.Error(), "more than 1 files") {
			t.Errorf("file limit: err = %v", err)
		}
	})
}

func TestFetchObjectCache(t *testing.T) {
	srv := miniotest.Start(t)
	cl := srv.Client(t)
	putObject(t, cl, "models", "m/model.onnx", []byte("model-bytes"))
	putObject(t, cl, "models", "m/extra.bin", []byte("extra"))
	proxy := srv.Proxy(t)
	cfg := srv.Config()
	cfg.Endpoint = proxy.URL
	var log logBuffer
	opts := objOpts(t, cfg, &log)

	for _, p := range []string{"oss://models/m/model.onnx", "oss://models/m/"} {
		first, err := Fetch(context.Background(), p, opts)
		if err != nil {
			t.Fatal(err)
		}
		gets := proxy.Counts().Get
		second, err := Fetch(context.Background(), p, opts)
		if err != nil {
			t.Fatal(err)
		}
		if c := proxy.Counts(); c.Get != gets {
			t.Errorf("%s: second fetch made %d GETs, want 0", p, c.Get-gets)
		}
		if second.Digest != first.Digest || second.CachedObjects != second.Objects || second.DownloadedBytes != 0 {
			t.Errorf("%s: second fetch %+v, first %+v", p, second, first)
		}
	}
	if !strings.Contains(log.String(), "model object from cache") {
		t.Errorf("log does not say the object came from the cache:\n%s", log.String())
	}

	// A replaced object has a new ETag: it is downloaded again, never served stale.
	putObject(t, cl, "models", "m/model.onnx", []byte("model-bytes-v2"))
	f, err := Fetch(context.Background(), "oss://models/m/model.onnx", opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := readTree(t, f.Dir)["model.onnx"]; got != "model-bytes-v2" || f.CachedObjects != 0 {
		t.Errorf("after replacing the object: content %q, cached %d", got, f.CachedObjects)
	}
}

// patternReader yields n deterministic pseudo-random bytes without holding them.
type patternReader struct {
	rng *rand.ChaCha8
	n   int64
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	_, _ = r.rng.Read(p)
	r.n -= int64(len(p))
	return len(p), nil
}

func newPattern(n int64) *patternReader {
	return &patternReader{rng: rand.NewChaCha8([32]byte{1, 2, 3}), n: n}
}

func TestFetchObjectLargeBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("200 MB download: skipped with -short")
	}
	const size = 200 << 20
	srv := miniotest.Start(t)
	cl := srv.Client(t)
	if err := cl.EnsureBucket(context.Background(), "big"); err != nil {
		t.Fatal(err)
	}
	want := sha256.New()
	if err := cl.PutStream(context.Background(), "big", "model.onnx", io.TeeReader(newPattern(size), want), nil); err != nil {
		t.Fatal(err)
	}
	// A multipart object: its ETag is no MD5, so the full-object CRC32C is what verifies it.
	if obj, err := cl.Stat(context.Background(), "big", "model.onnx"); err != nil || !strings.Contains(obj.ETag, "-") || obj.Checksums["CRC32C"] == "" {
		t.Fatalf("uploaded object %+v, %v: want a multipart ETag and a CRC32C", obj, err)
	}
	opts := objOpts(t, srv.Config(), nil)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	f, err := Fetch(context.Background(), "oss://big/model.onnx", opts)
	close(done)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	const budget = 64 << 20
	if grow := int64(peak.Load()) - int64(before.HeapAlloc); grow > budget {
		t.Errorf("heap grew by %d MB during a %d MB download, want under %d MB", grow>>20, size>>20, budget>>20)
	}
	t.Logf("heap before %d MB, peak during download %d MB", before.HeapAlloc>>20, peak.Load()>>20)
	got := sha256.New()
	fh, err := os.Open(filepath.Join(f.Dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if n, err := io.Copy(got, fh); err != nil || n != size {
		t.Fatalf("copied %d bytes: %v", n, err)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Error("downloaded content differs from the uploaded object")
	}
}

// slowFirstGet is a transport that, on the first object GET, signals once `after` bytes were
// read and then slows the stream down, so the test can kill the server mid-download.
type slowFirstGet struct {
	base   http.RoundTripper
	after  int64
	midway chan struct{}
	once   sync.Once
	gets   atomic.Int32
	ranges sync.Map // request number -> Range header
}

func (s *slowFirstGet) RoundTrip(r *http.Request) (*http.Response, error) {
	n := int32(0)
	if r.Method == http.MethodGet && strings.Count(strings.Trim(r.URL.Path, "/"), "/") >= 1 {
		n = s.gets.Add(1)
		s.ranges.Store(n, r.Header.Get("Range"))
	}
	resp, err := s.base.RoundTrip(r)
	if err != nil || n != 1 {
		return resp, err
	}
	resp.Body = &slowBody{ReadCloser: resp.Body, s: s}
	return resp, nil
}

type slowBody struct {
	io.ReadCloser
	s    *slowFirstGet
	read int64
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.read >= b.s.after {
		b.s.once.Do(func() { close(b.s.midway) })
		time.Sleep(20 * time.Millisecond)
		if len(p) > 32<<10 {
			p = p[:32<<10]
		}
	}
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	return n, err
}

func TestFetchObjectResumesAfterServerRestart(t *testing.T) {
	const size = 24 << 20
	srv := miniotest.Start(t)
	cl := srv.Client(t)
	if err := cl.EnsureBucket(context.Background(), "models"); err != nil {
		t.Fatal(err)
	}
	var data bytes.Buffer
	if _, err := io.Copy(&data, newPattern(size)); err != nil {
		t.Fatal(err)
	}
	putObject(t, cl, "models", "m.onnx", data.Bytes())

	tr := &slowFirstGet{base: http.DefaultTransport.(*http.Transport).Clone(), after: 4 << 20, midway: make(chan struct{})}
	cfg := srv.Config()
	cfg.Transport = tr
	cfg.Retry = objstore.Retry{Attempts: 10, Base: 200 * time.Millisecond, Max: 4 * time.Second}
	var log logBuffer
	opts := objOpts(t, cfg, &log)

	type result struct {
		f   *Fetched
		err error
	}
	res := make(chan result, 1)
	go func() {
		f, err := Fetch(context.Background(), "oss://models/m.onnx", opts)
		res <- result{f, err}
	}()
	select {
	case <-tr.midway:
	case r := <-res:
		t.Fatalf("fetch ended before the restart: %+v", r)
	}
	srv.Kill()
	time.Sleep(500 * time.Millisecond) // the client sees the connection drop and starts retrying
	if err := srv.Restart(); err != nil {
		t.Fatalf("restart MinIO: %v\n%s", err, srv.Log())
	}
	r := <-res
	if r.err != nil {
		t.Fatalf("fetch across a server restart: %v\nlog:\n%s", r.err, log.String())
	}
	got, err := os.ReadFile(filepath.Join(r.f.Dir, "m.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data.Bytes()) {
		t.Fatal("content after resuming differs from the object")
	}
	if tr.gets.Load() < 2 {
		t.Fatalf("%d GETs, want a resumed second one", tr.gets.Load())
	}
	resumed := false
	tr.ranges.Range(func(k, v any) bool {
		if k.(int32) > 1 && strings.HasPrefix(v.(string), "bytes=") && v.(string) != "bytes=0-" {
			resumed = true
		}
		return true
	})
	if !resumed {
		t.Error("no GET resumed with a Range request")
	}
	if !strings.Contains(log.String(), "resuming") {
		t.Errorf("log does not mention the resumed download:\n%s", log.String())
	}
}

// TestFetchObjectCacheBounded: with ObjectCacheMaxBytes, an object no model tree uses any more
// is evicted (least recently used first) when a new download would overflow the cache, and
// is then downloaded again when asked for.
func TestFetchObjectCacheBounded(t *testing.T) {
	srv := miniotest.Start(t)
	cl := srv.Client(t)
	putObject(t, cl, "models", "a/model.onnx", bytes.Repeat([]byte("a"), 100))
	putObject(t, cl, "models", "b/model.onnx", bytes.Repeat([]byte("b"), 100))
	proxy := srv.Proxy(t)
	cfg := srv.Config()
	cfg.Endpoint = proxy.URL
	var log logBuffer
	opts := objOpts(t, cfg, &log)
	opts.ObjectCacheMaxBytes = 150
	fetch := func(p string) *Fetched {
		t.Helper()
		f, err := Fetch(context.Background(), p, opts)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	cached := func() int {
		es, _ := os.ReadDir(opts.ObjectCache)
		return len(es)
	}

	a := fetch("oss://models/a/model.onnx")
	os.RemoveAll(a.Dir) // the deployed tree is gone: only the cache holds a now
	old := time.Now().Add(-2 * time.Hour)
	es, _ := os.ReadDir(opts.ObjectCache)
	for _, e := range es {
		os.Chtimes(filepath.Join(opts.ObjectCache, e.Name()), old, old)
	}
	b := fetch("oss://models/b/model.onnx")
	if n := cached(); n != 1 || !strings.Contains(log.String(), "object cache trimmed") {
		t.Fatalf("after b: %d cached objects, want b alone (a evicted); log:\n%s", n, log.String())
	}
	gets := proxy.Counts().Get
	again := fetch("oss://models/a/model.onnx")
	if proxy.Counts().Get == gets || again.CachedObjects != 0 || readTree(t, again.Dir)["model.onnx"] != strings.Repeat("a", 100) {
		t.Errorf("a after its eviction: %+v, want a fresh download with the same content", again)
	}
	// b's tree still links b, so b costs the cache nothing and stays.
	if _, err := os.Stat(filepath.Join(b.Dir, "model.onnx")); err != nil {
		t.Fatal(err)
	}
	if n := cached(); n != 2 {
		t.Errorf("%d cached objects, want a and b (b is shared with a model tree)", n)
	}
}

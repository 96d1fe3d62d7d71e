// Package miniotest runs a real MinIO server as a separate process for tests (MinIO is AGPLv3:
// it is only ever executed, never linked). The binary is built once by scripts/minio.sh into
// ${OPENEAS_CACHE:-$HOME/.cache/openeas}/minio/bin; env OPENEAS_MINIO names it directly.
// Tests skip, saying why, only when the binary can be neither found nor built.
package miniotest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/objstore"
)

// Server is one MinIO process on 127.0.0.1 with its own data directory and root credentials.
type Server struct {
	Bin       string
	Addr      string // host:port
	AccessKey string
	SecretKey string
	dataDir   string
	logFile   string

	mu     sync.Mutex // guards cmd and exited
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// Binary returns the MinIO binary, building it with scripts/minio.sh the first time
// (several minutes; the test log says so).
func Binary(t testing.TB) (string, error) {
	if p := os.Getenv("OPENEAS_MINIO"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("OPENEAS_MINIO=%s: %w", p, err)
		}
		return p, nil
	}
	cache := os.Getenv("OPENEAS_CACHE")
	if cache == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache", "openeas")
		}
	}
	if p := filepath.Join(cache, "minio", "bin", "minio"); cache != "" && fileExists(p) {
		return p, nil
	}
	if testing.Short() {
		return "", errors.New("MinIO is not built yet and -short does not build it (run scripts/minio.sh, ~4 min once)")
	}
	buildOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		t.Logf("miniotest: OPENEAS_MINIO is not set; running scripts/minio.sh (building MinIO the first time takes ~4 min)")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "minio.sh"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			buildErr = fmt.Errorf("scripts/minio.sh: %v: %s", err, lastLines(stderr.String(), 10))
			return
		}
		buildBin = strings.TrimSpace(string(out))
	})
	return buildBin, buildErr
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "minio.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("scripts/minio.sh not found above the working directory")
		}
		dir = parent
	}
}

// Start runs a fresh MinIO for the test and stops it at cleanup. It skips the test when the
// binary is unavailable.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary(t)
	if err != nil {
		t.Skipf("MinIO is not available, skipping the object-storage test: %v", err)
	}
	dir := t.TempDir()
	s := &Server{
		Bin: bin, AccessKey: "openeas-test", SecretKey: "secret-" + randHex(12),
		dataDir: filepath.Join(dir, "data"), logFile: filepath.Join(dir, "minio.log"),
	}
	if err := os.Mkdir(s.dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for try := 0; try < 3; try++ { // a free port can be taken between probing and binding
		s.Addr = freeAddr(t)
		if lastErr = s.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("start MinIO: %v\n%s", lastErr, s.Log())
	}
	t.Cleanup(s.Kill)
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (s *Server) start() error {
	logf, err := os.OpenFile(s.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.Bin, "server", "--quiet", "--address", s.Addr, "--console-address", "127.0.0.1:0", s.dataDir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey, "MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("minio exited during start-up")
		default:
		}
		// Health says ready a little before S3 calls stop answering "not initialized":
		// wait until a real call gets a real answer (no such bucket).
		if s.answers() {
			s.mu.Lock()
			s.cmd, s.exited = cmd, exited
			s.mu.Unlock()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return errors.New("minio not ready after 60s")
}

func (s *Server) answers() bool {
	cl, err := objstore.New(objstore.Config{Endpoint: s.Endpoint(), AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey,
		Retry: objstore.Retry{Attempts: 1}})
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = cl.Stat(ctx, "readiness-probe", "x")
	return errors.Is(err, objstore.ErrNotFound)
}

// Kill stops the server at once (SIGKILL), like a crash. Killing a stopped server does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Restart starts the server again on the same address and data (after Kill).
func (s *Server) Restart() error {
	s.Kill()
	return s.start()
}

// Log is the server's output so far, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logFile)
	return lastLines(string(b), 30)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Endpoint is the URL to configure clients with.
func (s *Server) Endpoint() string { return "http://" + s.Addr }

// Config is a client configuration with the root credentials.
func (s *Server) Config() objstore.Config {
	return objstore.Config{Endpoint: s.Endpoint(), AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey}
}

// Client is a root client, failing the test on error.
func (s *Server) Client(t testing.TB) *objstore.Client {
	t.Helper()
	c, err := objstore.New(s.Config())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Counts are the requests a Proxy forwarded, by kind.
type Counts struct {
	Get  int64 // object GETs (downloads)
	Head int64 // object HEADs (stats)
	List int64 // bucket GETs (listings and other bucket queries)
	Put  int64
}

// Proxy is a counting reverse proxy in front of a Server: point clients at its Endpoint to
// count the requests they make.
type Proxy struct {
	URL                   string
	get, head, list, puts atomic.Int64
}

// Counts returns the requests forwarded so far.
func (p *Proxy) Counts() Counts {
	return Counts{Get: p.get.Load(), Head: p.head.Load(), List: p.list.Load(), Put: p.puts.Load()}
}

// Proxy starts a counting proxy (stopped at cleanup). Path-style addressing only.
func (s *Server) Proxy(t testing.TB) *Proxy {
	t.Helper()
	target, _ := url.Parse(s.Endpoint())
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &Proxy{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The signature covers the Host header: keep the client's (the proxy's address).
		object := strings.Count(strings.Trim(r.URL.Path, "/"), "/") >= 1
		switch {
		case r.Method == http.MethodGet && object:
			p.get.Add(1)
		case r.Method == http.MethodHead && object:
			p.head.Add(1)
		case r.Method == http.MethodGet:
			p.list.Add(1)
		case r.Method == http.MethodPut || r.Method == http.MethodPost:
			p.puts.Add(1)
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	p.URL = "http://" + ln.Addr().String()
	return p
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

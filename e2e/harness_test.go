// Package e2e drives the real binaries (easd, eascmd, eas-worker, blade) the way a user
// does: it starts easd on a temporary data dir, deploys real ONNX models and predicts
// through the gateway. `make test` builds the binaries first and sets OPENEAS_BIN and
// OPENEAS_ORT_LIB; without them these tests skip and say why.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/api"
)

type env struct {
	bin, ortLib, repo string
}

func requireEnv(t *testing.T) env {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end tests skipped in -short mode")
	}
	e := env{bin: os.Getenv("OPENEAS_BIN"), ortLib: os.Getenv("OPENEAS_ORT_LIB")}
	if e.bin == "" || e.ortLib == "" {
		t.Skip("OPENEAS_BIN and OPENEAS_ORT_LIB are not set: run `make test`, which builds the binaries first")
	}
	for _, b := range []string{"easd", "eascmd", "eas-worker"} {
		if _, err := os.Stat(filepath.Join(e.bin, b)); err != nil {
			t.Fatalf("binary %s missing in OPENEAS_BIN=%s: run make build", b, e.bin)
		}
	}
	wd, _ := os.Getwd()
	e.repo = filepath.Dir(wd)
	return e
}

// easd is one running daemon.
type easd struct {
	t       *testing.T
	env     env
	dataDir string
	addr    string
	cmd     *exec.Cmd
	log     *syncBuffer
	token   string
	client  *api.Client
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startEasd starts easd on dataDir (a new temp dir when empty) and waits for /healthz.
func startEasd(t *testing.T, e env, dataDir string) *easd {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	d := &easd{t: t, env: e, dataDir: dataDir, addr: freeAddr(t), log: &syncBuffer{}}
	d.cmd = exec.Command(filepath.Join(e.bin, "easd"), "serve", "--data-dir", dataDir, "--listen", d.addr)
	d.cmd.Env = append(os.Environ(), "OPENEAS_ORT_LIB="+e.ortLib, "EASD_LOG_LEVEL=debug")
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("easd log (%s):\n%s", d.addr, tail(d.log.String(), 80))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(d.url("/healthz"))
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) || d.cmd.ProcessState != nil {
			t.Fatalf("easd did not come up: %v\n%s", err, d.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	d.token = strings.TrimSpace(string(b))
	d.client = api.NewClient("http://"+d.addr, d.token, nil)
	return d
}

func (d *easd) url(p string) string { return "http://" + d.addr + p }

// stop sends SIGTERM and waits; kill9 does not wait for any draining.
func (d *easd) stop() {
	if d.cmd.Process == nil || d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
}

func (d *easd) kill9() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	_ = d.cmd.Wait()
}

// eascmd runs the CLI against this easd and returns its combined output.
func (d *easd) eascmd(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(d.env.bin, "eascmd"), args...)
	cmd.Env = append(os.Environ(), "EAS_ENDPOINT=http://"+d.addr, "EAS_ADMIN_TOKEN="+d.token, "HOME="+d.t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// waitStatus waits until the service reaches want (failing fast on Failed unless wanted).
func (d *easd) waitStatus(name, want string, timeout time.Duration) *api.Service {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	var last *api.Service
	for time.Now().Before(deadline) {
		s, err := d.client.Describe(context.Background(), name)
		if err == nil {
			last = s
			if s.Status == want && (want != api.StatusRunning || s.RunningInstance == s.TotalInstance) {
				return s
			}
			if s.Status == api.StatusFailed && want != api.StatusFailed {
				d.t.Fatalf("service %s failed: %s\nevents:\n%s", name, s.Message, d.eventText(name))
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.t.Fatalf("service %s did not reach %s in %s (last: %+v)\nevents:\n%s", name, want, timeout, last, d.eventText(name))
	return nil
}

func (d *easd) eventText(name string) string {
	evs, err := d.client.Events(context.Background(), name, 0)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %s %s [%s]\n", e.Type, e.Message, e.Status)
	}
	return b.String()
}

// workerPIDs lists the eas-worker processes serving a service (by their command line).
func workerPIDs(t *testing.T, service string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "eas-worker" {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && strings.Contains(string(st), ") Z ") {
			continue // a zombie is already dead
		}
		for i := range args[:len(args)-1] {
			if args[i] == "--name" && args[i+1] == service {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func writeJSON(t *testing.T, path string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readLines(r io.Reader) []string {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

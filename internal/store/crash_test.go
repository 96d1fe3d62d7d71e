package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// crashChildEnv makes the test binary act as a writer that the crash test kills.
const crashChildEnv = "OPENEAS_STORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		if err := crashChild(path); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashChild writes forever, printing each write only after it committed:
// "event ID I" after AppendEvent, "service I" after UpdateService set DesiredInstances=I,
// "version N" after AddVersion returned N.
func crashChild(path string) error {
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		return err
	}
	if err := s.CreateService(ctx, ServiceRecord{Name: "crash", Status: "Creating"}, VersionRecord{Status: VersionPending}); err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 1; ; i++ {
		ev, err := s.AppendEvent(ctx, EventRecord{Service: "crash", Type: "Normal", Message: fmt.Sprintf("event %d", i)}, "")
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "event %d %d\n", ev.ID, i)
		if i%10 == 0 {
			if err := s.UpdateService(ctx, "crash", func(r *ServiceRecord) error { r.DesiredInstances = i; return nil }); err != nil {
				return err
			}
			fmt.Fprintf(out, "service %d\n", i)
			n, err := s.AddVersion(ctx, VersionRecord{Service: "crash", Spec: fmt.Appendf(nil, `{"i":%d}`, i), Status: VersionPending})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "version %d\n", n)
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

// TestKillDuringWrites kills a writing process with SIGKILL and checks that the
// database opens and holds every write the process saw committed.
func TestKillDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := filepath.Join(t.TempDir(), "easd.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	// Read what the child reports as committed; kill it mid-stream.
	const killAfter = 150 // events
	events := map[int64]string{}
	var lastService, lastVersion int
	sc := bufio.NewScanner(stdout)
	for len(events) < killAfter && sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "event":
			id, _ := strconv.ParseInt(f[1], 10, 64)
			events[id] = "event " + f[2]
		case len(f) == 2 && f[0] == "service":
			lastService, _ = strconv.Atoi(f[1])
		case len(f) == 2 && f[0] == "version":
			lastVersion, _ = strconv.Atoi(f[1])
		default:
			t.Fatalf("child said %q", sc.Text())
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup in the child
		t.Fatal(err)
	}
	_ = cmd.Wait() // "signal: killed"
	if len(events) < killAfter {
		t.Fatalf("child stopped after %d events: %v\n%s", len(events), sc.Err(), stderr.String())
	}

	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open after kill -9: %v", err)
	}
	defer s.Close()
	var check string
	if err := s.db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}

	stored, err := s.Events(ctx, "crash", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[int64]string{}
	for i, ev := range stored {
		byID[ev.ID] = ev.Message
		if want := fmt.Sprintf("event %d", i+1); ev.Message != want {
			t.Fatalf("stored event %d is %q, want %q (a gap or a torn write)", i, ev.Message, want)
		}
	}
	for id, msg := range events {
		if byID[id] != msg {
			t.Errorf("committed event %d %q lost (stored: %q)", id, msg, byID[id])
		}
	}
	svc, err := s.GetService(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	if svc.DesiredInstances < lastService {
		t.Errorf("service update %d was committed, store has %d", lastService, svc.DesiredInstances)
	}
	versions, err := s.ListVersions(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) < lastVersion {
		t.Errorf("version %d was committed, store has %d versions", lastVersion, len(versions))
	}
	// The store stays writable after recovery.
	if _, err := s.AppendEvent(ctx, EventRecord{Service: "crash", Message: "after"}, ""); err != nil {
		t.Errorf("append after recovery: %v", err)
	}
	t.Logf("killed after %d committed events; %d stored", len(events), len(stored))
}

package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "easd.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func newService(name string) (ServiceRecord, VersionRecord) {
	return ServiceRecord{Name: name, Token: "tok-" + name, Status: "Creating", DesiredInstances: 1},
		VersionRecord{Spec: []byte(`{"name":"` + name + `"}`), Status: VersionPending}
}

func mustCreate(t *testing.T, s *Store, name string) {
	t.Helper()
	svc, ver := newService(name)
	if err := s.CreateService(context.Background(), svc, ver); err != nil {
		t.Fatal(err)
	}
}

func TestServiceLifecycle(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	fixed := time.Date(2026, 11, 3, 10, 0, 0, 123456789, time.UTC)
	s.now = func() time.Time { return fixed }

	mustCreate(t, s, "beta")
	mustCreate(t, s, "alpha")

	got, err := s.GetService(ctx, "beta")
	if err != nil {
		t.Fatal(err)
	}
	want := ServiceRecord{Name: "beta", Token: "tok-beta", Status: "Creating", CurrentVersion: 1,
		DesiredInstances: 1, Created: fixed, Updated: fixed}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetService\n got %+v\nwant %+v", got, want)
	}
	v1, err := s.GetVersion(ctx, "beta", 1)
	if err != nil || string(v1.Spec) != `{"name":"beta"}` || v1.Status != VersionPending || !v1.Created.Equal(fixed) {
		t.Errorf("first version: %+v, %v", v1, err)
	}

	tests := []struct {
		name    string
		run     func() error
		wantErr error // nil: must succeed
	}{
		{"create taken name", func() error { svc, ver := newService("beta"); return s.CreateService(ctx, svc, ver) }, ErrExists},
		{"get missing", func() error { _, err := s.GetService(ctx, "nope"); return err }, ErrNotFound},
		{"update missing", func() error {
			return s.UpdateService(ctx, "nope", func(*ServiceRecord) error { return nil })
		}, ErrNotFound},
		{"delete missing", func() error { return s.DeleteService(ctx, "nope") }, ErrNotFound},
		{"version of missing service", func() error { _, err := s.AddVersion(ctx, VersionRecord{Service: "nope"}); return err }, ErrNotFound},
		{"missing version", func() error { _, err := s.GetVersion(ctx, "beta", 7); return err }, ErrNotFound},
		{"update missing version", func() error {
			return s.UpdateVersion(ctx, "beta", 7, func(*VersionRecord) error { return nil })
		}, ErrNotFound},
		{"event for missing service", func() error { _, err := s.AppendEvent(ctx, EventRecord{Service: "nope"}, ""); return err }, ErrNotFound},
		{"events of missing service", func() error { _, err := s.Events(ctx, "nope", 0, 0); return err }, ErrNotFound},
		{"versions of missing service", func() error { _, err := s.ListVersions(ctx, "nope"); return err }, ErrNotFound},
		{"setting missing", func() error { _, err := s.GetSetting(ctx, "nope"); return err }, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(); !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
		})
	}

	list, err := s.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "alpha" || list[1].Name != "beta" {
		t.Errorf("ListServices = %+v, want alpha then beta", list)
	}

	later := fixed.Add(time.Minute)
	s.now = func() time.Time { return later }
	if err := s.UpdateService(ctx, "beta", func(r *ServiceRecord) error {
		r.Status, r.Message, r.DesiredInstances, r.Stopped = "Running", "ok", 3, true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetService(ctx, "beta")
	want = ServiceRecord{Name: "beta", Token: "tok-beta", Status: "Running", Message: "ok", CurrentVersion: 1,
		DesiredInstances: 3, Stopped: true, Created: fixed, Updated: later}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after update\n got %+v\nwant %+v", got, want)
	}

	// A failing callback changes nothing; neither may a rename.
	boom := errors.New("boom")
	err = s.UpdateService(ctx, "beta", func(r *ServiceRecord) error { r.Status = "Failed"; return boom })
	if !errors.Is(err, boom) {
		t.Errorf("callback error not returned: %v", err)
	}
	if err := s.UpdateService(ctx, "beta", func(r *ServiceRecord) error { r.Name = "gamma"; return nil }); err == nil {
		t.Error("rename accepted")
	}
	if again, _ := s.GetService(ctx, "beta"); !reflect.DeepEqual(again, want) {
		t.Errorf("aborted updates changed the service: %+v", again)
	}

	// Delete takes versions and events along.
	if _, err := s.AppendEvent(ctx, EventRecord{Service: "beta", Type: "Normal", Message: "m"}, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteService(ctx, "beta"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetService(ctx, "beta"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted service: %v", err)
	}
	var versions, events int
	s.db.QueryRow(`SELECT COUNT(*) FROM versions WHERE service = 'beta'`).Scan(&versions)
	s.db.QueryRow(`SELECT COUNT(*) FROM events WHERE service = 'beta'`).Scan(&events)
	if versions != 0 || events != 0 {
		t.Errorf("after delete: %d versions, %d events remain", versions, events)
	}
	if _, err := s.GetService(ctx, "alpha"); err != nil {
		t.Errorf("deleting beta touched alpha: %v", err)
	}
}

func TestVersions(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	mustCreate(t, s, "svc")

	// Concurrent AddVersion calls get distinct, consecutive numbers.
	const n = 12
	nums := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v, err := s.AddVersion(ctx, VersionRecord{Service: "svc", Spec: fmt.Appendf(nil, `{"i":%d}`, i), Status: VersionPending})
			if err != nil {
				t.Error(err)
			}
			nums <- v
		})
	}
	wg.Wait()
	close(nums)
	var got []int
	for v := range nums {
		got = append(got, v)
	}
	slices.Sort(got)
	for i, v := range got {
		if v != i+2 {
			t.Fatalf("version numbers %v, want 2..%d once each", got, n+1)
		}
	}

	if err := s.UpdateVersion(ctx, "svc", 5, func(v *VersionRecord) error {
		v.Status, v.BundleDigest, v.Message = VersionReady, "sha256:abc", "sealed"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	v5, err := s.GetVersion(ctx, "svc", 5)
	if err != nil || v5.Status != VersionReady || v5.BundleDigest != "sha256:abc" || v5.Message != "sealed" || v5.Version != 5 {
		t.Errorf("version 5 = %+v, %v", v5, err)
	}
	if err := s.UpdateVersion(ctx, "svc", 5, func(v *VersionRecord) error { v.Version = 6; return nil }); err == nil {
		t.Error("renumbering a version accepted")
	}

	list, err := s.ListVersions(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n+1 {
		t.Fatalf("%d versions, want %d", len(list), n+1)
	}
	for i, v := range list {
		if v.Version != i+1 || v.Service != "svc" {
			t.Errorf("list[%d] = version %d of %q", i, v.Version, v.Service)
		}
	}
}

// TestAppendEventSetsStatus: an event with a status sets the service's status and message in
// the same transaction; one without leaves them alone.
func TestAppendEventSetsStatus(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	mustCreate(t, s, "svc")
	for _, tt := range []struct {
		ev                  EventRecord
		message             string
		wantStatus, wantMsg string
	}{
		{EventRecord{Service: "svc", Message: "Service failed: boom", Status: "Failed"}, "boom", "Failed", "boom"},
		{EventRecord{Service: "svc", Message: "Downloading"}, "ignored", "Failed", "boom"},
		{EventRecord{Service: "svc", Message: "Service is running", Status: "Running"}, "", "Running", ""},
	} {
		ev, err := s.AppendEvent(ctx, tt.ev, tt.message)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.GetService(ctx, "svc")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != tt.wantStatus || got.Message != tt.wantMsg {
			t.Errorf("after %q: status %q message %q, want %q %q", tt.ev.Message, got.Status, got.Message, tt.wantStatus, tt.wantMsg)
		}
		if tt.ev.Status != "" && !got.Updated.Equal(ev.Time) {
			t.Errorf("after %q: updated %v, want the event's time %v", tt.ev.Message, got.Updated, ev.Time)
		}
	}
}

func TestConcurrentAppendEvent(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	mustCreate(t, s, "svc")
	mustCreate(t, s, "other")

	const writers, each = 8, 25
	ids := make(chan int64, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				svc := "svc"
				if i%5 == 0 {
					svc = "other"
				}
				ev, err := s.AppendEvent(ctx, EventRecord{Service: svc, Type: "Normal", Message: fmt.Sprintf("w%d-%d", w, i), Status: "Creating"}, "")
				if err != nil {
					t.Error(err)
					return
				}
				if ev.ID == 0 || ev.Time.IsZero() {
					t.Errorf("event without ID or time: %+v", ev)
				}
				ids <- ev.ID
			}
		})
	}
	wg.Wait()
	close(ids)
	seen := map[int64]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("ID %d assigned twice", id)
		}
		seen[id] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d IDs, want %d", len(seen), writers*each)
	}

	// Paging with sinceID and limit sees every event of the service once, in ID order,
	// with times that never go backwards.
	var all []EventRecord
	var since int64
	for {
		page, err := s.Events(ctx, "svc", since, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 7 {
			t.Fatalf("page of %d, limit 7", len(page))
		}
		all = append(all, page...)
		since = page[len(page)-1].ID
	}
	if want := writers * each * 4 / 5; len(all) != want {
		t.Fatalf("%d events of svc, want %d", len(all), want)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID || all[i].Time.Before(all[i-1].Time) {
			t.Fatalf("events out of order: %+v then %+v", all[i-1], all[i])
		}
		if all[i].Service != "svc" || !strings.HasPrefix(all[i].Message, "w") {
			t.Fatalf("unexpected event %+v", all[i])
		}
	}
	everything, err := s.Events(ctx, "svc", 0, 0)
	if err != nil || len(everything) != len(all) {
		t.Errorf("limit 0 gave %d events (%v), want %d", len(everything), err, len(all))
	}
}

func TestEventIDsNotReusedAfterDelete(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	mustCreate(t, s, "svc")
	first, err := s.AppendEvent(ctx, EventRecord{Service: "svc", Message: "one"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteService(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "svc")
	second, err := s.AppendEvent(ctx, EventRecord{Service: "svc", Message: "two"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if second.ID <= first.ID {
		t.Errorf("ID %d reused or smaller after delete (was %d)", second.ID, first.ID)
	}
	evs, err := s.Events(ctx, "svc", 0, 0)
	if err != nil || len(evs) != 1 || evs[0].Message != "two" {
		t.Errorf("recreated service sees %+v, %v", evs, err)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub dir?#", "easd.db") // odd characters must not become DSN syntax
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "svc")
	if _, err := s.AddVersion(ctx, VersionRecord{Service: "svc", Spec: []byte(`{"v":2}`), Status: VersionBuilding}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateService(ctx, "svc", func(r *ServiceRecord) error { r.CurrentVersion = 2; r.Status = "Running"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendEvent(ctx, EventRecord{Service: "svc", Type: "Normal", Message: "[OK] Service is running", Status: "Running"}, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSetting(ctx, "admin_token_digest", "sha256:x"); err != nil {
		t.Fatal(err)
	}
	snapshot := func(s *Store) []any {
		svcs, err1 := s.ListServices(ctx)
		vers, err2 := s.ListVersions(ctx, "svc")
		evs, err3 := s.Events(ctx, "svc", 0, 0)
		set, err4 := s.GetSetting(ctx, "admin_token_digest")
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			t.Fatal(err)
		}
		return []any{svcs, vers, evs, set}
	}
	before := snapshot(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if after := snapshot(s2); !reflect.DeepEqual(before, after) {
		t.Errorf("reopen changed the data:\nbefore %+v\nafter  %+v", before, after)
	}
	if filepath.Base(s2.Path()) != "easd.db" || !strings.Contains(s2.Path(), "sub dir?#") {
		t.Errorf("Path() = %q", s2.Path())
	}
}

func TestSettings(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	steps := []struct {
		op, key, value, want string
		wantErr              error
	}{
		{op: "get", key: "k", wantErr: ErrNotFound},
		{op: "set", key: "k", value: "1"},
		{op: "get", key: "k", want: "1"},
		{op: "set", key: "k", value: "2"},
		{op: "get", key: "k", want: "2"},
		{op: "delete", key: "k"},
		{op: "delete", key: "k"},
		{op: "get", key: "k", wantErr: ErrNotFound},
	}
	for i, st := range steps {
		var got string
		var err error
		switch st.op {
		case "get":
			got, err = s.GetSetting(ctx, st.key)
		case "set":
			err = s.SetSetting(ctx, st.key, st.value)
		case "delete":
			err = s.DeleteSetting(ctx, st.key)
		}
		if !errors.Is(err, st.wantErr) || got != st.want {
			t.Errorf("step %d %s %s: got %q, %v; want %q, %v", i, st.op, st.key, got, err, st.want, st.wantErr)
		}
	}
}

func TestSchemaVersion(t *testing.T) {
	if SchemaVersion != len(migrations) {
		t.Fatalf("SchemaVersion %d, but there are %d migrations", SchemaVersion, len(migrations))
	}
	ctx := context.Background()
	s, path := openTemp(t)
	var v int
	if err := s.db.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("schema_version = %d, %v", v, err)
	}
	var mode, fk string
	s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	s.db.QueryRow(`PRAGMA foreign_keys`).Scan(&fk)
	if mode != "wal" || fk != "1" {
		t.Errorf("journal_mode %q foreign_keys %q", mode, fk)
	}

	// A database written by a newer easd is refused, not misread.
	if _, err := s.db.Exec(`UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(ctx, path)
	if err == nil || !strings.Contains(err.Error(), "schema version 99 is newer than this program supports (1)") {
		t.Errorf("Open of a newer schema: %v", err)
	}
}

func TestLastEventID(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	mustCreate(t, s, "a")
	mustCreate(t, s, "b")
	if id, err := s.LastEventID(ctx, "a"); err != nil || id != 0 {
		t.Fatalf("no events: %d %v, want 0", id, err)
	}
	var last int64
	for _, svc := range []string{"a", "b", "a", "b"} {
		ev, err := s.AppendEvent(ctx, EventRecord{Service: svc, Type: "Normal", Message: "m"}, "")
		if err != nil {
			t.Fatal(err)
		}
		if svc == "a" {
			last = ev.ID
		}
	}
	if id, err := s.LastEventID(ctx, "a"); err != nil || id != last {
		t.Fatalf("LastEventID(a) = %d %v, want %d", id, err, last)
	}
	if _, err := s.LastEventID(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing service: %v, want ErrNotFound", err)
	}
}

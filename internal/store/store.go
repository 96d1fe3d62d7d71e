// Package store keeps easd's state in SQLite (modernc.org/sqlite, pure Go): services,
// their versions, their events, and a few settings.
//
// Durability: the database runs in WAL mode with synchronous=FULL. WAL alone (with
// synchronous=NORMAL) already survives a killed process: a commit is in the WAL file
// before it returns, and the next Open replays it. FULL also fsyncs the WAL at every
// commit, so a commit that returned survives a power cut or kernel crash too. easd writes
// a few rows per deploy step, so an fsync per commit costs nothing users notice, and a
// service reported "created" must never vanish.
//
// Concurrency: every method is safe for concurrent use, also by several processes on
// the same file. Write transactions take SQLite's write lock when they begin
// (BEGIN IMMEDIATE), so read-modify-write callbacks never fail halfway on a lock upgrade;
// waiting writers retry for up to BusyTimeout. Callbacks given to UpdateService and
// UpdateVersion run inside the transaction: they must be quick and must not call the Store.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrNotFound: no such service, version or setting.
	ErrNotFound = errors.New("not found")
	// ErrExists: a service with that name already exists.
	ErrExists = errors.New("already exists")
)

// BusyTimeout is how long a write waits for another writer's lock before failing.
const BusyTimeout = 10 * time.Second

// Version states.
const (
	VersionPending  = "Pending"
	VersionBuilding = "Building"
	VersionReady    = "Ready"
	VersionFailed   = "Failed"
)

// ServiceRecord is one service. Status holds api.Status* values; the store does not
// interpret it.
type ServiceRecord struct {
	Name    string
	Token   string
	Status  string
	Message string
	// CurrentVersion is the version that serves (or is being deployed), from 1.
	CurrentVersion   int
	DesiredInstances int
	Stopped          bool
	Created, Updated time.Time
}

// VersionRecord is one version of a service: a normalized service.json and the bundle
// built from it.
type VersionRecord struct {
	Service      string
	Version      int
	Spec         []byte // normalized service.json
	BundleDigest string // "sha256:<hex>", empty until sealed
	Status       string // VersionPending, VersionBuilding, VersionReady, VersionFailed
	Message      string
	Created      time.Time
}

// EventRecord is one event of a service. IDs grow across all services and are never
// reused, also after a service is deleted, so "events since ID" stays meaningful.
type EventRecord struct {
	ID      int64
	Service string
	Time    time.Time
	Type    string // api.EventNormal or api.EventWarning
	Message string
	Status  string // the service status right after the event
}

// Store is an open database. Close it when done.
type Store struct {
	db   *sql.DB
	path string
	now  func() time.Time
}

// Open opens (creating if needed) the database at path and brings its schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// A file: URI, so that '?' or '#' in the path cannot be taken for parameters.
	q := url.Values{}
	q.Set("_txlock", "immediate")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	dsn := "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	s := &Store{db: db, path: abs, now: time.Now}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

func (s *Store) init(ctx context.Context) error {
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal mode is %q, want wal (is the file system able to hold a WAL?)", mode)
	}
	return migrate(ctx, s.db)
}

// tx runs fn in a write transaction (BEGIN IMMEDIATE) and commits when fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // the error that matters is fn's
		return err
	}
	return tx.Commit()
}

// Times are stored as Unix nanoseconds (UTC); reads give UTC times.
func toDB(t time.Time) int64 { return t.UnixNano() }

func fromDB(n int64) time.Time { return time.Unix(0, n).UTC() }

// clock is the store clock without the monotonic reading, so that values callers
// hold equal what they read back.
func (s *Store) clock() time.Time { return s.now().UTC().Round(0) }

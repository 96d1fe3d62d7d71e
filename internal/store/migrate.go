package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations[i] brings the schema from version i to i+1. Append only: a released
// migration is never edited, since databases in the field have already run it.
var migrations = []string{
	// 1: services, versions, events, settings.
	`CREATE TABLE services (
		name              TEXT PRIMARY KEY,
		token             TEXT NOT NULL,
		status            TEXT NOT NULL,
		message           TEXT NOT NULL,
		current_version   INTEGER NOT NULL,
		desired_instances INTEGER NOT NULL,
		stopped           INTEGER NOT NULL,
		created           INTEGER NOT NULL,
		updated           INTEGER NOT NULL
	);
	CREATE TABLE versions (
		service       TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
		version       INTEGER NOT NULL,
		spec          BLOB NOT NULL,
		bundle_digest TEXT NOT NULL,
		status        TEXT NOT NULL,
		message       TEXT NOT NULL,
		created       INTEGER NOT NULL,
		PRIMARY KEY (service, version)
	);
	-- AUTOINCREMENT: event IDs are never reused, even after a service is deleted and
	-- created again, so clients following events by ID never miss or repeat one.
	CREATE TABLE events (
		id      INTEGER PRIMARY KEY AUTOINCREMENT,
		service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
		time    INTEGER NOT NULL,
		type    TEXT NOT NULL,
		message TEXT NOT NULL,
		status  TEXT NOT NULL
	);
	CREATE INDEX events_by_service ON events (service, id);
	CREATE TABLE settings (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);`,
}

// SchemaVersion is the schema version this code writes (len(migrations); a test checks).
const SchemaVersion = 1

// migrate applies the missing migrations in one transaction: a crash mid-way leaves the
// database as it was. A database newer than this code is refused rather than misread.
func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: concurrent Opens migrate one at a time
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit

	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&current)
	switch {
	case err == sql.ErrNoRows:
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	case err != nil:
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this program supports (%d): use a newer easd", current, len(migrations))
	}
	for v := current; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate to schema version %d: %w", v+1, err)
		}
	}
	if current < len(migrations) {
		if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations)); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	return tx.Commit()
}

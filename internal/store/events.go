package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// read runs fn in a read-only transaction (a consistent snapshot; takes no write lock).
func (s *Store) read(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to keep
	return fn(tx)
}

// AppendEvent stores an event and returns it with its ID and Time assigned (ev's own
// are ignored). IDs increase in commit order. ErrNotFound when the service does not exist.
//
// When ev.Status is set, the same transaction sets the service's status to it and its
// message to message: a reader then sees both the status and the event that announces it,
// or neither (a follower that stops at a settled status misses no event; one that stops at
// the event reads the status it announced).
func (s *Store) AppendEvent(ctx context.Context, ev EventRecord, message string) (EventRecord, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := serviceExists(ctx, tx, ev.Service); err != nil {
			return err
		}
		// The time is taken inside the write lock, so times never go backwards as IDs grow
		// (as long as the clock does not).
		ev.Time = s.clock()
		if ev.Status != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE services SET status = ?, message = ?, updated = ? WHERE name = ?`,
				ev.Status, message, toDB(ev.Time), ev.Service); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO events (service, time, type, message, status) VALUES (?, ?, ?, ?, ?)`,
			ev.Service, toDB(ev.Time), ev.Type, ev.Message, ev.Status)
		if err != nil {
			return err
		}
		ev.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return EventRecord{}, fmt.Errorf("append event to service %s: %w", ev.Service, err)
	}
	return ev, nil
}

// Events returns the service's events with ID > sinceID, oldest first, at most limit of
// them (limit <= 0: all). ErrNotFound when the service does not exist, so a follower
// learns that it was deleted.
func (s *Store) Events(ctx context.Context, service string, sinceID int64, limit int) ([]EventRecord, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	var out []EventRecord
	err := s.read(ctx, func(tx *sql.Tx) error {
		if err := serviceExists(ctx, tx, service); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, service, time, type, message, status FROM events
			WHERE service = ? AND id > ? ORDER BY id LIMIT ?`, service, sinceID, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var ev EventRecord
			var t int64
			if err := rows.Scan(&ev.ID, &ev.Service, &t, &ev.Type, &ev.Message, &ev.Status); err != nil {
				return err
			}
			ev.Time = fromDB(t)
			out = append(out, ev)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("events of service %s: %w", service, err)
	}
	return out, nil
}

// LastEventID returns the ID of the service's newest event (0 when it has none), or
// ErrNotFound when the service does not exist.
func (s *Store) LastEventID(ctx context.Context, service string) (int64, error) {
	var id int64
	err := s.read(ctx, func(tx *sql.Tx) error {
		if err := serviceExists(ctx, tx, service); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM events WHERE service = ?`, service).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("last event of service %s: %w", service, err)
	}
	return id, nil
}

// GetSetting returns a setting's value, or ErrNotFound.
func (s *Store) GetSetting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("setting %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("get setting %s: %w", key, err)
	}
	return v, nil
}

// SetSetting creates or replaces a setting.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("set setting %s: %w", key, err)
	}
	return nil
}

// DeleteSetting removes a setting; removing an absent one is not an error.
func (s *Store) DeleteSetting(ctx context.Context, key string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM settings WHERE key = ?`, key); err != nil {
		return fmt.Errorf("delete setting %s: %w", key, err)
	}
	return nil
}

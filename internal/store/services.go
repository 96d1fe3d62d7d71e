package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

const serviceColumns = `name, token, status, message, current_version, desired_instances, stopped, created, updated`

type scanner interface{ Scan(dest ...any) error }

func scanService(row scanner) (ServiceRecord, error) {
	var r ServiceRecord
	var created, updated int64
	err := row.Scan(&r.Name, &r.Token, &r.Status, &r.Message, &r.CurrentVersion, &r.DesiredInstances, &r.Stopped, &created, &updated)
	r.Created, r.Updated = fromDB(created), fromDB(updated)
	return r, err
}

// CreateService stores a new service with its first version. ver.Service may be empty
// (it becomes svc.Name); ver.Version 0 means 1; svc.CurrentVersion 0 means ver.Version;
// zero Created/Updated times become now. ErrExists when the name is taken.
func (s *Store) CreateService(ctx context.Context, svc ServiceRecord, ver VersionRecord) error {
	if svc.Name == "" {
		return errors.New("create service: empty name")
	}
	if ver.Service == "" {
		ver.Service = svc.Name
	}
	if ver.Service != svc.Name {
		return fmt.Errorf("create service %s: version belongs to service %q", svc.Name, ver.Service)
	}
	if ver.Version == 0 {
		ver.Version = 1
	}
	if svc.CurrentVersion == 0 {
		svc.CurrentVersion = ver.Version
	}
	now := s.clock()
	for _, t := range []*time.Time{&svc.Created, &svc.Updated, &ver.Created} {
		if t.IsZero() {
			*t = now
		}
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		switch err := serviceExists(ctx, tx, svc.Name); {
		case err == nil:
			return ErrExists
		case !errors.Is(err, ErrNotFound):
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO services (`+serviceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			svc.Name, svc.Token, svc.Status, svc.Message, svc.CurrentVersion, svc.DesiredInstances, svc.Stopped,
			toDB(svc.Created), toDB(svc.Updated)); err != nil {
			return err
		}
		return insertVersion(ctx, tx, ver)
	})
	if err != nil {
		return fmt.Errorf("create service %s: %w", svc.Name, err)
	}
	return nil
}

// GetService returns the named service, or ErrNotFound.
func (s *Store) GetService(ctx context.Context, name string) (ServiceRecord, error) {
	r, err := scanService(s.db.QueryRowContext(ctx, `SELECT `+serviceColumns+` FROM services WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return ServiceRecord{}, fmt.Errorf("service %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return ServiceRecord{}, fmt.Errorf("get service %s: %w", name, err)
	}
	return r, nil
}

// ListServices returns every service, ordered by name.
func (s *Store) ListServices(ctx context.Context) ([]ServiceRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+serviceColumns+` FROM services ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	defer rows.Close()
	var out []ServiceRecord
	for rows.Next() {
		r, err := scanService(rows)
		if err != nil {
			return nil, fmt.Errorf("list services: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	return out, nil
}

// UpdateService reads the service, lets fn change it and writes it back, all in one
// transaction: concurrent updates never lose each other's changes. fn's error aborts
// the update and is returned wrapped. Name and Created cannot change; Updated becomes now.
// ErrNotFound when there is no such service.
func (s *Store) UpdateService(ctx context.Context, name string, fn func(*ServiceRecord) error) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		r, err := scanService(tx.QueryRowContext(ctx, `SELECT `+serviceColumns+` FROM services WHERE name = ?`, name))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		created := r.Created
		if err := fn(&r); err != nil {
			return err
		}
		if r.Name != name {
			return fmt.Errorf("the name cannot change (to %q)", r.Name)
		}
		if !r.Created.Equal(created) {
			return errors.New("the creation time cannot change")
		}
		r.Updated = s.clock()
		_, err = tx.ExecContext(ctx, `UPDATE services SET token = ?, status = ?, message = ?, current_version = ?,
			desired_instances = ?, stopped = ?, updated = ? WHERE name = ?`,
			r.Token, r.Status, r.Message, r.CurrentVersion, r.DesiredInstances, r.Stopped, toDB(r.Updated), name)
		return err
	})
	if err != nil {
		return fmt.Errorf("update service %s: %w", name, err)
	}
	return nil
}

// DeleteService removes the service with its versions and events. ErrNotFound when
// there is no such service.
func (s *Store) DeleteService(ctx context.Context, name string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM services WHERE name = ?`, name) // cascades
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete service %s: %w", name, err)
	}
	return nil
}

// serviceExists returns nil when the service exists, ErrNotFound when it does not.
func serviceExists(ctx context.Context, tx *sql.Tx, name string) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM services WHERE name = ?`, name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

const versionColumns = `service, version, spec, bundle_digest, status, message, created`

func scanVersion(row scanner) (VersionRecord, error) {
	var v VersionRecord
	var created int64
	err := row.Scan(&v.Service, &v.Version, &v.Spec, &v.BundleDigest, &v.Status, &v.Message, &created)
	v.Created = fromDB(created)
	return v, err
}

func insertVersion(ctx context.Context, tx *sql.Tx, v VersionRecord) error {
	if v.Spec == nil {
		v.Spec = []byte{} // NOT NULL
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO versions (`+versionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		v.Service, v.Version, v.Spec, v.BundleDigest, v.Status, v.Message, toDB(v.Created))
	return err
}

// AddVersion stores v as the service's next version and returns its number (one more
// than the highest so far, decided inside the transaction, so concurrent calls get
// distinct numbers). v.Version is ignored; a zero v.Created becomes now. ErrNotFound
// when the service does not exist.
func (s *Store) AddVersion(ctx context.Context, v VersionRecord) (int, error) {
	if v.Created.IsZero() {
		v.Created = s.clock()
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := serviceExists(ctx, tx, v.Service); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE service = ?`,
			v.Service).Scan(&v.Version); err != nil {
			return err
		}
		return insertVersion(ctx, tx, v)
	})
	if err != nil {
		return 0, fmt.Errorf("add version to service %s: %w", v.Service, err)
	}
	return v.Version, nil
}

// GetVersion returns one version, or ErrNotFound.
func (s *Store) GetVersion(ctx context.Context, service string, version int) (VersionRecord, error) {
	v, err := scanVersion(s.db.QueryRowContext(ctx,
		`SELECT `+versionColumns+` FROM versions WHERE service = ? AND version = ?`, service, version))
	if errors.Is(err, sql.ErrNoRows) {
		return VersionRecord{}, fmt.Errorf("service %s version %d: %w", service, version, ErrNotFound)
	}
	if err != nil {
		return VersionRecord{}, fmt.Errorf("get service %s version %d: %w", service, version, err)
	}
	return v, nil
}

// UpdateVersion reads one version, lets fn change it and writes it back in one
// transaction. Service, Version and Created cannot change. ErrNotFound when absent.
func (s *Store) UpdateVersion(ctx context.Context, service string, version int, fn func(*VersionRecord) error) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		v, err := scanVersion(tx.QueryRowContext(ctx,
			`SELECT `+versionColumns+` FROM versions WHERE service = ? AND version = ?`, service, version))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		created := v.Created
		if err := fn(&v); err != nil {
			return err
		}
		if v.Service != service || v.Version != version || !v.Created.Equal(created) {
			return errors.New("service, version and creation time cannot change")
		}
		if v.Spec == nil {
			v.Spec = []byte{}
		}
		_, err = tx.ExecContext(ctx, `UPDATE versions SET spec = ?, bundle_digest = ?, status = ?, message = ?
			WHERE service = ? AND version = ?`, v.Spec, v.BundleDigest, v.Status, v.Message, service, version)
		return err
	})
	if err != nil {
		return fmt.Errorf("update service %s version %d: %w", service, version, err)
	}
	return nil
}

// ListVersions returns the service's versions, oldest first. ErrNotFound when the
// service does not exist.
func (s *Store) ListVersions(ctx context.Context, service string) ([]VersionRecord, error) {
	var out []VersionRecord
	err := s.read(ctx, func(tx *sql.Tx) error {
		if err := serviceExists(ctx, tx, service); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+versionColumns+` FROM versions WHERE service = ? ORDER BY version`, service)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scanVersion(rows)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list versions of service %s: %w", service, err)
	}
	return out, nil
}

// BundlesInUse returns the bundle digests a service may still start from: every service's
// current version, and its newer versions that have not failed (an update being built or
// rolled out). Older versions were superseded, and failed newer ones never serve.
func (s *Store) BundlesInUse(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT v.bundle_digest FROM versions v JOIN services s ON v.service = s.name
			WHERE v.bundle_digest != '' AND (v.version = s.current_version OR (v.version > s.current_version AND v.status != ?))`,
			VersionFailed)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				return err
			}
			out[d] = true
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list bundles in use: %w", err)
	}
	return out, nil
}

package tools

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"modernc.org/sqlite"
)

// demoSchema creates the demo tables. orders.user_id cascades on delete so
// delete_users removes a user's orders with the user.
const demoSchema = `
CREATE TABLE users (
	id         INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	email      TEXT NOT NULL UNIQUE,
	role       TEXT NOT NULL DEFAULT 'customer',
	created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE TABLE products (
	id          INTEGER PRIMARY KEY,
	sku         TEXT NOT NULL UNIQUE,
	name        TEXT NOT NULL,
	price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
	stock       INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE orders (
	id           INTEGER PRIMARY KEY,
	user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	product      TEXT NOT NULL,
	amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
	created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX orders_user_id ON orders(user_id);
`

const demoData = `
INSERT INTO users (id, name, email, role, created_at) VALUES
	(1,  'Alice Martin',   'alice@example.com',  'admin',    '2024-01-05T09:12:00Z'),
	(2,  'Bob Nguyen',     'bob@example.com',    'customer', '2024-01-17T14:03:00Z'),
	(3,  'Carla Rossi',    'carla@example.com',  'customer', '2024-02-02T08:45:00Z'),
	(4,  'Dmitri Ivanov',  'dmitri@example.com', 'support',  '2024-02-20T16:30:00Z'),
	(5,  'Eve Okafor',     'eve@example.com',    'customer', '2024-03-11T11:11:00Z'),
	(6,  'Farid Haddad',   'farid@example.com',  'customer', '2024-03-29T19:22:00Z'),
	(7,  'Grace Kim',      'grace@example.com',  'admin',    '2024-04-08T07:58:00Z'),
	(8,  'Hugo Silva',     'hugo@example.com',   'customer', '2024-05-14T13:40:00Z'),
	(9,  'Ines Dubois',    'ines@example.com',   'customer', '2024-06-01T10:05:00Z'),
	(10, 'Jonas Berg',     'jonas@example.com',  'support',  '2024-06-23T17:47:00Z');
INSERT INTO products (id, sku, name, price_cents, stock) VALUES
	(1,  'KB-101', 'Mechanical keyboard',   8999,  42),
	(2,  'MS-202', 'Wireless mouse',        2499,  120),
	(3,  'MN-303', '27-inch monitor',       27900, 15),
	(4,  'HS-404', 'Noise-cancelling headset', 15900, 30),
	(5,  'WC-505', 'HD webcam',             5900,  64),
	(6,  'DK-606', 'USB-C dock',            13900, 22),
	(7,  'CH-707', 'Ergonomic chair',       34900, 8),
	(8,  'DS-808', 'Standing desk',         49900, 5),
	(9,  'LP-909', 'Laptop stand',          3900,  77),
	(10, 'CB-010', 'USB-C cable (2 m)',     1299,  300);
INSERT INTO orders (id, user_id, product, amount_cents, created_at) VALUES
	(1,  2, 'Mechanical keyboard',   8999,  '2024-02-01T10:00:00Z'),
	(2,  3, 'Wireless mouse',        2499,  '2024-02-15T12:30:00Z'),
	(3,  2, 'USB-C cable (2 m)',     2598,  '2024-03-03T09:15:00Z'),
	(4,  5, '27-inch monitor',       27900, '2024-03-20T18:45:00Z'),
	(5,  6, 'HD webcam',             5900,  '2024-04-02T08:20:00Z'),
	(6,  8, 'Standing desk',         49900, '2024-05-20T15:05:00Z'),
	(7,  9, 'Laptop stand',          3900,  '2024-06-05T11:35:00Z'),
	(8,  3, 'Noise-cancelling headset', 15900, '2024-06-18T20:10:00Z'),
	(9,  5, 'USB-C dock',            13900, '2024-07-01T07:50:00Z'),
	(10, 1, 'Ergonomic chair',       34900, '2024-07-09T16:25:00Z');
`

// SeedDemo creates the demo database at path if no file exists there, and
// reports whether it did. An existing file is never modified (created is then
// false). The database is built in a temporary file in the same directory
// and moved into place only when complete, so a crash never leaves a
// half-made database at path, and a concurrent creator cannot be clobbered.
// The new file is readable and writable by its owner only (mode 0600).
func SeedDemo(ctx context.Context, path string) (created bool, err error) {
	if path == "" {
		return false, errors.New("seed demo database: no path given: set the database file path")
	}
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("seed demo database %q: %w", path, err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".seed-*")
	if err != nil {
		return false, fmt.Errorf("seed demo database %q: create temporary file (does the directory exist and is it writable?): %w", path, err)
	}
	tmpPath := tmp.Name()
	defer func() {
		// Whatever happened, the temporary name must not survive; after a
		// successful link this removes only the extra name.
		if rmErr := os.Remove(tmpPath); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) && err == nil {
			err = fmt.Errorf("seed demo database %q: remove temporary file: %w", path, rmErr)
		}
		for _, suffix := range []string{"-journal", "-wal", "-shm"} {
			_ = os.Remove(tmpPath + suffix)
		}
	}()
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("seed demo database %q: %w", path, err)
	}
	if err := buildDemo(ctx, tmpPath); err != nil {
		return false, fmt.Errorf("seed demo database %q: %w", path, err)
	}
	if err := syncFile(tmpPath); err != nil {
		return false, fmt.Errorf("seed demo database %q: %w", path, err)
	}
	// Link fails if path appeared meanwhile, so another creator's file is
	// never replaced.
	if err := os.Link(tmpPath, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return false, nil
		}
		// Filesystems without hard links: fall back to rename, which is
		// atomic but would replace a file created in the last instant.
		if _, statErr := os.Lstat(path); statErr == nil {
			return false, nil
		}
		if err := os.Rename(tmpPath, path); err != nil {
			return false, fmt.Errorf("seed demo database %q: move into place: %w", path, err)
		}
	}
	if err := syncDir(dir); err != nil {
		return true, fmt.Errorf("seed demo database %q: %w", path, err)
	}
	return true, nil
}

// buildDemo writes the demo schema and rows into the empty file at path in a
// single transaction, using the rollback journal so no WAL files remain.
func buildDemo(ctx context.Context, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("resolve path: %w", err)
	}
	db := sql.OpenDB(&connector{
		drv: &sqlite.Driver{},
		dsn: fileDSN(abs, "mode=rw", "_pragma=journal_mode(DELETE)", "_pragma=foreign_keys(1)"),
		auth: func(sqlite.AuthorizerActionCode, string, string, string, string) sqlite.AuthorizerReturnCode {
			return sqlite.AuthorizerOK
		},
	})
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if _, err := tx.ExecContext(ctx, demoSchema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	if _, err := tx.ExecContext(ctx, demoData); err != nil {
		return fmt.Errorf("insert rows: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// syncFile flushes the file at path to stable storage.
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync: %w", err)
	}
	return f.Close()
}

// syncDir flushes directory entries so the new name survives a crash.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

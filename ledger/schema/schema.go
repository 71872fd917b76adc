// Package schema owns the database schema of the whole switch: one ordered
// set of goose migrations, embedded in the binary and applied by
// `softatm migrate`. Each domain package owns its own migration files, in
// version ranges that keep them apart:
//
//	00010-00019 ledger: accounts, transfers, business days, bank settlements
//	00020-00029 switch and its sub-packages: banks, post offices, kiosks,
//	            withdrawals, outbox; code's signing keys; auth's bank
//	            clients, users, sessions and login failures; idem's
//	            idempotency keys
//	00030-00039 unused: teller has no tables of its own
//	00040-00049 ledger/recon: settlement files and reconciliation
//
// A version is taken once: goose refuses two files with the same number.
//
// Every statement must run on both PostgreSQL and CockroachDB: UUID keys, no
// sequences on hot paths, no advisory locks, no LISTEN/NOTIFY, no deferred
// constraints.
//
// This package must not import any other softatm package.
package schema

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/softatm/softatm/fixtures/localsrv"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies every pending migration to the database at url and
// returns the version it ends at.
func Migrate(ctx context.Context, url string) (int64, error) {
	cfg, err := stdlibConfig(url)
	if err != nil {
		return 0, err
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	return migrateDB(ctx, db)
}

func migrateDB(ctx context.Context, db *sql.DB) (int64, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return 0, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub)
	if err != nil {
		return 0, fmt.Errorf("loading migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return 0, fmt.Errorf("migrating: %w", err)
	}
	return p.GetDBVersion(ctx)
}

// MustMigratedDB returns the URL of a new database of this test's own with
// the whole schema applied (a private PostgreSQL is started when
// DATABASE_URL is not set).
func MustMigratedDB(tb testing.TB) string {
	tb.Helper()
	url := localsrv.MustDatabase(tb)
	if _, err := Migrate(context.Background(), url); err != nil {
		tb.Fatal(err)
	}
	return url
}

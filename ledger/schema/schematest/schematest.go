// Package schematest gives tests a database of their own with migrations
// applied. It imports testing, so only tests may import it.
package schematest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm/fixtures/localsrv"
	"github.com/softatm/softatm/ledger/schema"
)

// MustMigratedDB returns the URL of a new database of this test's own
// with sets applied (a private PostgreSQL is started when DATABASE_URL is
// not set). The whole schema of the switch is switch/schema's All().
func MustMigratedDB(tb testing.TB, sets ...schema.Set) string {
	tb.Helper()
	url := localsrv.MustDatabase(tb)
	if _, err := schema.Migrate(context.Background(), url, sets...); err != nil {
		tb.Fatal(err)
	}
	return url
}

// MustPool returns a pool on MustMigratedDB(tb, sets...), closed when the
// test ends.
func MustPool(tb testing.TB, sets ...schema.Set) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.New(context.Background(), MustMigratedDB(tb, sets...))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

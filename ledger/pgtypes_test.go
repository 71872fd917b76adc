package ledger

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestRegisterTypes: with RegisterTypes, UUIDs go to and come back from
// PostgreSQL unchanged — alone, through a pointer (NULL or not), in arrays,
// in a pipelined batch — and the server sees the very value the Go side
// holds (its text form), not some other one.
func TestRegisterTypes(t *testing.T) {
	t.Parallel()
	_, pool := mustLedger(t)
	cfg := pool.Config()
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error { RegisterTypes(c.TypeMap()); return nil }
	ctx := context.Background()
	reg, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)

	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec} {
		u := uuid.New()
		var text string
		var back uuid.UUID
		if err := reg.QueryRow(ctx, `SELECT $1::uuid::text, $1::uuid`, mode, u).Scan(&text, &back); err != nil {
			t.Fatalf("mode %v: %v", mode, err)
		}
		if text != u.String() || back != u {
			t.Errorf("mode %v: sent %s, server saw %s, read back %s", mode, u, text, back)
		}
	}

	u, v := uuid.New(), uuid.New()
	var nilPtr *uuid.UUID
	var gotNil, gotPtr *uuid.UUID
	var arr []uuid.UUID
	var arrText string
	if err := reg.QueryRow(ctx, `SELECT $1::uuid, $2::uuid, $3::uuid[], $3::uuid[]::text`, nilPtr, &u, []uuid.UUID{u, v}).
		Scan(&gotNil, &gotPtr, &arr, &arrText); err != nil {
		t.Fatal(err)
	}
	if gotNil != nil || gotPtr == nil || *gotPtr != u || !slices.Equal(arr, []uuid.UUID{u, v}) ||
		arrText != "{"+strings.Join([]string{u.String(), v.String()}, ",")+"}" {
		t.Errorf("nil %v, ptr %v (want %s), array %v, array text %s", gotNil, gotPtr, u, arr, arrText)
	}
	var null uuid.UUID
	if err := reg.QueryRow(ctx, `SELECT NULL::uuid`).Scan(&null); err == nil {
		t.Error("NULL scanned into a uuid.UUID without an error")
	}

	b := &pgx.Batch{}
	b.Queue(`SELECT $1::uuid::text`, v)
	var bt string
	br := reg.SendBatch(ctx, b)
	err = br.QueryRow().Scan(&bt)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil || bt != v.String() {
		t.Errorf("batched: %q %v, want %s", bt, err, v)
	}
}

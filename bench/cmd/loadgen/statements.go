package main

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
)

// statement is one of PostgreSQL's statements over the load, from
// pg_stat_statements (-statements).
type statement struct {
	query       string
	calls, rows int64
	execMS      float64 // total execution time
}

// resetStatements creates pg_stat_statements where it is missing and empties
// it, so that what topStatements reads is the load's.
func resetStatements(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `SELECT pg_stat_statements_reset()`)
	return err
}

// topStatements returns the n statements with the most execution time.
func topStatements(ctx context.Context, dbURL string, n int) ([]statement, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `
		SELECT query, calls, rows, total_exec_time FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		ORDER BY total_exec_time DESC LIMIT $1`, n)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (statement, error) {
		var s statement
		err := r.Scan(&s.query, &s.calls, &s.rows, &s.execMS)
		return s, err
	})
}

// statementsReport prints -statements' table: per withdrawal completed over
// the whole load, how often each statement ran and how long it took.
func statementsReport(p func(string, ...any), res loadResult) {
	if len(res.statements) == 0 || res.flowsAll == 0 {
		return
	}
	n := float64(res.flowsAll)
	var total float64
	for _, s := range res.statements {
		total += s.execMS
	}
	p("PostgreSQL's busiest statements over the load (pg_stat_statements, execution time only; per withdrawal completed, %d):", res.flowsAll)
	p("")
	p("| statement | calls per withdrawal | rows per call | ms per withdrawal | share of these |")
	p("| --- | ---: | ---: | ---: | ---: |")
	for _, s := range res.statements {
		q := strings.Join(strings.Fields(s.query), " ")
		if len(q) > 110 {
			q = q[:110] + "…"
		}
		q = strings.ReplaceAll(q, "|", "\\|")
		perCall := 0.0
		if s.calls > 0 {
			perCall = float64(s.rows) / float64(s.calls)
		}
		p("| `%s` | %.2f | %.2f | %.3f | %.0f%% |", q, float64(s.calls)/n, perCall, s.execMS/n, 100*s.execMS/total)
	}
	p("")
}

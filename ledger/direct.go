package ledger

import (
	"context"
	"errors"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/softatm/softatm"
)

// Direct commits st at once, outside the committer's batches: the one
// statement in a READ COMMITTED transaction of its own, sent with its
// BEGIN and COMMIT in one round trip, durable as any unit. It returns the
// rows st changed (ErrUnchanged when st.MustChange and none).
//
// It is for a write whose own WHERE decides whether it applies (a
// compare-and-set on one row: a claim) or that only adds a row its unique
// keys guard (a withdrawal's first row), and posts nothing. Such a write
// needs no serializable snapshot, and taking it off the serial committer
// takes its turn off every batch: the committer is the one serial path
// of the switch (bench/RESULTS.md). A READ COMMITTED writer takes part in
// no serialization-conflict tracking, so it cannot make the committer's
// SERIALIZABLE batches roll back except by writing the very row one of
// them writes, which they re-run like any conflict; and where it meets a
// batch's uncommitted write of its row, it waits for that batch and then
// judges its WHERE against the row the batch left.
//
// A connection lost before COMMIT was sent is retried on another (the
// transaction was rolled back); one lost during COMMIT leaves the outcome
// unknown, as with Commit.
func (l *Ledger) Direct(ctx context.Context, st *Stmt) (int64, error) {
	if st.Rows != nil || slices.ContainsFunc(st.Args, func(a any) bool { _, ok := a.(businessDateArg); return ok }) {
		return 0, softatm.Errorf(softatm.EInvalid, "a direct statement reads no rows list and has no business date")
	}
	var (
		n   int64
		err error
	)
	for attempt := 0; attempt < directTriesMax; attempt++ {
		var sent bool
		n, sent, err = l.directOnce(ctx, st)
		if err == nil || sent || !IsConnectionLost(err) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return 0, err
	}
	l.directUnits.Add(1)
	if n == 0 && st.MustChange {
		return 0, ErrUnchanged
	}
	return n, nil
}

// directTriesMax bounds Direct's attempts when connections are lost before
// COMMIT is sent.
const directTriesMax = 3

// directBegin opens a Direct statement's transaction.
const directBegin = "BEGIN ISOLATION LEVEL READ COMMITTED"

// directOnce runs one attempt; sent says COMMIT went out, so that a lost
// connection leaves the outcome unknown and the attempt must not be run
// again. A statement without Row has its COMMIT in the same pipeline as
// its BEGIN, so it is sent from the start; a statement read by Row gets
// its COMMIT after the read, so that a row Row refuses is rolled back, as
// a unit's would be: one round trip more.
func (l *Ledger) directOnce(ctx context.Context, st *Stmt) (n int64, sent bool, err error) {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return 0, false, err
	}
	defer conn.Release()
	defer func() {
		if !conn.Conn().IsClosed() && conn.Conn().PgConn().TxStatus() != 'I' {
			// The statement (or Row) failed inside the transaction: end
			// it, or the pool would drop the connection.
			_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	b := &pgx.Batch{}
	b.Queue(directBegin)
	b.Queue(st.SQL, st.Args...)
	sent = st.Row == nil
	if sent {
		b.Queue("COMMIT")
	}
	br := conn.SendBatch(ctx, b)
	n, err = directResults(br, st)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil || sent {
		return n, sent, err
	}
	_, err = conn.Exec(ctx, "COMMIT")
	return n, true, err
}

// directResults reads a Direct pipeline's results: BEGIN, the statement,
// and COMMIT when it was sent with them.
func directResults(br pgx.BatchResults, st *Stmt) (int64, error) {
	if _, err := br.Exec(); err != nil {
		return 0, err
	}
	if st.Row != nil {
		switch err := st.Row(br.QueryRow()); {
		case errors.Is(err, pgx.ErrNoRows):
			return 0, nil
		case err != nil:
			return 0, err
		}
		return 1, nil
	}
	tag, err := br.Exec()
	if err != nil {
		return 0, err
	}
	_, err = br.Exec() // COMMIT
	return tag.RowsAffected(), err
}

package atmswitch

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// dueClock is what due_at must hold in each state the sweeper watches: the
// column its query for that state compared before migration 00051 (a
// code's expiry; a request's creation; a credit's confirm, its last move).
// Every other state: NULL.
var dueClock = map[State]string{
	StateRequested:    "created_at",
	StateReserved:     "expires_at",
	StateClaimed:      "expires_at",
	StateDepIssued:    "expires_at",
	StateDepCounter:   "expires_at",
	StateDepCrediting: "updated_at",
}

// checkDue reads a row's due_at and the column its state's clock names,
// and reports a mismatch.
func checkDue(t *testing.T, pool *pgxpool.Pool, id uuid.UUID, name string) {
	t.Helper()
	var (
		state                 string
		due                   *time.Time
		created, expires, upd *time.Time
	)
	if err := pool.QueryRow(context.Background(), `SELECT state, due_at, created_at, expires_at, updated_at
		FROM withdrawals WHERE id = $1`, id).Scan(&state, &due, &created, &expires, &upd); err != nil {
		t.Fatal(err)
	}
	clock, live := dueClock[State(state)]
	want := map[string]*time.Time{"created_at": created, "expires_at": expires, "updated_at": upd}[clock]
	switch {
	case !live && due != nil:
		t.Errorf("%s: in state %s due_at is %v, want NULL (the sweeper never moves it)", name, state, *due)
	case live && due == nil:
		t.Errorf("%s: in state %s due_at is NULL, want its %s: the sweeper would never find it", name, state, clock)
	case live && (want == nil || !due.Equal(*want)):
		t.Errorf("%s: in state %s due_at is %v, want its %s %v", name, state, *due, clock, want)
	}
}

// TestDueAtFollowsTheState: due_at is set exactly while a row is in a
// state the sweeper watches, to the time the sweeper's deadline runs from,
// and NULL in every other state: for a row written in each state of both
// lifecycles, and after every move of the lifecycle table from each.
func TestDueAtFollowsTheState(t *testing.T) {
	t.Parallel()
	t.Run("the list", func(t *testing.T) {
		var watched []State
		for s := range dueClock {
			watched = append(watched, s)
		}
		slices.Sort(watched)
		listed := slices.Sorted(slices.Values(DueStates))
		if !slices.Equal(watched, listed) {
			t.Errorf("DueStates %v, want the states with a clock %v", listed, watched)
		}
		// Every state a sweeper event moves rows from is watched.
		for _, tr := range transitions {
			if (tr.On == EvExpire || tr.On == EvFail || tr.On == EvLapse) && !slices.Contains(DueStates, tr.From) {
				t.Errorf("the sweeper moves %s rows on %s, but due_at does not watch %s", tr.Kind.orWithdrawal(), tr.On, tr.From)
			}
		}
	})
	t.Run("postgres", func(t *testing.T) {
		pool, l := walkDB(t)
		st := newPGStore(pool, l, nil)
		for _, kind := range []Kind{KindWithdrawal, KindDeposit} {
			for _, s := range kindStates[kind] {
				id := uuid.New()
				insertWalkRow(t, pool, l, id, Withdrawal{Kind: kind, State: s, Amount: 100_000, ExpiresAt: walkAt.Add(time.Hour)})
				checkDue(t, pool, id, string(kind)+"/"+string(s)+"/written")
			}
		}
		for _, c := range walkCases() {
			if !c.allow {
				continue
			}
			id := uuid.New()
			insertWalkRow(t, pool, l, id, c.w)
			m := walkMove(c, id)
			if c.ev == EvApprove && c.kind.orWithdrawal() == KindWithdrawal {
				// The reserve sets the code's expiry (service.go).
				m.Set = []Col{{"expires_at", walkAt.Add(2 * time.Hour)}}
			}
			if _, err := st.Apply(context.Background(), m); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			checkDue(t, pool, id, c.name)
		}
	})
}

// TestSweeperReadsTheDueIndex: with the table full of finished rows, as it
// is after a while, every query the sweeper runs, and every count of rows
// in a live state, reads an index (the live rows' withdrawals_due, or
// another), never the whole table: state has no index of its own.
func TestSweeperReadsTheDueIndex(t *testing.T) {
	t.Parallel()
	pool, _ := walkDB(t)
	ctx := context.Background()
	// 20,000 finished rows of both kinds, and a few live ones.
	for _, q := range []string{
		`INSERT INTO withdrawals (id, kind, bank_code, account_number, amount, currency, state, terminal_id, stan, rrn,
			transmitted_at, expires_at, created_at, updated_at, post_office, paid_at, business_date, credited_at, credit_date)
		SELECT gen_random_uuid(), k, 'MB', '97040000' || lpad(i::TEXT, 8, '0'), 100000, '704', s, 'SATM0001', '000001',
			'R' || i::TEXT, t, t + interval '15 minutes', t, t, 'LS-001',
			CASE WHEN s = 'completed' THEN t END, CASE WHEN s = 'completed' THEN t::DATE END,
			CASE WHEN s = 'credited' THEN t END, CASE WHEN s = 'credited' THEN t::DATE END
		FROM generate_series(1, 20000) AS i,
			LATERAL (SELECT now() - (i % 2000) * interval '1 minute' AS t,
				CASE WHEN i % 10 = 0 THEN 'deposit' ELSE 'withdrawal' END AS k) x,
			LATERAL (SELECT CASE WHEN k = 'deposit' THEN (ARRAY['credited', 'deposit_expired'])[1 + i % 2]
				ELSE (ARRAY['completed', 'expired', 'cancelled', 'failed'])[1 + i % 4] END AS s) y`,
		`INSERT INTO withdrawals (id, kind, bank_code, account_number, amount, currency, state, terminal_id, stan, rrn,
			transmitted_at, expires_at, claim_until, created_at, updated_at, post_office)
		SELECT gen_random_uuid(), CASE WHEN s LIKE 'deposit%' OR s IN ('at_counter', 'crediting') THEN 'deposit' ELSE 'withdrawal' END,
			'MB', '9704000000000011', 100000, '704', s, 'SATM0001', '000001', 'L' || i::TEXT || s, now(),
			now() + interval '15 minutes', now() + interval '1 minute', now(), now(), 'LS-001'
		FROM generate_series(1, 5) AS i, unnest(ARRAY['requested', 'reserved', 'claimed', 'paid',
			'deposit_issued', 'at_counter', 'crediting']) AS s`,
		// A paid withdrawal's advice waits in the outbox (or is an
		// exception) until the bank's acknowledgement completes it.
		`INSERT INTO outbox (id, withdrawal_id, seq, kind, state)
		SELECT gen_random_uuid(), id, 1, 'advice', CASE WHEN rrn LIKE 'L1%' THEN 'exception' ELSE 'pending' END
		FROM withdrawals WHERE state = 'paid'`,
		`ANALYZE withdrawals`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	plan := func(name, sql string, args ...any) {
		t.Helper()
		rows, err := pool.Query(ctx, "EXPLAIN "+sql, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var lines []string
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, l)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		text := strings.Join(lines, "\n")
		t.Logf("%s:\n%s", name, text)
		if strings.Contains(text, "Seq Scan on withdrawals") {
			t.Errorf("%s reads the whole table:\n%s", name, text)
		}
	}
	now := time.Now()
	for _, kind := range []Kind{KindWithdrawal, KindDeposit} {
		sqls := map[Kind]map[Event]string{KindWithdrawal: dueSQL, KindDeposit: depositDueSQL}[kind]
		for _, ev := range []Event{EvExpire, EvLapse, EvFail} {
			name := string(kind) + " " + string(ev)
			plan(name, sqls[ev], string(rowsOfKind(kind, ev)[0].From), now, sweepBatch)
			if text := sqls[ev]; !strings.Contains(text, "due_at") {
				t.Errorf("%s: %s does not read due_at", name, text)
			}
		}
	}
	var a sqlArgs
	plan("till room", "SELECT "+TillRoom{PostOffice: "LS-001", Amount: 1}.sql(a.add), a.args...)
	plan("open claims", `SELECT count(*) FROM withdrawals WHERE due_at IS NOT NULL AND state = $1`, string(StateClaimed))
	// The gauge's counts, through the store: each of its queries.
	st := newPGStore(pool, nil, nil)
	counts, err := st.CountByState(ctx, []string{"requested", "reserved", "claimed", "paid"},
		[]string{"completed", "declined", "failed", "cancelled", "expired"}, now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// The same counts as the plain count by state (the gauge's query
	// before 00051) gives.
	rows, err := pool.Query(ctx, `SELECT state, COUNT(*) FROM withdrawals WHERE kind = 'withdrawal'
		AND (state IN ('requested', 'reserved', 'claimed', 'paid') OR created_at > $1) GROUP BY state`, now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{}
	var (
		state string
		n     int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&state, &n}, func() error { want[state] = float64(n); return nil }); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(counts, want) || counts["paid"] != 5 {
		t.Errorf("counts %v, want %v", counts, want)
	}
	plan("count paid", `SELECT w.state, COUNT(*) FROM withdrawals w WHERE w.state = ANY($1) AND w.id IN
		(SELECT o.withdrawal_id FROM outbox o WHERE o.state IN ('pending', 'exception') AND o.kind = $2)
		GROUP BY w.state`, []string{"paid"}, string(MsgAdvice))
	plan("count live", `SELECT state, COUNT(*) FROM withdrawals WHERE due_at IS NOT NULL AND state = ANY($1) GROUP BY state`,
		[]string{"requested", "reserved", "claimed"})
	plan("count finished", `SELECT state, COUNT(*) FROM withdrawals WHERE created_at > $2 AND state = ANY($1) GROUP BY state`,
		[]string{"completed", "expired"}, now.Add(-time.Hour))
}

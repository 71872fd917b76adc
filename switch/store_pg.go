package atmswitch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/switch/seal"
)

// pgStore is the Store on PostgreSQL. Every write is a unit of the ledger's
// committer (ledger.Commit / ledger.Exec): one writer for the switch's
// tables and the ledger's, so SERIALIZABLE has nothing to abort and writes
// share commits. Reads go to the pool, re-run on a serialization failure or
// a lost connection (retryReads).
//
// A code's signed payload pays at a kiosk, so the row keeps it sealed
// (seal.Box, bound to the withdrawal's id): reading the table with psql is
// not enough to cash a code. A Col whose value is a secretText is sealed on
// the way in; every withdrawal read is opened on the way out. The holder's
// full name is kept the same way under its own key (names, a sealedName).
type pgStore struct {
	pool   *pgxpool.Pool
	reads  retryReads
	ledger *ledger.Ledger
	box    *seal.Box // nil: the payload is neither sealed nor opened (the outbox never reads it)
	// names seals the holder's full name; nil: names are not opened, and a
	// move that would write one is refused rather than stored in clear.
	names *seal.Box
	// ids seals the ID number typed for a large-cash deposit; nil: a move
	// that would write one is refused (errNoIDBox).
	ids *seal.Box
}

func newPGStore(pool *pgxpool.Pool, l *ledger.Ledger, box *seal.Box) *pgStore {
	return &pgStore{pool: pool, reads: retryReads{pool}, ledger: l, box: box}
}

// secretText is a column value the store keeps sealed.
type secretText string

// sealedName is a holder's full name, sealed with the names box.
type sealedName string

// errNoNameBox: a store without its names box was asked to write a name.
var errNoNameBox = errors.New("store: no key to seal the holder's name with")

// errNoIDBox: a store without its ids box was asked to write an ID number.
var errNoIDBox = errors.New("store: no key to seal the ID number with")

// opened opens the sealed payload of a withdrawal just read.
func (p *pgStore) opened(w Withdrawal, err error) (Withdrawal, error) {
	if err != nil || p.box == nil {
		return w, err
	}
	w.QRPayload, err = p.box.OpenText(w.QRPayload, w.ID.String())
	if err != nil {
		return Withdrawal{}, fmt.Errorf("withdrawal %s: its code: %w", w.ID, err)
	}
	if p.names == nil {
		w.HolderName = ""
		return w, nil
	}
	if w.HolderName, err = p.names.OpenText(w.HolderName, w.ID.String()); err != nil {
		return Withdrawal{}, fmt.Errorf("withdrawal %s: its holder's name: %w", w.ID, err)
	}
	return w, nil
}

const withdrawalColumns = `id, bank_code, account_number, holder_name_masked, amount, currency, state,
	terminal_id, stan, rrn, transmitted_at, approval_code, approved_amount, response_code,
	key_id, qr_payload, COALESCE(expires_at, 'epoch'),
	claimed_by, claimed_kiosk, COALESCE(claim_until, 'epoch'),
	paid_by, paid_kiosk, post_office, COALESCE(paid_at, credited_at, 'epoch'), COALESCE(business_date, credit_date, 'epoch'),
	created_at, updated_at, numeric_blocked, holder_name_sealed, kind, COALESCE(confirm_key, '')`

// scanTargets are the destinations of withdrawalColumns, then extra.
func scanTargets(w *Withdrawal, extra ...any) []any {
	return append([]any{&w.ID, &w.Bank, &w.Account, &w.HolderNameMasked, &w.Amount, &w.Currency, (*string)(&w.State),
		&w.TerminalID, &w.STAN, &w.RRN, &w.TransmittedAt, &w.ApprovalCode, &w.ApprovedAmount, &w.ResponseCode,
		&w.KeyID, &w.QRPayload, &w.ExpiresAt,
		&w.ClaimedBy, &w.ClaimedKiosk, &w.ClaimUntil,
		&w.PaidBy, &w.PaidKiosk, &w.PostOffice, &w.PaidAt, &w.BusinessDate,
		&w.CreatedAt, &w.UpdatedAt, &w.NumericBlocked, &w.HolderName, (*string)(&w.Kind), &w.ConfirmKey}, extra...)
}

func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return softatm.Errorf(softatm.ENotFound, "withdrawal not found")
	}
	return err
}

func isUniqueViolation(err error, constraint string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == constraint
}

// InsertRequest writes the withdrawal's first row directly (ledger.Direct):
// a new row its unique keys guard needs no turn of the committer.
func (p *pgStore) InsertRequest(ctx context.Context, w Withdrawal) error {
	_, err := p.ledger.Direct(ctx, &ledger.Stmt{SQL: `INSERT INTO withdrawals (id, bank_code, account_number, holder_name_masked,
			amount, currency, state, terminal_id, stan, rrn, transmitted_at, created_at, updated_at, client_key, client_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $11, NULLIF($12, ''), $13)`,
		Args: []any{w.ID, w.Bank, w.Account, w.HolderNameMasked, w.Amount, w.Currency, string(StateRequested),
			w.TerminalID, w.STAN, w.RRN, w.CreatedAt, w.ClientKey, w.Client}})
	switch {
	case isUniqueViolation(err, "withdrawals_rrn_key"):
		return errRRNTaken
	case isUniqueViolation(err, "withdrawals_client_key_key"):
		return errKeyBound
	}
	return err
}

func (p *pgStore) ByClientKey(ctx context.Context, key string) (Withdrawal, error) {
	var w Withdrawal
	err := p.reads.QueryRow(ctx, `SELECT `+withdrawalColumns+` FROM withdrawals WHERE client_key = $1`, key).Scan(scanTargets(&w)...)
	return p.opened(w, notFound(err))
}

// Renumber is no state change: the code stays reserved, with another
// numeric handle.
func (p *pgStore) Renumber(ctx context.Context, id uuid.UUID, numericHash []byte) error {
	_, err := p.ledger.Exec(ctx, &ledger.Stmt{SQL: `UPDATE withdrawals SET numeric_hash = $2 WHERE id = $1 AND state = $3`,
		Args: []any{id, numericHash, string(StateReserved)}, MustChange: true})
	if isUniqueViolation(err, "withdrawals_numeric_hash_key") {
		return errNumericTaken
	}
	return err
}

func (p *pgStore) Get(ctx context.Context, id uuid.UUID) (Withdrawal, error) {
	var w Withdrawal
	err := p.reads.QueryRow(ctx, `SELECT `+withdrawalColumns+` FROM withdrawals WHERE id = $1`, id).Scan(scanTargets(&w)...)
	return p.opened(w, notFound(err))
}

// direct says whether move m is committed at once (ledger.Direct) rather
// than in the committer's batch: a claim, which changes one row as its own
// WHERE allows, posts nothing and queues nothing. A move with a guard over
// other rows (Move.guarded) never is: the committer runs those one at a
// time, which is what keeps two of them from both passing it.
func direct(m Move) bool {
	t := targetOf(m.Kind, m.Event)
	return m.Event == EvClaim && t.Posts == PostNone && t.Queues == MsgNone && !m.guarded()
}

// Apply commits the move's statement (moveStmt) with its transfers. A move
// that posts nothing and needs no business date commits undated, which
// spares the batch a business-day look-up.
func (p *pgStore) Apply(ctx context.Context, m Move) (ledger.Result, error) {
	m.Set = slices.Clone(m.Set)
	for i, c := range m.Set {
		if v, ok := c.Value.(secretText); ok {
			c.Value = string(v)
			if p.box != nil {
				c.Value = p.box.SealText(string(v), m.ID.String())
			}
			m.Set[i] = c
		}
		if v, ok := c.Value.(sealedID); ok {
			if p.ids == nil {
				return ledger.Result{}, errNoIDBox
			}
			c.Value = p.ids.SealText(string(v), m.ID.String())
			m.Set[i] = c
		}
		if v, ok := c.Value.(sealedName); ok {
			if p.names == nil {
				return ledger.Result{}, errNoNameBox
			}
			c.Value = p.names.SealText(string(v), m.ID.String())
			m.Set[i] = c
		}
	}
	into := m.Into
	st := moveStmt(m)
	var (
		res ledger.Result
		err error
	)
	switch transfers := postings(m); {
	case len(transfers) > 0:
		res, err = p.ledger.Commit(ctx, ledger.Unit{At: m.At, Cutoff: m.Cutoff, Stmt: st, Transfers: transfers})
	case direct(m):
		res.Changed, err = p.ledger.Direct(ctx, st)
	default:
		res.Changed, err = p.ledger.Exec(ctx, st)
	}
	if isUniqueViolation(err, "withdrawals_numeric_hash_key") {
		return res, errNumericTaken
	}
	if err == nil && res.Changed > 0 {
		changes.changed(m.ID)
	}
	if err == nil && into != nil {
		*into, err = p.opened(*into, nil)
	}
	return res, err
}

// dueSQL is the sweeper's query per event, for withdrawals and deposits
// alike: the rows its transition leaves whose time has come. They read the
// live rows' index, withdrawals_due (migration 00051): state has no index
// of its own, so that a claim and a completion are HOT updates. due_at is
// the column each query compared before: expires_at for a code (expire),
// created_at for a request and the confirm's updated_at for a credit
// (fail). A claim's lapse is timed by claim_until, which no index holds:
// it is looked for among the live rows, which are few.
var dueSQL = map[Event]string{
	EvExpire: `SELECT id FROM withdrawals WHERE due_at < $2 AND state = $1 LIMIT $3`,
	EvLapse:  `SELECT id FROM withdrawals WHERE due_at IS NOT NULL AND state = $1 AND claim_until < $2 LIMIT $3`,
	EvFail:   `SELECT id FROM withdrawals WHERE due_at < $2 AND state = $1 LIMIT $3`,
}

func (p *pgStore) Due(ctx context.Context, ev Event, before time.Time, n int) ([]uuid.UUID, error) {
	q, ok := dueSQL[ev]
	if !ok {
		return nil, fmt.Errorf("no sweep for event %s", ev)
	}
	rows, err := p.pool.Query(ctx, q, string(rowsOf(ev)[0].From), before, n)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

func (p *pgStore) BankNames(ctx context.Context) (map[string]string, error) {
	rows, err := p.pool.Query(ctx, `SELECT code, name FROM banks`)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var code, name string
	_, err = pgx.ForEachRow(rows, []any{&code, &name}, func() error {
		out[code] = name
		return nil
	})
	return out, err
}

func (p *pgStore) BankRanges(ctx context.Context) (map[string][]string, error) {
	return ReadBankRanges(ctx, p.pool)
}

// ReadBankRanges reads every bank's account ranges (bank code → prefixes);
// `softatm admin bank` checks an edit against them (CheckRanges).
func ReadBankRanges(ctx context.Context, pool *pgxpool.Pool) (map[string][]string, error) {
	rows, err := pool.Query(ctx, `SELECT code, account_ranges FROM banks`)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	var (
		code   string
		ranges []string
	)
	_, err = pgx.ForEachRow(rows, []any{&code, &ranges}, func() error {
		out[code] = ranges
		return nil
	})
	return out, err
}

// ActiveByAccount reads through the (bank_code, account_number,
// created_at) index; an account has few rows a day.
func (p *pgStore) ActiveByAccount(ctx context.Context, bank, account string, now time.Time, n int) ([]Withdrawal, error) {
	return p.list(ctx, `SELECT `+withdrawalColumns+` FROM withdrawals
		WHERE bank_code = $1 AND account_number = $2 AND state IN `+stateList(ActiveStates)+`
		  AND (state = $3 OR expires_at > $4)
		ORDER BY created_at DESC LIMIT $5`, bank, account, string(StateClaimed), now, n)
}

// list reads the withdrawals a query of withdrawalColumns returns, opened.
func (p *pgStore) list(ctx context.Context, sql string, args ...any) ([]Withdrawal, error) {
	rows, err := p.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Withdrawal, error) {
		var w Withdrawal
		err := row.Scan(scanTargets(&w)...)
		return w, err
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		if out[i], err = p.opened(out[i], nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p *pgStore) BankCutoffs(ctx context.Context) (map[string]ledger.Cutoff, error) {
	return BankCutoffs(ctx, p.pool)
}

func (p *pgStore) BankLimits(ctx context.Context) (map[string]BankLimits, error) {
	rows, err := p.pool.Query(ctx, `SELECT code, amount_min, amount_max, amount_multiple, account_daily_max FROM banks`)
	if err != nil {
		return nil, err
	}
	out := map[string]BankLimits{}
	var (
		code string
		l    BankLimits
	)
	_, err = pgx.ForEachRow(rows, []any{&code, &l.AmountMin, &l.AmountMax, &l.AmountMultiple, &l.AccountDailyMax}, func() error {
		out[code] = l
		l = BankLimits{}
		return nil
	})
	return out, err
}

func (p *pgStore) AccountUsed(ctx context.Context, bank, account string, since time.Time) (int64, error) {
	var used int64
	err := p.reads.QueryRow(ctx, `SELECT COALESCE(SUM(amount), 0) FROM withdrawals
		WHERE bank_code = $1 AND account_number = $2 AND created_at > $3 AND state IN `+stateList(LiveStates),
		bank, account, since).Scan(&used)
	return used, err
}

func (p *pgStore) NumericHandle(ctx context.Context, numericHash []byte) (uuid.UUID, bool, error) {
	var id uuid.UUID
	var blocked bool
	err := p.reads.QueryRow(ctx, `SELECT id, numeric_blocked FROM withdrawals WHERE numeric_hash = $1`,
		numericHash).Scan(&id, &blocked)
	return id, blocked, notFound(err)
}

func (p *pgStore) CountWrongPhone(ctx context.Context, id uuid.UUID, phoneHash []byte, blockAt int) (bool, bool, error) {
	var blockedNow bool
	n, err := p.ledger.Exec(ctx, &ledger.Stmt{
		SQL: `UPDATE withdrawals SET numeric_failures = numeric_failures + 1, numeric_blocked = numeric_failures + 1 >= $3
			WHERE id = $1 AND NOT numeric_blocked AND phone_last4_hash IS DISTINCT FROM $2
			RETURNING numeric_blocked`,
		Args: []any{id, phoneHash, blockAt},
		Row:  func(row pgx.Row) error { return row.Scan(&blockedNow) },
	})
	return n == 1, blockedNow, err
}

func (p *pgStore) Till(ctx context.Context, po string) (cash, limit int64, err error) {
	err = p.reads.QueryRow(ctx, `SELECT a.debits_posted - a.credits_posted - a.credits_pending, p.daily_limit
		FROM post_offices p JOIN accounts a ON a.code = $2 WHERE p.code = $1`,
		po, ledger.TillCode(po)).Scan(&cash, &limit)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, softatm.Errorf(softatm.ENotFound, "post office %s has no till", po)
	}
	return cash, limit, err
}

func (p *pgStore) PaidOn(ctx context.Context, po string, day time.Time) (int64, error) {
	var paid int64
	err := p.reads.QueryRow(ctx, `SELECT COALESCE(SUM(amount), 0) FROM withdrawals
		WHERE post_office = $1 AND business_date = $2 AND paid_at IS NOT NULL`, po, day).Scan(&paid)
	return paid, err
}

func (p *pgStore) WithFee(ctx context.Context, id uuid.UUID) (Withdrawal, int64, error) {
	var w Withdrawal
	var fee int64
	err := p.reads.QueryRow(ctx, `SELECT `+withdrawalColumns+`,
		COALESCE((SELECT fee_amount FROM banks b WHERE b.code = withdrawals.bank_code), -1)
		FROM withdrawals WHERE id = $1`, id).Scan(scanTargets(&w, &fee)...)
	if err == nil && fee < 0 {
		err = fmt.Errorf("reading bank fee: bank %s not found", w.Bank)
	}
	w, err = p.opened(w, notFound(err))
	return w, fee, err
}

func (p *pgStore) Payouts(ctx context.Context, po string, day time.Time, n int) ([]Receipt, int64, int64, error) {
	return p.cashMoved(ctx, "paid_at", "business_date", po, day, n)
}

// cashMoved lists up to n rows of a post office whose cash moved (at the
// time column at, on the business date column date) on day, newest first,
// with their count and sum: payouts (paid_at, business_date) and deposits
// (credited_at, credit_date) alike. The column names are the callers'
// constants, never input.
func (p *pgStore) cashMoved(ctx context.Context, at, date, po string, day time.Time, n int) ([]Receipt, int64, int64, error) {
	rows, err := p.pool.Query(ctx, `SELECT w.id, w.amount, w.currency, w.`+at+`, w.paid_kiosk, COALESCE(u.username, '')
		FROM withdrawals w LEFT JOIN users u ON u.id::text = w.paid_by
		WHERE w.post_office = $1 AND w.`+date+` = $2 AND w.`+at+` IS NOT NULL
		ORDER BY w.`+at+` DESC LIMIT $3`, po, day, n)
	if err != nil {
		return nil, 0, 0, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Receipt, error) {
		r := Receipt{PostOffice: po, BusinessDate: day.Format("2006-01-02")}
		err := row.Scan(&r.WithdrawalID, &r.Amount, &r.Currency, &r.PaidAt, &r.Kiosk, &r.Teller)
		return r, err
	})
	if err != nil {
		return nil, 0, 0, err
	}
	var count, sum int64
	err = p.reads.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM withdrawals
		WHERE post_office = $1 AND `+date+` = $2 AND `+at+` IS NOT NULL`, po, day).Scan(&count, &sum)
	return out, count, sum, err
}

func (p *pgStore) Lease(ctx context.Context, owner string, now, until time.Time, n int, banks []string) ([]outboxMsg, error) {
	var msgs []outboxMsg
	// A statement unit, read by Rows: the lease rides in the batch's one
	// pipelined round trip instead of a savepoint and round trips of its own.
	_, err := p.ledger.Exec(ctx, &ledger.Stmt{SQL: `UPDATE outbox SET lease_owner = $1, lease_until = $2
			WHERE id IN (
				SELECT o.id FROM outbox o
				WHERE o.state = 'pending' AND o.next_attempt_at <= $3
				  AND (o.lease_until IS NULL OR o.lease_until < $3)
				  AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.withdrawal_id = o.withdrawal_id
				                  AND p.seq < o.seq AND p.state = 'pending')
				  AND ($5::TEXT[] IS NULL OR EXISTS (SELECT 1 FROM withdrawals w WHERE w.id = o.withdrawal_id
				                  AND w.bank_code = ANY ($5::TEXT[])))
				ORDER BY o.next_attempt_at LIMIT $4)
			RETURNING id, withdrawal_id, kind, attempts`, Args: []any{owner, until, now, n, banks},
		Rows: func(rows pgx.Rows) error {
			var err error
			msgs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (outboxMsg, error) {
				var m outboxMsg
				err := row.Scan(&m.id, &m.withdrawalID, &m.kind, &m.attempts)
				return m, err
			})
			return err
		}})
	return msgs, err
}

func (p *pgStore) AnyDue(ctx context.Context, now time.Time, banks []string) (bool, error) {
	var due bool
	err := p.reads.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM outbox o JOIN withdrawals w ON w.id = o.withdrawal_id
		WHERE o.state = 'pending' AND o.next_attempt_at <= $1 AND (o.lease_until IS NULL OR o.lease_until < $1)
		  AND w.bank_code = ANY ($2::TEXT[]))`, now, banks).Scan(&due)
	return due, err
}

func (p *pgStore) ForMessage(ctx context.Context, id uuid.UUID) (Withdrawal, PaidAt, error) {
	var w Withdrawal
	var po PaidAt
	err := p.reads.QueryRow(ctx, `SELECT `+withdrawalColumns+`,
		COALESCE((SELECT name FROM post_offices p WHERE p.code = withdrawals.post_office), ''),
		COALESCE((SELECT location FROM post_offices p WHERE p.code = withdrawals.post_office), '')
		FROM withdrawals WHERE id = $1`, id).Scan(scanTargets(&w, &po.Name, &po.Location)...)
	return w, po, notFound(err)
}

// Answered is one statement: the message ends and, for an acknowledged
// advice, the withdrawal completes — the lifecycle's EvComplete, whose
// UPDATE (moveUpdate) takes its id from the answered message. The same
// statement queues the callbacks (callbacks.go): the completion, or, for an
// acknowledged reversal, EventReversed.
func (p *pgStore) Answered(ctx context.Context, m outboxMsg, state, rc string, now time.Time) (bool, error) {
	var a sqlArgs
	answer := fmt.Sprintf(`UPDATE outbox SET state = %s, response_code = %s, attempts = attempts + 1,
			done_at = %s, lease_owner = '', lease_until = NULL WHERE id = %s AND state = 'pending'
			RETURNING withdrawal_id`, a.add(state), a.add(rc), a.add(now), a.add(m.id))
	completes := m.kind == string(MsgAdvice) && state == "done"
	reversed := m.kind == string(MsgReversal) && state == "done"
	done := Move{Event: EvComplete, At: now}
	if !m.bankDate.IsZero() {
		done.Set = []Col{{"bank_business_date", m.bankDate}}
	}
	complete := moveUpdate(done, &a, "(SELECT withdrawal_id FROM answered)")
	n, err := p.ledger.Exec(ctx, &ledger.Stmt{
		SQL: fmt.Sprintf(`WITH answered AS (%s), moved AS (%s AND %s RETURNING id, client_id, state), %s, %s
			SELECT 1 FROM answered`, answer, complete, a.add(completes),
			notifyCTE(&a, "notified", EvComplete, now, "moved", ""),
			notifyCTE(&a, "reversed", EventReversed, now,
				"(SELECT w.id, w.client_id, w.state FROM withdrawals w JOIN answered ON w.id = answered.withdrawal_id)",
				a.add(reversed)+"::BOOLEAN")),
		Args: a.args})
	// The statement returns a row only if it ended the message (an
	// exception is counted only then).
	if err == nil && n > 0 {
		changes.changed(m.withdrawalID)
	}
	return n > 0, err
}

func (p *pgStore) RetryLater(ctx context.Context, m outboxMsg, state string, attempts int, next time.Time, cause string) (bool, error) {
	n, err := p.ledger.Exec(ctx, &ledger.Stmt{SQL: `UPDATE outbox SET state = $2, attempts = $3, next_attempt_at = $4, last_error = $5,
			lease_owner = '', lease_until = NULL WHERE id = $1 AND state = 'pending'`,
		Args: []any{m.id, state, attempts, next, cause}})
	return n > 0, err
}

// ReplyMismatch is an outbox row of its own kind, born an exception: the
// finance page lists it with the advices and reversals that failed, and
// the worker never sends it.
func (p *pgStore) ReplyMismatch(ctx context.Context, id uuid.UUID, detail string, at time.Time) error {
	_, err := p.ledger.Exec(ctx, &ledger.Stmt{SQL: `INSERT INTO outbox (id, withdrawal_id, seq, kind, state, last_error, created_at)
		SELECT $1, $2, COALESCE((SELECT MAX(seq) FROM outbox WHERE withdrawal_id = $2), 0) + 1, $3, 'exception', $4, $5`,
		Args: []any{uuid.New(), id, kindReplyMismatch, detail, at}})
	return err
}

// Exceptions lists the outbox's exceptions and the callbacks given up
// (kind "callback", response_code the receiver's last HTTP status) together.
func (p *pgStore) Exceptions(ctx context.Context, n int) ([]OutboxException, error) {
	rows, err := p.pool.Query(ctx, `SELECT * FROM (
			SELECT o.id, o.withdrawal_id, o.kind, o.attempts, o.response_code, o.last_error,
				w.rrn, w.amount, w.bank_code, o.created_at, o.resolved_note <> '' AS resolved, o.resolved_note
			FROM outbox o JOIN withdrawals w ON w.id = o.withdrawal_id WHERE o.state = 'exception'
			UNION ALL
			SELECT c.id, c.withdrawal_id, $2, c.attempts, CASE WHEN c.last_status = 0 THEN '' ELSE c.last_status::TEXT END,
				c.last_error, w.rrn, w.amount, w.bank_code, c.occurred_at, c.resolved_note <> '', c.resolved_note
			FROM callbacks c JOIN withdrawals w ON w.id = c.withdrawal_id WHERE c.delivery = 'exception') x
		ORDER BY resolved, created_at LIMIT $1`, n, kindCallback)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (OutboxException, error) {
		var e OutboxException
		err := row.Scan(&e.ID, &e.WithdrawalID, &e.Kind, &e.Attempts, &e.ResponseCode, &e.LastError,
			&e.RRN, &e.Amount, &e.Bank, &e.CreatedAt, &e.Resolved, &e.ResolvedNote)
		return e, err
	})
}

var errNoException = softatm.Errorf(softatm.ENotFound, "exception not found")

// ResolveException and Requeue find the exception among the outbox's and
// the callbacks' in one statement; ids are UUIDs, so at most one matches.
func (p *pgStore) ResolveException(ctx context.Context, id uuid.UUID, note string) error {
	_, err := p.ledger.Exec(ctx, &ledger.Stmt{SQL: `WITH o AS (UPDATE outbox SET resolved_note = $2 WHERE id = $1 AND state = 'exception' RETURNING 1),
			c AS (UPDATE callbacks SET resolved_note = $2 WHERE id = $1 AND delivery = 'exception' RETURNING 1)
		SELECT 1 FROM o UNION ALL SELECT 1 FROM c`,
		Args: []any{id, note}, MustChange: true})
	if errors.Is(err, ledger.ErrUnchanged) {
		return errNoException
	}
	return err
}

func (p *pgStore) Requeue(ctx context.Context, id uuid.UUID, now time.Time) error {
	_, err := p.ledger.Exec(ctx, &ledger.Stmt{SQL: `WITH o AS (UPDATE outbox SET state = 'pending', attempts = 1, next_attempt_at = $2
			WHERE id = $1 AND state = 'exception' AND kind IN ($3, $4) RETURNING 1),
			c AS (UPDATE callbacks SET delivery = 'pending', attempts = 0, next_attempt_at = $2
			WHERE id = $1 AND delivery = 'exception' RETURNING 1)
		SELECT 1 FROM o UNION ALL SELECT 1 FROM c`,
		Args: []any{id, now, string(MsgAdvice), string(MsgReversal)}, MustChange: true})
	if errors.Is(err, ledger.ErrUnchanged) {
		return errNoException
	}
	return err
}

func (p *pgStore) OutboxDepth(ctx context.Context) (int64, time.Time, error) {
	var depth int64
	var oldest time.Time
	err := p.pool.QueryRow(ctx, `SELECT COUNT(*), COALESCE(MIN(created_at), now()) FROM outbox WHERE state = 'pending'`).Scan(&depth, &oldest)
	return depth, oldest, err
}

// CountByState counts the withdrawals in the live states, and those in the
// finished states created since. State has no index (migration 00051), so
// each count reads an index of its own: the states the sweeper watches
// among the live rows (withdrawals_due); paid ones through their advice,
// which stays pending or an exception until the bank's acknowledgement
// completes the withdrawal in the same statement (Answered); the finished
// ones by created_at. A live state none of these serves is refused rather
// than counted by reading the whole table.
func (p *pgStore) CountByState(ctx context.Context, live, finished []string, since time.Time) (map[string]float64, error) {
	var due, paid []string
	for _, s := range live {
		switch {
		case slices.Contains(DueStates, State(s)):
			due = append(due, s)
		case s == string(StatePaid):
			paid = append(paid, s)
		default:
			return nil, fmt.Errorf("counting withdrawals: no index serves live state %q", s)
		}
	}
	counts := map[string]float64{}
	// Read-only, but the server's default is SERIALIZABLE: retried like any
	// transaction so that a conflict does not blank the gauge.
	err := ledger.RunTx(ctx, p.pool, ledger.DefaultMaxRetries, func(tx pgx.Tx) error {
		clear(counts)
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`SELECT state, COUNT(*) FROM withdrawals WHERE due_at IS NOT NULL AND state = ANY($1) GROUP BY state`, []any{due}},
			{`SELECT w.state, COUNT(*) FROM withdrawals w WHERE w.state = ANY($1) AND w.id IN
				(SELECT o.withdrawal_id FROM outbox o WHERE o.state IN ('pending', 'exception') AND o.kind = $2)
				GROUP BY w.state`, []any{paid, string(MsgAdvice)}},
			{`SELECT state, COUNT(*) FROM withdrawals WHERE created_at > $2 AND state = ANY($1) GROUP BY state`,
				[]any{finished, since}},
		} {
			rows, err := tx.Query(ctx, q.sql, q.args...)
			if err != nil {
				return err
			}
			var (
				state string
				n     int64
			)
			if _, err := pgx.ForEachRow(rows, []any{&state, &n}, func() error { counts[state] = float64(n); return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	return counts, err
}

// readRetriesMax bounds the re-runs of a lone read (outside a transaction)
// that PostgreSQL aborted with 40001: the server runs SERIALIZABLE by
// default, and under load even a read-only statement can be the one chosen
// to break a dependency cycle. Retrying it is safe: it wrote nothing.
const readRetriesMax = 5

// retryReads is a querier over the pool whose rows re-run their query on a
// serialization failure or a lost connection (the pool hands out another).
type retryReads struct{ pool *pgxpool.Pool }

func (r retryReads) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return retryRow{ctx: ctx, pool: r.pool, sql: sql, args: args}
}

type retryRow struct {
	ctx  context.Context
	pool *pgxpool.Pool
	sql  string
	args []any
}

func (r retryRow) Scan(dest ...any) error {
	var err error
	for range readRetriesMax + 1 {
		err = r.pool.QueryRow(r.ctx, r.sql, r.args...).Scan(dest...)
		if !(ledger.IsRetryable(err) || ledger.IsConnectionLost(err)) || r.ctx.Err() != nil {
			return err
		}
	}
	return err
}

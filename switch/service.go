package atmswitch

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/switch/code"
)

// Teller is who acts at a kiosk.
type Teller struct {
	UserID     string
	Username   string
	PostOffice string
	Kiosk      string
}

func (t Teller) holder() string { return t.UserID + "@" + t.Kiosk }

// Service runs the withdrawal lifecycle.
type Service struct {
	cfg    Config
	pool   *pgxpool.Pool
	reads  retryReads // lone reads, re-run on a serialization failure or a lost connection
	ledger *ledger.Ledger
	bank   Bank
	codes  Codes
	gate   Gate
	now    func() time.Time
	log    *slog.Logger
	m      *Metrics
	kick   func() // wakes the outbox worker; may be nil
	// numeric draws numeric codes (code.NewNumeric; tests force a collision).
	numeric func() (string, error)
}

// Deps are the Service's collaborators.
type Deps struct {
	Pool    *pgxpool.Pool
	Ledger  *ledger.Ledger
	Bank    Bank
	Codes   Codes
	Gate    Gate
	Clock   func() time.Time // defaults to time.Now
	Log     *slog.Logger
	Metrics *Metrics
	Kick    func()
}

// NewService returns a Service.
func NewService(cfg Config, d Deps) *Service {
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics(nil)
	}
	return &Service{cfg: cfg, pool: d.Pool, reads: retryReads{d.Pool}, ledger: d.Ledger, bank: d.Bank, codes: d.Codes, gate: d.Gate,
		now: d.Clock, log: d.Log, m: d.Metrics, kick: d.Kick, numeric: code.NewNumeric}
}

// tx runs fn through the ledger's committer (ledger.Run): every write of
// the switch goes the same way, so writes never overlap and a batch of them
// shares one commit.
func (s *Service) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.ledger.Run(ctx, fn)
}

// CreateRequest is what a bank's app asks for.
type CreateRequest struct {
	Account    string `json:"account"`
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency"`
	HolderName string `json:"holder_name"`
	PhoneLast4 string `json:"phone_last4"`
}

// Issued is a freshly issued code. Numeric is shown once: only its keyed
// hash is stored.
type Issued struct {
	Withdrawal Withdrawal
	Numeric    string
}

var (
	accountRe = regexp.MustCompile(`^[0-9]{6,28}$`)
	last4Re   = regexp.MustCompile(`^[0-9]{4}$`)
)

func (s *Service) validate(r *CreateRequest) error {
	switch strings.ToUpper(strings.TrimSpace(r.Currency)) {
	case "", "VND", "704":
		r.Currency = s.cfg.Currency
	default:
		return softatm.Errorf(softatm.EInvalid, "currency %q is not supported; use VND", r.Currency)
	}
	if !accountRe.MatchString(r.Account) {
		return softatm.Errorf(softatm.EInvalid, "account must be 6 to 28 digits")
	}
	if !last4Re.MatchString(r.PhoneLast4) {
		return softatm.Errorf(softatm.EInvalid, "phone_last4 must be the last 4 digits of the citizen's phone")
	}
	if r.Amount <= 0 {
		return softatm.Errorf(softatm.EInvalidAmount, "amount must be positive")
	}
	if r.Amount < s.cfg.AmountMin || r.Amount > s.cfg.AmountMax {
		return softatm.Errorf(softatm.EInvalidAmount, "amount must be between %d and %d", s.cfg.AmountMin, s.cfg.AmountMax)
	}
	if r.Amount%s.cfg.NoteUnit != 0 {
		return softatm.Errorf(softatm.EInvalidAmount, "amount must be a multiple of %d", s.cfg.NoteUnit)
	}
	r.HolderName = strings.TrimSpace(r.HolderName)
	if err := checkName("holder_name", r.HolderName); err != nil {
		return err
	}
	if len(r.HolderName) > 100 {
		return softatm.Errorf(softatm.EInvalid, "holder_name is too long")
	}
	return nil
}

// MaskName keeps the first letter of each word: "NGUYEN VAN AN" → "N***** V** A*".
func MaskName(name string) string {
	words := strings.Fields(name)
	for i, w := range words {
		r := []rune(w)
		words[i] = string(r[0]) + strings.Repeat("*", len(r)-1)
	}
	return strings.Join(words, " ")
}

// rrnDrawsMax bounds the redraws of a colliding RRN; numericDrawsMax those
// of a colliding numeric code (12 random digits: a redraw is rare).
const (
	rrnDrawsMax     = 5
	numericDrawsMax = 3
)

func isUniqueViolation(err error, constraint string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == constraint
}

// newRRN returns a retrieval reference number: the day of the year and 8
// random digits, unique per business day by the database's UNIQUE index.
func newRRN(now time.Time) (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(100_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d%03d%08d", now.Year()%10, now.YearDay(), n.Int64()), nil
}

// Create reserves the money at the bank and issues a code. The withdrawal
// row is committed before the 0100 leaves, so that whatever happens next —
// no reply, a crash — the sweeper finds it and reverses the hold.
func (s *Service) Create(ctx context.Context, bank string, r CreateRequest) (Issued, error) {
	if err := s.validate(&r); err != nil {
		return Issued{}, err
	}
	now := s.now()
	id := uuid.New()
	stan := s.bank.NextSTAN()
	if err := s.checkAccountDaily(ctx, bank, r.Account, r.Amount, now); err != nil {
		return Issued{}, err
	}
	// An RRN has 8 random digits per day of the year, so two requests of a
	// busy day can draw the same one; the UNIQUE index catches it and we draw
	// again.
	var rrn string
	var err error
	for attempt := 0; ; attempt++ {
		if rrn, err = newRRN(now); err != nil {
			return Issued{}, err
		}
		_, err = s.ledger.Exec(ctx, &ledger.Stmt{SQL: `INSERT INTO withdrawals (id, bank_code, account_number, holder_name_masked,
				amount, currency, state, terminal_id, stan, rrn, transmitted_at, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, 'requested', $7, $8, $9, $10, $10, $10)`,
			Args: []any{id, bank, r.Account, MaskName(r.HolderName), r.Amount, r.Currency, s.cfg.TerminalID, stan, rrn, now}})
		if !isUniqueViolation(err, "withdrawals_rrn_key") || attempt == rrnDrawsMax {
			break
		}
	}
	if err != nil {
		return Issued{}, fmt.Errorf("recording request: %w", err)
	}
	s.m.transition(StateRequested)

	actx, cancel := context.WithTimeout(ctx, s.cfg.AuthTimeout)
	resp, err := s.bank.Authorize(actx, iso.AuthRequest{
		STAN: stan, RRN: rrn, TransmittedAt: now, Account: r.Account, Amount: r.Amount, Currency: r.Currency,
		TerminalID: s.cfg.TerminalID, CardAcceptor: "SOFTATM", AcceptorName: s.cfg.AcceptorName,
	})
	cancel()
	if err != nil {
		s.log.Warn("no usable 0110; reversing", "withdrawal", id, "account", iso.Mask(r.Account), "err", err)
		if ferr := s.fail(ctx, id); ferr != nil {
			return Issued{}, ferr
		}
		return Issued{}, softatm.Wrap(softatm.EBankUnavailable, "the bank did not answer in time; nothing was reserved", err)
	}
	if resp.ResponseCode != iso.RCApproved {
		return Issued{}, s.decline(ctx, id, resp.ResponseCode)
	}
	crashPoint(CrashAfterAuthorize)
	return s.reserve(ctx, id, bank, r, resp.ApprovalCode)
}

func (s *Service) checkAccountDaily(ctx context.Context, bank, account string, amount int64, now time.Time) error {
	if s.cfg.AccountDailyMax <= 0 {
		return nil
	}
	var used int64
	err := s.reads.QueryRow(ctx, `SELECT COALESCE(SUM(amount), 0) FROM withdrawals
		WHERE bank_code = $1 AND account_number = $2 AND created_at > $3
		  AND state IN ('requested','reserved','claimed','paid','completed')`,
		bank, account, now.Add(-24*time.Hour)).Scan(&used)
	if err != nil {
		return err
	}
	if used+amount > s.cfg.AccountDailyMax {
		return softatm.Errorf(softatm.ELimit, "this account may withdraw at most %d a day", s.cfg.AccountDailyMax)
	}
	return nil
}

// fail marks a request with no usable answer failed and queues its reversal.
func (s *Service) fail(ctx context.Context, id uuid.UUID) error {
	now := s.now()
	_, err := s.ledger.Exec(ctx, moveQueueStmt("reversal", now, `UPDATE withdrawals SET state = 'failed', updated_at = $2
			WHERE id = $1 AND state = 'requested'`, id, now))
	if errors.Is(err, ledger.ErrUnchanged) {
		return nil // not a request any more: the 0110 was recorded, or it failed already
	}
	if err != nil {
		return fmt.Errorf("failing withdrawal: %w", err)
	}
	s.m.transition(StateFailed)
	s.wake()
	return nil
}

var declineErrors = map[string]error{
	iso.RCInsufficientFunds:  softatm.Errorf(softatm.EDeclined, "insufficient funds"),
	iso.RCInvalidAccount:     softatm.Errorf(softatm.EUnknownAccount, "the bank does not know this account"),
	iso.RCInvalidAmount:      softatm.Errorf(softatm.EInvalidAmount, "the bank refused this amount"),
	iso.RCExceedsLimit:       softatm.Errorf(softatm.ELimit, "this exceeds the account's withdrawal limit"),
	iso.RCIssuerUnavailable:  softatm.Errorf(softatm.EBankUnavailable, "the bank is unavailable"),
	iso.RCSystemError:        softatm.Errorf(softatm.EBankUnavailable, "the bank is unavailable"),
	iso.RCDoNotHonour:        softatm.Errorf(softatm.EDeclined, "the bank declined this withdrawal"),
	iso.RCInvalidTransaction: softatm.Errorf(softatm.EDeclined, "the bank declined this withdrawal"),
}

func (s *Service) decline(ctx context.Context, id uuid.UUID, rc string) error {
	_, err := s.ledger.Exec(ctx, &ledger.Stmt{SQL: `UPDATE withdrawals SET state = 'declined', response_code = $2, updated_at = $3
			WHERE id = $1 AND state = 'requested'`, Args: []any{id, rc, s.now()}})
	if err != nil {
		return fmt.Errorf("recording decline: %w", err)
	}
	s.m.transition(StateDeclined)
	if e, ok := declineErrors[rc]; ok {
		return e
	}
	return softatm.Errorf(softatm.EDeclined, "the bank declined this withdrawal (%s)", rc)
}

// reserve records the approval, posts the pending hold and issues the code,
// all in one transaction. If the sweeper already failed the request (the
// 0110 came too late), nothing is issued: the reversal is already queued.
func (s *Service) reserve(ctx context.Context, id uuid.UUID, bank string, r CreateRequest, approval string) (Issued, error) {
	now := s.now()
	expires := now.Add(s.cfg.CodeTTL).Truncate(time.Second)
	qr, err := s.codes.Sign(ctx, code.Payload{WithdrawalID: id, Amount: r.Amount, Currency: r.Currency, Expiry: expires, Bank: bank})
	if err != nil {
		return Issued{}, fmt.Errorf("signing code: %w", err)
	}
	payload, _, _, err := code.Decode(qr)
	if err != nil {
		return Issued{}, fmt.Errorf("decoding own code: %w", err)
	}
	var (
		w       Withdrawal
		numeric string
	)
	// A numeric code is a handle drawn at random; one already in use (the
	// UNIQUE index says so) is drawn again.
	for draw := 0; ; draw++ {
		if numeric, err = s.numeric(); err != nil {
			return Issued{}, err
		}
		_, err = s.commit(ctx, unitHold, ledger.Unit{
			At: now,
			Stmt: moveReturningStmt(&w, `UPDATE withdrawals SET state = 'reserved', approval_code = $2, response_code = '00',
				key_id = $3, qr_payload = $4, numeric_hash = $5, phone_last4_hash = $6, expires_at = $7, updated_at = $8
				WHERE id = $1 AND state = 'requested'`,
				id, approval, payload.KeyID, qr, code.HashNumeric(s.cfg.Secret, numeric),
				code.HashPhone(s.cfg.Secret, id, r.PhoneLast4), expires, now),
			Transfers: []ledger.Transfer{ledger.HoldTransfer(id, bank, r.Amount, r.Currency)},
		})
		if !isUniqueViolation(err, "withdrawals_numeric_hash_key") || draw == numericDrawsMax {
			break
		}
	}
	if errors.Is(err, ledger.ErrUnchanged) {
		s.log.Warn("0110 arrived after the request was failed; no code issued", "withdrawal", id)
		return Issued{}, softatm.Errorf(softatm.EBankUnavailable, "the bank answered too late; nothing was reserved")
	}
	if err != nil {
		// The outcome may be unknown (the connection dropped during
		// COMMIT). Read it back: a code recorded is a code issued.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readBackTimeout)
		cur, rerr := getWithdrawal(rctx, s.reads, id)
		cancel()
		if rerr == nil && cur.State == StateReserved && cur.QRPayload == qr {
			s.log.Warn("recording the approval reported an error but it is recorded; issuing the code", "withdrawal", id, "err", err)
			s.m.transition(StateReserved)
			return Issued{Withdrawal: cur, Numeric: numeric}, nil
		}
		// The bank holds the money but we could not record it: reverse.
		s.log.Error("recording approval failed; reversing", "withdrawal", id, "err", err)
		if ferr := s.fail(context.WithoutCancel(ctx), id); ferr != nil {
			s.log.Error("failing withdrawal", "withdrawal", id, "err", ferr)
		}
		return Issued{}, fmt.Errorf("recording approval: %w", err)
	}
	s.m.transition(StateReserved)
	return Issued{Withdrawal: w, Numeric: numeric}, nil
}

var errLate = errors.New("withdrawal left the expected state")

// Get returns a withdrawal of bank.
func (s *Service) Get(ctx context.Context, bank string, id uuid.UUID) (Withdrawal, error) {
	w, err := getWithdrawal(ctx, s.reads, id)
	if err != nil {
		return Withdrawal{}, err
	}
	if w.Bank != bank {
		// Another bank's withdrawal does not exist as far as this caller knows.
		return Withdrawal{}, softatm.Errorf(softatm.ENotFound, "withdrawal not found")
	}
	return w, nil
}

// Cancel voids the hold of a code that was not paid and queues its reversal.
// A code a teller has claimed cannot be cancelled: the cash may be on the
// counter.
func (s *Service) Cancel(ctx context.Context, bank string, id uuid.UUID) (Withdrawal, error) {
	if _, err := s.Get(ctx, bank, id); err != nil {
		return Withdrawal{}, err
	}
	if err := s.endHold(ctx, id, StateCancelled); err != nil {
		return Withdrawal{}, err
	}
	return getWithdrawal(ctx, s.reads, id)
}

// endHold moves a reserved withdrawal to cancelled or expired: void the
// pending transfer and queue the 0420, in one transaction.
func (s *Service) endHold(ctx context.Context, id uuid.UUID, to State) error {
	now := s.now()
	var current Withdrawal
	_, err := s.commit(ctx, unitVoid, ledger.Unit{
		At: now,
		Stmt: moveQueueStmt("reversal", now, `UPDATE withdrawals SET state = $2, updated_at = $3
				WHERE id = $1 AND state = 'reserved'`, id, string(to), now),
		Transfers: []ledger.Transfer{ledger.VoidTransfer(id, s.cfg.Currency)},
	})
	err = s.late(ctx, err, id, &current)
	if errors.Is(err, errLate) {
		if current.State == to {
			return nil // already done: cancelling twice is not an error
		}
		return stateError(current, now, "")
	}
	if err != nil {
		return err
	}
	s.m.transition(to)
	if s.gate != nil {
		if err := s.gate.MarkSpent(ctx, id.String(), s.cfg.CodeTTL+s.cfg.ClockSkew); err != nil {
			s.log.Warn("marking code spent in Redis", "withdrawal", id, "err", err)
		}
	}
	s.wake()
	return nil
}

func (s *Service) wake() {
	if s.kick != nil {
		s.kick()
	}
}

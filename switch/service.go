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
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/switch/code"
	"github.com/softatm/softatm/switch/seal"
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
	store  Store
	ledger *ledger.Ledger
	ranges refreshed[map[string]string]     // prefix → bank
	limits refreshed[map[string]BankLimits] // bank → its own limits
	names  refreshed[map[string]string]     // bank → its name
	bank   Bank                             // the one link when links is nil (tests, a fake bank)
	links  *Links                           // one link per bank; nil: bank carries every bank's withdrawals
	codes  Codes
	gate   Gate
	now    func() time.Time
	log    *slog.Logger
	m      *Metrics
	kick   func() // wakes the outbox worker; may be nil
	// numeric draws numeric codes (code.NewNumeric; tests force a collision).
	numeric func() (string, error)
	// cutoffs: bank → its business-day cut-off (cutoff.go).
	cutoffs refreshed[map[string]ledger.Cutoff]
	// payables remembers the banks whose payable account exists (deposit.go).
	payables sync.Map
	// recheck: how often Wait reads again without a wake-up (watch.go).
	recheck time.Duration
}

// Deps are the Service's collaborators.
type Deps struct {
	Pool    *pgxpool.Pool
	Ledger  *ledger.Ledger
	Store   Store // defaults to the PostgreSQL store on Pool and Ledger
	Bank    Bank
	Links   *Links // when set, each withdrawal goes on its bank's link and Bank is not used
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
	if d.Store == nil {
		st := newPGStore(d.Pool, d.Ledger, seal.New(cfg.Secret, "qr payload"))
		st.names = seal.New(cfg.Secret, "holder name")
		st.ids = seal.New(cfg.Secret, "id number")
		d.Store = st
	}
	if d.Links != nil && d.Kick == nil {
		d.Kick = d.Links.Kick
	}
	return &Service{cfg: cfg, store: d.Store, ledger: d.Ledger, bank: d.Bank, links: d.Links, codes: d.Codes, gate: d.Gate,
		now: d.Clock, log: d.Log, m: d.Metrics, kick: d.Kick, numeric: code.NewNumeric, recheck: defaultRecheck}
}

// CreateRequest is what a bank's app asks for.
type CreateRequest struct {
	Account    string `json:"account"`
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency"`
	HolderName string `json:"holder_name"`
	PhoneLast4 string `json:"phone_last4"`
	// Key is the caller's idempotency key (scope and key, idem.KeyFrom):
	// the withdrawal is bound to it in its first row, so a retry of a
	// create interrupted after its hold finds it instead of sending a
	// second 0100. Empty: not bound.
	Key string `json:"-"`
	// Client is the bank client asking (its id): the withdrawal's state
	// changes are called back to it, when it registered a callback URL.
	// Empty: no callbacks.
	Client string `json:"-"`
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

func (s *Service) validate(r *CreateRequest, lim Limits) error {
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
	if r.Amount < lim.AmountMin || r.Amount > lim.AmountMax {
		return softatm.Errorf(softatm.EInvalidAmount, "amount must be between %d and %d", lim.AmountMin, lim.AmountMax)
	}
	if r.Amount%lim.AmountMultiple != 0 {
		return softatm.Errorf(softatm.EInvalidAmount, "amount must be a multiple of %d", lim.AmountMultiple)
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
	// The calling bank's limits: they are the account's bank's too, or
	// the account is refused below.
	lim, err := s.limitsOf(ctx, bank)
	if err != nil {
		return Issued{}, err
	}
	if err := s.validate(&r, lim); err != nil {
		return Issued{}, err
	}
	// A bank's client acts only for its own bank's accounts: an account in
	// another bank's range, or in none, is refused before anything is sent.
	owner, err := s.bankOf(ctx, r.Account)
	if err != nil {
		return Issued{}, err
	}
	if owner != bank {
		return Issued{}, softatm.Errorf(softatm.EAccountNotOfBank, "this account is not one of your bank's")
	}
	// The bank's own link. One that would not send now (down, circuit
	// open) or a suspended bank is refused here, before anything is
	// recorded or sent: fast, and with nothing to reverse.
	link, err := s.linkFor(bank)
	if err != nil {
		return Issued{}, err
	}
	now := s.now()
	id := uuid.New()
	stan := link.NextSTAN()
	if err := s.checkAccountDaily(ctx, bank, r.Account, r.Amount, lim.AccountDailyMax, now); err != nil {
		// A retry's own first attempt counts against the limit: answer it
		// from its withdrawal instead.
		if softatm.ErrorCode(err) == softatm.ELimit && r.Key != "" {
			if is, again, rerr := s.resume(ctx, bank, r); rerr != nil || !again {
				return is, rerr
			}
		}
		return Issued{}, err
	}
	// An RRN has 8 random digits per day of the year, so two requests of a
	// busy day can draw the same one; the UNIQUE index catches it and we draw
	// again.
	var rrn string
	for attempt := 0; ; attempt++ {
		if rrn, err = newRRN(now); err != nil {
			return Issued{}, err
		}
		err = s.store.InsertRequest(ctx, Withdrawal{ID: id, Bank: bank, Account: r.Account, HolderNameMasked: MaskName(r.HolderName),
			Amount: r.Amount, Currency: r.Currency, TerminalID: s.cfg.TerminalID, STAN: stan, RRN: rrn, TransmittedAt: now, CreatedAt: now,
			ClientKey: r.Key, Client: r.Client})
		if errors.Is(err, errKeyBound) && attempt < rrnDrawsMax {
			var is Issued
			var again bool
			if is, again, err = s.resume(ctx, bank, r); !again {
				return is, err
			}
			continue // the earlier request was failed and gave its key up
		}
		if !errors.Is(err, errRRNTaken) || attempt == rrnDrawsMax {
			break
		}
	}
	if err != nil {
		return Issued{}, fmt.Errorf("recording request: %w", err)
	}
	s.m.transition(StateRequested)

	actx, cancel := context.WithTimeout(logAbout(ctx, id), s.cfg.AuthTimeout)
	resp, err := link.Authorize(actx, iso.AuthRequest{
		STAN: stan, RRN: rrn, TransmittedAt: now, Account: r.Account, Amount: r.Amount, Currency: r.Currency,
		TerminalID: s.cfg.TerminalID, CardAcceptor: s.cfg.CardAcceptorID, AcceptorName: s.cfg.acceptorLocation(),
	})
	cancel()
	if me := (*iso.MismatchError)(nil); errors.As(err, &me) {
		return Issued{}, s.replyMismatch(ctx, id, me)
	}
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
	return s.reserve(ctx, id, bank, r, resp)
}

// linkFor returns the link a new withdrawal of bank goes on, refusing
// with bank_unavailable when it would not send now.
func (s *Service) linkFor(bank string) (Bank, error) {
	link := s.bank
	if s.links != nil {
		l, err := s.links.For(bank)
		if err != nil {
			return nil, err
		}
		link = l
	}
	if r, ok := link.(interface{ Ready() bool }); ok && !r.Ready() {
		return nil, softatm.Errorf(softatm.EBankUnavailable, "the bank's link is down or not answering; nothing was reserved")
	}
	return link, nil
}

// replyMismatch handles a 0110 that does not answer its 0100 (another
// amount, account, RRN, currency or processing code): it is no approval.
// The bank may hold something all the same, so the request is failed and
// its 0420 queued, and the two messages are kept for finance.
func (s *Service) replyMismatch(ctx context.Context, id uuid.UUID, me *iso.MismatchError) error {
	s.log.Error("the bank's reply does not match the request; reversing", "withdrawal", id, "fields", me.Fields)
	detail := fmt.Sprintf("%s fields %s differ\nsent:     %s\nreceived: %s", me.MTI, strings.Join(me.Fields, ","), me.Request, me.Reply)
	if err := s.store.ReplyMismatch(context.WithoutCancel(ctx), id, detail, s.now()); err != nil {
		s.log.Error("recording the mismatched reply", "withdrawal", id, "err", err)
	} else {
		s.m.outboxExceptions.WithLabelValues(kindReplyMismatch).Inc()
	}
	if err := s.fail(context.WithoutCancel(ctx), id); err != nil {
		return err
	}
	return softatm.Wrap(softatm.EBankReplyInvalid, "the bank's answer did not match the request; nothing was reserved", me)
}

func (s *Service) checkAccountDaily(ctx context.Context, bank, account string, amount, dailyMax int64, now time.Time) error {
	if dailyMax <= 0 {
		return nil
	}
	used, err := s.store.AccountUsed(ctx, bank, account, now.Add(-24*time.Hour))
	if err != nil {
		return err
	}
	if used+amount > dailyMax {
		return softatm.Errorf(softatm.ELimit, "this account may withdraw at most %d in any 24 hours", dailyMax)
	}
	return nil
}

// resume continues a create whose idempotency key is already bound to a
// withdrawal: the first attempt was interrupted (its process died after
// the first row, or its answer was lost). It answers from the row's state,
// never with a second 0100 for a live hold. again says the earlier request
// was failed (its 0420 queued) and gave its key up: insert afresh.
func (s *Service) resume(ctx context.Context, bank string, r CreateRequest) (Issued, bool, error) {
	w, err := s.store.ByClientKey(ctx, r.Key)
	if softatm.ErrorCode(err) == softatm.ENotFound {
		return Issued{}, true, nil // failed meanwhile: the key is free
	}
	if err != nil {
		return Issued{}, false, err
	}
	if w.Bank != bank || w.Account != r.Account || w.Amount != r.Amount {
		return Issued{}, false, softatm.Errorf(softatm.EIdemReused, "this idempotency key was already used for a different request")
	}
	switch w.State {
	case StateRequested:
		// Its create is gone (the idempotency lease ended) or still waiting
		// for the 0110; either way no code was issued. Failing it queues the
		// 0420 for whatever the bank holds; a late 0110 then issues nothing.
		s.log.Warn("a retried create finds its request unanswered; reversing it and asking again", "withdrawal", w.ID)
		return Issued{}, true, s.fail(ctx, w.ID)
	case StateFailed:
		return Issued{}, true, nil
	case StateDeclined:
		return Issued{}, false, declineError(w.ResponseCode)
	case StateReserved:
		// The code was issued but its answer lost: the numeric code was
		// shown to no one, so it is drawn again (only its hash is kept).
		numeric, err := s.renumber(ctx, w.ID)
		if err != nil {
			return Issued{}, false, err
		}
		s.log.Info("a retried create finds its code issued; answering with it", "withdrawal", w.ID)
		return Issued{Withdrawal: w, Numeric: numeric}, false, nil
	}
	return Issued{Withdrawal: w}, false, nil // claimed, paid or ended: the app sees the state
}

// renumber draws a new numeric code for a reserved withdrawal.
func (s *Service) renumber(ctx context.Context, id uuid.UUID) (string, error) {
	for draw := 0; ; draw++ {
		numeric, err := s.numeric()
		if err != nil {
			return "", err
		}
		err = s.store.Renumber(ctx, id, code.HashNumeric(s.cfg.Secret, numeric))
		if err == nil {
			return numeric, nil
		}
		if !errors.Is(err, errNumericTaken) || draw == numericDrawsMax {
			return "", err
		}
	}
}

// fail marks a request with no usable answer failed and queues its
// reversal; its idempotency key is given up, so a retry may ask again.
func (s *Service) fail(ctx context.Context, id uuid.UUID) error {
	_, err := s.apply(ctx, Move{ID: id, Event: EvFail, At: s.now(), Set: []Col{{"client_key", nil}}})
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
	_, err := s.apply(ctx, Move{ID: id, Event: EvDecline, At: s.now(), Set: []Col{{"response_code", rc}}})
	if err != nil {
		return fmt.Errorf("recording decline: %w", err)
	}
	s.m.transition(StateDeclined)
	return declineError(rc)
}

// declineError is the answer to a 0110 declined with response code rc.
func declineError(rc string) error {
	if e, ok := declineErrors[rc]; ok {
		return e
	}
	return softatm.Errorf(softatm.EDeclined, "the bank declined this withdrawal (%s)", rc)
}

// reserve records the approval, posts the pending hold and issues the code,
// all in one transaction. If the sweeper already failed the request (the
// 0110 came too late), nothing is issued: the reversal is already queued.
func (s *Service) reserve(ctx context.Context, id uuid.UUID, bank string, r CreateRequest, resp iso.AuthResponse) (Issued, error) {
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
		_, err = s.apply(ctx, Move{ID: id, Event: EvApprove, At: now, Into: &w,
			Set: []Col{{"approval_code", resp.ApprovalCode}, {"approved_amount", resp.Amount}, {"response_code", iso.RCApproved}, {"key_id", payload.KeyID},
				{"qr_payload", secretText(qr)}, {"numeric_hash", code.HashNumeric(s.cfg.Secret, numeric)},
				{"phone_last4_hash", code.HashPhone(s.cfg.Secret, id, r.PhoneLast4)}, {"expires_at", expires},
				{"holder_name_sealed", sealedName(r.HolderName)}},
			Bank: bank, Amount: resp.Amount, Currency: r.Currency})
		if !errors.Is(err, errNumericTaken) || draw == numericDrawsMax {
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
		cur, rerr := s.readBack(ctx, id)
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

// Get returns a withdrawal of bank.
func (s *Service) Get(ctx context.Context, bank string, id uuid.UUID) (Withdrawal, error) {
	w, err := s.store.Get(ctx, id)
	if err != nil {
		return Withdrawal{}, err
	}
	if w.Bank != bank {
		// Another bank's withdrawal does not exist as far as this caller knows.
		return Withdrawal{}, softatm.Errorf(softatm.ENotFound, "withdrawal not found")
	}
	return w, nil
}

// Withdrawal returns a withdrawal of any bank: for the demo app, which
// stands in for every bank's app; a bank's client uses Get.
func (s *Service) Withdrawal(ctx context.Context, id uuid.UUID) (Withdrawal, error) {
	return s.store.Get(ctx, id)
}

// BankName returns a bank's name, "" when unknown (a label only, so read
// like the banks' limits: at most bankRangesRefresh old).
func (s *Service) BankName(ctx context.Context, code string) string {
	names, _ := s.names.get(s.now(), bankRangesRefresh, func() (map[string]string, error) {
		return s.store.BankNames(ctx)
	})
	return names[code]
}

// Cancel voids the hold of a code that was not paid and queues its reversal.
// A code a teller has claimed cannot be cancelled: the cash may be on the
// counter.
func (s *Service) Cancel(ctx context.Context, bank string, id uuid.UUID) (Withdrawal, error) {
	w, err := s.Get(ctx, bank, id)
	if err != nil {
		return Withdrawal{}, err
	}
	if w.Kind == KindDeposit {
		if err := s.cancelDeposit(ctx, id); err != nil {
			return Withdrawal{}, err
		}
		return s.store.Get(ctx, id)
	}
	if err := s.endHold(ctx, id, w.Bank, EvCancel); err != nil {
		return Withdrawal{}, err
	}
	return s.store.Get(ctx, id)
}

// endHold moves a reserved withdrawal to cancelled or expired (ev is
// EvCancel or EvExpire): void the pending transfer and queue the 0420, in
// one transaction. bank is the withdrawal's, whose cut-off dates the void
// ("": read from the row).
func (s *Service) endHold(ctx context.Context, id uuid.UUID, bank string, ev Event) error {
	now := s.now()
	to := target(ev).To
	var current Withdrawal
	_, err := s.apply(ctx, Move{ID: id, Event: ev, At: now, Bank: bank, Currency: s.cfg.Currency})
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

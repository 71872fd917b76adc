package atmswitch

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/ledger"
	"github.com/softatm/softatm/switch/code"
	"github.com/softatm/softatm/switch/idem"
)

// Deposits (cash in, "nạp tiền"): the second lifecycle of the transitions
// table (lifecycle.go, Kind KindDeposit), on the same record as
// withdrawals. The flows:
//
//   - With the app: the bank's app asks for a deposit code (CreateDeposit)
//     for an amount and one of its accounts. The code is the withdrawal
//     code's signed format with a kind (code.KindDeposit), with the same QR
//     and numeric fallback; no message goes to the bank yet.
//   - Walk-in: the teller types the account number (StartWalkIn); the switch
//     asks the account's bank for the holder's name (iso.Client.Verify) and
//     records a deposit claimed by that teller; the kiosk shows the name for
//     the citizen to confirm.
//   - At the counter a deposit is claimed (the kiosk's one scan serves both
//     kinds: Scan hands a deposit to claimDeposit), which refuses, before
//     any cash is counted, a deposit over the limits or over the till's cash
//     cap. The teller counts the cash and confirms (ConfirmDeposit): the row
//     moves to crediting (committed before the 0200 leaves, so a crash while
//     waiting is found by the sweeper and reversed), the 0200 goes online,
//     and only the bank's approval posts the ledger (till debited, the
//     bank's payable credited: ledger.DepositTransfer) and gives a receipt.
//     A decline posts nothing; no usable answer in time fails the deposit
//     and queues its 0420; in both cases the teller hands the cash back
//     (EDepositNotTaken). An approval that comes after the deposit was
//     failed finds no row to move: nothing is posted, and the queued 0420
//     reverses the credit at the bank. A deposit is credited at most once:
//     its one transfer's id is derived from its id, its 0200 is sent once,
//     and its state moves by conditional statements only.
//
// Redis plays no part in deposits: the claim is the conditional UPDATE
// alone (a flushed Redis changes nothing), and numeric entry keeps its caps
// (identifyNumeric) as for withdrawals.

// DepositBank is the link's deposit side; *iso.Client implements it. A Bank
// that does not is a link without deposits: they are refused.
type DepositBank interface {
	Credit(ctx context.Context, r iso.CreditRequest) (iso.AuthResponse, error)
	Verify(ctx context.Context, r iso.VerifyRequest) (iso.VerifyResponse, error)
}

// depositBank returns bank's link (refused with bank_unavailable while it
// would not send) and its deposit side.
func (s *Service) depositBank(bank string) (Bank, DepositBank, error) {
	link, err := s.linkFor(bank)
	if err != nil {
		return nil, nil, err
	}
	if db, ok := link.(DepositBank); ok {
		return link, db, nil
	}
	return nil, nil, softatm.Errorf(softatm.EUnavailable, "deposits are not available on this bank link")
}

// DepositRequest is what a bank's app asks for: a deposit code.
type DepositRequest struct {
	Account    string `json:"account"`
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency"`
	HolderName string `json:"holder_name"`
	PhoneLast4 string `json:"phone_last4"`
	Key        string `json:"-"`
	Client     string `json:"-"`
}

// idNumberRe is a Vietnamese ID number: 9 digits (CMND) or 12 (CCCD).
var idNumberRe = regexp.MustCompile(`^([0-9]{9}|[0-9]{12})$`)

// checkDepositAmount holds an amount to the deposit limits.
func (s *Service) checkDepositAmount(amount int64) error {
	if amount <= 0 {
		return softatm.Errorf(softatm.EInvalidAmount, "amount must be positive")
	}
	if amount < s.cfg.DepositMin || amount > s.cfg.DepositMax {
		return softatm.Errorf(softatm.EInvalidAmount, "a deposit must be between %d and %d", s.cfg.DepositMin, s.cfg.DepositMax)
	}
	if amount%s.cfg.NoteUnit != 0 {
		return softatm.Errorf(softatm.EInvalidAmount, "amount must be a multiple of %d", s.cfg.NoteUnit)
	}
	return nil
}

// checkDepositDaily refuses a deposit that would take the account's credits
// of the last 24 hours over DepositAccountDailyMax.
func (s *Service) checkDepositDaily(ctx context.Context, bank, account string, amount int64, now time.Time) error {
	if s.cfg.DepositAccountDailyMax <= 0 {
		return nil
	}
	used, err := s.store.DepositedSince(ctx, bank, account, now.Add(-24*time.Hour))
	if err != nil {
		return fmt.Errorf("reading the account's deposits: %w", err)
	}
	if used+amount > s.cfg.DepositAccountDailyMax {
		return softatm.Errorf(softatm.ELimit, "this account may take at most %d in deposits in any 24 hours", s.cfg.DepositAccountDailyMax)
	}
	return nil
}

// checkTillCap refuses a deposit that would put the till over its cash cap
// (its insured amount), counting the deposits being credited there. It
// runs before the cash is counted, at the claim, and again at confirm,
// where the move to crediting checks it once more in its own statement
// (Move.TillRoom).
func (s *Service) checkTillCap(ctx context.Context, po string, amount int64) error {
	cash, cashCap, err := s.store.TillCap(ctx, po)
	if err != nil {
		return fmt.Errorf("reading the till's cash cap: %w", err)
	}
	if cashCap > 0 && cash+amount > cashCap {
		return softatm.Errorf(softatm.ETillFull, "this deposit would put the till over its cash cap of %d; do not take the cash", cashCap)
	}
	return nil
}

// CreateDeposit issues a deposit code for one of bank's accounts. Nothing
// goes to the bank: the credit is asked for online when the teller
// confirms the counted cash.
func (s *Service) CreateDeposit(ctx context.Context, bank string, r DepositRequest) (Issued, error) {
	switch strings.ToUpper(strings.TrimSpace(r.Currency)) {
	case "", "VND", "704":
		r.Currency = s.cfg.Currency
	default:
		return Issued{}, softatm.Errorf(softatm.EInvalid, "currency %q is not supported; use VND", r.Currency)
	}
	if !accountRe.MatchString(r.Account) {
		return Issued{}, softatm.Errorf(softatm.EInvalid, "account must be 6 to 28 digits")
	}
	if !last4Re.MatchString(r.PhoneLast4) {
		return Issued{}, softatm.Errorf(softatm.EInvalid, "phone_last4 must be the last 4 digits of the citizen's phone")
	}
	if err := s.checkDepositAmount(r.Amount); err != nil {
		return Issued{}, err
	}
	r.HolderName = strings.TrimSpace(r.HolderName)
	if err := checkName("holder_name", r.HolderName); err != nil {
		return Issued{}, err
	}
	if len(r.HolderName) > 100 {
		return Issued{}, softatm.Errorf(softatm.EInvalid, "holder_name is too long")
	}
	owner, err := s.bankOf(ctx, r.Account)
	if err != nil {
		return Issued{}, err
	}
	if owner != bank {
		return Issued{}, softatm.Errorf(softatm.EAccountNotOfBank, "this account is not one of your bank's")
	}
	now := s.now()
	if err := s.checkDepositDaily(ctx, bank, r.Account, r.Amount, now); err != nil {
		return Issued{}, err
	}
	id := uuid.New()
	expires := now.Add(s.cfg.DepositCodeTTL).Truncate(time.Second)
	qr, err := s.codes.Sign(ctx, code.Payload{WithdrawalID: id, Amount: r.Amount, Currency: r.Currency, Expiry: expires,
		Bank: bank, Kind: code.KindDeposit})
	if err != nil {
		return Issued{}, fmt.Errorf("signing deposit code: %w", err)
	}
	payload, _, _, err := code.Decode(qr)
	if err != nil {
		return Issued{}, fmt.Errorf("decoding own code: %w", err)
	}
	w := Withdrawal{Kind: KindDeposit, ID: id, Bank: bank, Account: r.Account, HolderNameMasked: MaskName(r.HolderName),
		HolderName: r.HolderName, Amount: r.Amount, Currency: r.Currency, State: StateDepIssued, TerminalID: s.cfg.TerminalID,
		STAN: "000000", TransmittedAt: now, KeyID: payload.KeyID, QRPayload: qr, ExpiresAt: expires, CreatedAt: now, UpdatedAt: now,
		ClientKey: r.Key, Client: r.Client}
	numeric, err := s.insertDeposit(ctx, &w, r.PhoneLast4)
	if errors.Is(err, errKeyBound) {
		// A retry of a create whose answer was lost: the same deposit, or
		// a key reused for another.
		prev, perr := s.store.ByClientKey(ctx, r.Key)
		if perr != nil {
			return Issued{}, perr
		}
		if prev.Kind != KindDeposit || prev.Bank != bank || prev.Account != r.Account || prev.Amount != r.Amount {
			return Issued{}, softatm.Errorf(softatm.EIdemReused, "this idempotency key was already used for a different request")
		}
		return Issued{Withdrawal: prev}, nil // the numeric code was shown once and is not kept
	}
	if err != nil {
		return Issued{}, err
	}
	s.m.transition(StateDepIssued)
	return Issued{Withdrawal: w, Numeric: numeric}, nil
}

// insertDeposit records w, drawing its RRN and, when phoneLast4 is given,
// its numeric code, again on a collision.
func (s *Service) insertDeposit(ctx context.Context, w *Withdrawal, phoneLast4 string) (string, error) {
	for attempt := 0; ; attempt++ {
		rrn, err := newRRN(w.CreatedAt)
		if err != nil {
			return "", err
		}
		w.RRN = rrn
		var numeric string
		var numericHash, phoneHash []byte
		if phoneLast4 != "" {
			if numeric, err = s.numeric(); err != nil {
				return "", err
			}
			numericHash, phoneHash = code.HashNumeric(s.cfg.Secret, numeric), code.HashPhone(s.cfg.Secret, w.ID, phoneLast4)
		}
		err = s.store.InsertDeposit(ctx, *w, numericHash, phoneHash)
		if (errors.Is(err, errRRNTaken) || errors.Is(err, errNumericTaken)) && attempt < rrnDrawsMax {
			continue
		}
		if err != nil && !errors.Is(err, errKeyBound) {
			return "", fmt.Errorf("recording deposit: %w", err)
		}
		return numeric, err
	}
}

// AccountHolder is what the bank said of a walk-in's account.
type AccountHolder struct {
	Bank          string `json:"bank"`
	BankName      string `json:"bank_name"`
	AccountMasked string `json:"account_masked"`
	HolderName    string `json:"holder_name"`
}

// LookupAccount asks the account's bank for its holder's name, for the
// citizen to confirm at the counter before any cash is counted.
func (s *Service) LookupAccount(ctx context.Context, t Teller, account string) (AccountHolder, error) {
	account = strings.TrimSpace(account)
	if !accountRe.MatchString(account) {
		return AccountHolder{}, softatm.Errorf(softatm.EInvalid, "account must be 6 to 28 digits")
	}
	bank, err := s.bankOf(ctx, account)
	if err != nil {
		return AccountHolder{}, err
	}
	if bank == "" {
		return AccountHolder{}, softatm.Errorf(softatm.EUnknownAccount, "no bank of this switch has this account")
	}
	link, db, err := s.depositBank(bank)
	if err != nil {
		return AccountHolder{}, err
	}
	now := s.now()
	rrn, err := newRRN(now)
	if err != nil {
		return AccountHolder{}, err
	}
	vctx, cancel := context.WithTimeout(ctx, s.cfg.AuthTimeout)
	resp, err := db.Verify(vctx, iso.VerifyRequest{STAN: link.NextSTAN(), RRN: rrn, TransmittedAt: now, Account: account,
		Currency: s.cfg.Currency, TerminalID: s.cfg.TerminalID, CardAcceptor: s.cfg.CardAcceptorID, AcceptorName: s.cfg.AcceptorName})
	cancel()
	if err != nil {
		return AccountHolder{}, softatm.Wrap(softatm.EBankUnavailable, "the bank did not answer; try again or use the app's code", err)
	}
	switch resp.ResponseCode {
	case iso.RCApproved:
	case iso.RCInvalidAccount:
		return AccountHolder{}, softatm.Errorf(softatm.EUnknownAccount, "the bank does not know this account")
	default:
		return AccountHolder{}, softatm.Errorf(softatm.EDeclined, "the bank refused this account (%s)", resp.ResponseCode)
	}
	// The name is the bank's word, shown to the citizen on the kiosk and
	// stored: held to the same rule as a name a bank app sends.
	if err := checkName("the bank's holder name", resp.HolderName); err != nil {
		return AccountHolder{}, softatm.Wrap(softatm.EBankReplyInvalid, "the bank's answer named the holder with characters a name cannot hold", err)
	}
	return AccountHolder{Bank: bank, BankName: s.BankName(ctx, bank), AccountMasked: iso.Mask(account), HolderName: resp.HolderName}, nil
}

// WalkInRequest is what a teller types for a citizen without the app.
type WalkInRequest struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// StartWalkIn records a walk-in's deposit, with the holder's name the bank
// gave, claimed by the teller: the same count and confirm follow as for an
// app's code. The limits and the till's cap are checked first.
func (s *Service) StartWalkIn(ctx context.Context, t Teller, r WalkInRequest) (Withdrawal, error) {
	if err := s.checkDepositAmount(r.Amount); err != nil {
		return Withdrawal{}, err
	}
	holder, err := s.LookupAccount(ctx, t, r.Account)
	if err != nil {
		return Withdrawal{}, err
	}
	now := s.now()
	account := strings.TrimSpace(r.Account)
	w := Withdrawal{Kind: KindDeposit, ID: uuid.New(), Bank: holder.Bank, Account: account,
		HolderNameMasked: MaskName(holder.HolderName), HolderName: holder.HolderName, Amount: r.Amount, Currency: s.cfg.Currency,
		State: StateDepIssued, TerminalID: s.cfg.TerminalID, STAN: "000000", TransmittedAt: now,
		ExpiresAt: now.Add(s.cfg.WalkInTTL), CreatedAt: now, UpdatedAt: now}
	// The limits before the row: a refused walk-in leaves nothing behind.
	if err := s.checkDepositDaily(ctx, w.Bank, w.Account, w.Amount, now); err != nil {
		return Withdrawal{}, err
	}
	if err := s.checkTillCap(ctx, t.PostOffice, w.Amount); err != nil {
		return Withdrawal{}, err
	}
	if _, err := s.insertDeposit(ctx, &w, ""); err != nil {
		return Withdrawal{}, err
	}
	s.m.transition(StateDepIssued)
	return s.claimMove(ctx, t, w.ID, now) // checked above, just now
}

// claimDeposit claims a deposit for the teller, after the checks that must
// come before any cash is counted.
func (s *Service) claimDeposit(ctx context.Context, t Teller, w Withdrawal) (Withdrawal, error) {
	now := s.now()
	claimable := w.State == StateDepIssued || (w.State == StateDepCounter && (w.ClaimedBy == t.holder() || now.After(w.ClaimUntil)))
	if !claimable {
		return Withdrawal{}, depositStateError(w, now, t.holder())
	}
	if now.After(w.ExpiresAt.Add(s.cfg.ClockSkew)) {
		return Withdrawal{}, softatm.Errorf(softatm.ECodeExpired, "this deposit code has expired")
	}
	if err := s.checkDepositDaily(ctx, w.Bank, w.Account, w.Amount, now); err != nil {
		return Withdrawal{}, err
	}
	if err := s.checkTillCap(ctx, t.PostOffice, w.Amount); err != nil {
		return Withdrawal{}, err
	}
	return s.claimMove(ctx, t, w.ID, now)
}

// claimMove claims deposit id for the teller (the lifecycle's claim move),
// once the checks before counting have passed.
func (s *Service) claimMove(ctx context.Context, t Teller, id uuid.UUID, now time.Time) (Withdrawal, error) {
	var current Withdrawal
	_, err := s.apply(ctx, Move{Kind: KindDeposit, ID: id, Event: EvClaim, At: now, Before: now.Add(-s.cfg.ClockSkew),
		Holder: t.holder(), Set: []Col{{"claimed_by", t.holder()}, {"claimed_kiosk", t.Kiosk}, {"claim_until", now.Add(s.cfg.ClaimTTL)}},
		Into: &current})
	if errors.Is(err, ledger.ErrUnchanged) {
		cur, rerr := s.store.Get(ctx, id)
		if rerr != nil {
			return Withdrawal{}, rerr
		}
		return Withdrawal{}, depositStateError(cur, now, t.holder())
	}
	if err != nil {
		return Withdrawal{}, err
	}
	s.m.transition(StateDepCounter)
	return current, nil
}

// IDRequired says whether confirming deposit w needs the citizen's ID
// number: the account's deposits of the business day, with this one, reach
// LargeCashThreshold. (The customer is taken to be the account: the switch
// knows no other identity of a depositor before the ID is typed.)
func (s *Service) IDRequired(ctx context.Context, w Withdrawal) (bool, error) {
	need, _, err := s.largeCash(ctx, w)
	return need, err
}

// largeCash is IDRequired with the business day it added up (zero when the
// rule is off).
func (s *Service) largeCash(ctx context.Context, w Withdrawal) (need bool, day time.Time, err error) {
	if s.cfg.LargeCashThreshold <= 0 {
		return false, time.Time{}, nil
	}
	if day, err = s.largeCashDay(ctx, w.Bank); err != nil {
		return false, time.Time{}, err
	}
	sum, err := s.store.DepositedOn(ctx, w.Bank, w.Account, day)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("reading the account's deposits today: %w", err)
	}
	return sum+w.Amount >= s.cfg.LargeCashThreshold, day, nil
}

// largeCashDay is the business day whose deposits the large-cash rule adds
// up: today's under bank's cut-off, the day its credits are dated by
// (credit_date), so that a credit after the cut-off counts with the
// deposits of the same bank day.
func (s *Service) largeCashDay(ctx context.Context, bank string) (time.Time, error) {
	cut, err := s.cutoffOf(ctx, bank)
	if err != nil {
		return time.Time{}, err
	}
	return s.ledger.BusinessDateUnder(ctx, s.now(), cut)
}

// DepositReceipt is what the teller prints after the bank credited a
// deposit: the cash went into the till.
type DepositReceipt = PaidReceipt

// ConfirmDeposit sends the counted cash's credit to the bank and records
// its answer. It returns a receipt only when the bank approved; any error
// means the cash goes back to the citizen (EDepositNotTaken says so), or
// that nothing was sent (a state, limit or ID error: confirm again).
func (s *Service) ConfirmDeposit(ctx context.Context, t Teller, id uuid.UUID, idNumber string) (DepositReceipt, error) {
	now := s.now()
	w, err := s.store.Get(ctx, id)
	if err != nil {
		return DepositReceipt{}, err
	}
	if w.Kind != KindDeposit {
		return DepositReceipt{}, softatm.Errorf(softatm.ENotFound, "no deposit has this id")
	}
	// The request's idempotency key, bound to the deposit when its 0200 is
	// sent: this same confirm sent again (after deposit_outcome_unknown, or
	// its idempotency record lost) is answered from the row.
	key := idem.KeyFrom(ctx)
	if key != "" && w.ConfirmKey == key {
		return s.confirmedWith(ctx, t, w)
	}
	if w.State != StateDepCounter || w.ClaimedBy != t.holder() || w.ClaimUntil.Before(now) {
		return DepositReceipt{}, depositStateError(w, now, t.holder())
	}
	link, db, err := s.depositBank(w.Bank)
	if err != nil {
		return DepositReceipt{}, err
	}
	// The credit is dated by the bank's cut-off, as its settlement file
	// dates it; read before anything is sent.
	cut, err := s.cutoffOf(ctx, w.Bank)
	if err != nil {
		return DepositReceipt{}, err
	}
	needID, day, err := s.largeCash(ctx, w)
	if err != nil {
		return DepositReceipt{}, err
	}
	idNumber = strings.TrimSpace(idNumber)
	set := []Col{{"stan", link.NextSTAN()}, {"transmitted_at", now}, {"paid_by", t.UserID}, {"paid_kiosk", t.Kiosk},
		{"post_office", t.PostOffice}, {"confirm_key", keyArg(key)}}
	if needID {
		if !idNumberRe.MatchString(idNumber) {
			return DepositReceipt{}, softatm.Errorf(softatm.EIDNumberNeeded,
				"deposits of %d or more a day need the citizen's ID number (9 or 12 digits)", s.cfg.LargeCashThreshold)
		}
		set = append(set, Col{"id_number_sealed", sealedID(idNumber)}, Col{"large_cash", true})
	}
	// Without an ID number the move checks the account's day once more in
	// its own statement, as the till's room: two counters confirming one
	// account's deposits at once cannot both stay under the threshold.
	var underLarge *UnderLargeCash
	if !needID && s.cfg.LargeCashThreshold > 0 {
		underLarge = &UnderLargeCash{Bank: w.Bank, Account: w.Account, Day: day, Amount: w.Amount, Threshold: s.cfg.LargeCashThreshold}
	}
	if err := s.ensurePayable(ctx, w.Bank); err != nil {
		return DepositReceipt{}, err
	}
	// The row is committed in crediting before the 0200 leaves: whatever
	// happens next, the sweeper finds it and reverses the credit.
	var sent Withdrawal
	if err := s.checkTillCap(ctx, t.PostOffice, w.Amount); err != nil {
		return DepositReceipt{}, err
	}
	// The move checks the till's room again in its own statement
	// (Move.TillRoom): the committer runs moves one at a time, so two
	// counters' confirms cannot both fill the same room.
	_, err = s.apply(ctx, Move{Kind: KindDeposit, ID: id, Event: EvSend, At: now, Holder: t.holder(), Set: set, Into: &sent,
		TillRoom: &TillRoom{PostOffice: t.PostOffice, Amount: w.Amount}, UnderLargeCash: underLarge})
	if errors.Is(err, ledger.ErrUnchanged) {
		cur, rerr := s.store.Get(ctx, id)
		if rerr != nil {
			return DepositReceipt{}, rerr
		}
		if cur.State == StateDepCounter && cur.ClaimedBy == t.holder() && !cur.ClaimUntil.Before(now) {
			// Still this teller's, at the counter: another counter's
			// deposit meanwhile took the account over the large-cash
			// threshold, or the till's room.
			if underLarge != nil {
				if need, err := s.IDRequired(ctx, cur); err == nil && need {
					return DepositReceipt{}, softatm.Errorf(softatm.EIDNumberNeeded,
						"with another deposit just confirmed, this account's deposits today reach %d: type the citizen's ID number (9 or 12 digits)",
						s.cfg.LargeCashThreshold)
				}
			}
			return DepositReceipt{}, softatm.Errorf(softatm.ETillFull,
				"another deposit has just filled the till to its cash cap; do not take the cash")
		}
		return DepositReceipt{}, depositStateError(cur, now, t.holder())
	}
	if err != nil {
		return DepositReceipt{}, fmt.Errorf("recording the deposit's credit request: %w", err)
	}
	s.m.transition(StateDepCrediting)

	crashPoint(CrashDepositBeforeSend)
	cctx, cancel := context.WithTimeout(logAbout(ctx, id), s.cfg.CreditTimeout)
	resp, err := db.Credit(cctx, iso.CreditRequest{STAN: sent.STAN, RRN: sent.RRN, TransmittedAt: sent.TransmittedAt,
		Account: sent.Account, Amount: sent.Amount, Currency: sent.Currency, TerminalID: sent.TerminalID,
		CardAcceptor: s.cfg.CardAcceptorID, AcceptorName: s.cfg.AcceptorName})
	cancel()
	if me := (*iso.MismatchError)(nil); errors.As(err, &me) {
		s.log.Error("the bank's 0210 does not match the 0200; reversing", "deposit", id, "fields", me.Fields)
		detail := fmt.Sprintf("%s fields %s differ\nsent:     %s\nreceived: %s", me.MTI, strings.Join(me.Fields, ","), me.Request, me.Reply)
		if rerr := s.store.ReplyMismatch(context.WithoutCancel(ctx), id, detail, s.now()); rerr != nil {
			s.log.Error("recording the mismatched reply", "deposit", id, "err", rerr)
		} else {
			s.m.outboxExceptions.WithLabelValues(kindReplyMismatch).Inc()
		}
		return s.handBack(ctx, t, w, "the bank's answer did not match the deposit; hand the cash back", me)
	}
	if err != nil {
		s.log.Warn("no usable 0210; reversing", "deposit", id, "account", iso.Mask(w.Account), "err", err)
		return s.handBack(ctx, t, w, "the bank did not answer in time; hand the cash back", err)
	}
	if resp.ResponseCode != iso.RCApproved {
		_, derr := s.apply(context.WithoutCancel(ctx), Move{Kind: KindDeposit, ID: id, Event: EvDecline, At: s.now(),
			Set: []Col{{"response_code", resp.ResponseCode}}})
		if derr != nil && !errors.Is(derr, ledger.ErrUnchanged) {
			s.log.Error("recording a declined deposit", "deposit", id, "err", derr)
		}
		if derr == nil {
			s.m.transition(StateDepDeclined)
		}
		return DepositReceipt{}, softatm.Errorf(softatm.EDepositNotTaken, "the bank declined this deposit (%s); hand the cash back",
			resp.ResponseCode)
	}
	if resp.Amount != sent.Amount {
		// CheckReply made field 4 equal to the 0200's: a broken invariant,
		// not an answer. Keep nothing.
		return s.handBack(ctx, t, w, "the bank's answer did not match the deposit; hand the cash back",
			fmt.Errorf("deposit %s: credited %d, asked %d", id, resp.Amount, sent.Amount))
	}
	crashPoint(CrashDepositAfter0210)
	res, err := s.apply(ctx, Move{Kind: KindDeposit, ID: id, Event: EvApprove, At: s.now(), Cutoff: cut,
		Set: []Col{{"approval_code", resp.ApprovalCode}, {"approved_amount", resp.Amount}, {"response_code", iso.RCApproved},
			{"credited_at", s.now()}, {"credit_date", ledger.BusinessDateArg}},
		Bank: sent.Bank, PostOffice: t.PostOffice, Amount: resp.Amount, Currency: sent.Currency})
	if errors.Is(err, ledger.ErrUnchanged) {
		// The sweeper failed it first (the 0210 came too late): its 0420
		// is queued and reverses this approval at the bank.
		s.log.Warn("0210 approval arrived after the deposit was failed; not kept, reversal queued", "deposit", id)
		return DepositReceipt{}, softatm.Errorf(softatm.EDepositNotTaken, "the bank answered too late; the credit is reversed; hand the cash back")
	}
	if err != nil {
		// The outcome may be unknown (the connection dropped during
		// COMMIT). Read it back: a credit recorded is a receipt; one not
		// recorded is failed and handed back. When even the read fails,
		// the switch cannot tell, and the bank did credit: handing the
		// cash back could pay it twice, keeping it could lose the credit.
		// The teller keeps it apart and confirms again.
		cur, rerr := s.readBack(ctx, id)
		switch {
		case rerr != nil:
			s.log.Error("a credited deposit's outcome is unknown; the teller keeps the cash apart", "deposit", id, "err", err, "read_err", rerr)
			return DepositReceipt{}, softatm.Wrap(softatm.EDepositUnknown,
				"the switch cannot tell whether this deposit was recorded: keep the cash apart, do not hand it back, and confirm again in a minute", err)
		case cur.State != StateDepCredited:
			return s.handBack(ctx, t, w, "the deposit could not be recorded; hand the cash back", err)
		}
		s.log.Warn("recording the credit reported an error but it is recorded", "deposit", id, "err", err)
	} else {
		s.m.transition(StateDepCredited)
		_ = res
	}
	crashPoint(CrashDepositAfterCommit)
	return s.creditedReceipt(ctx, t, w)
}

// creditedReceipt answers a confirm whose deposit w is credited: its
// receipt, or, if reading that fails, the short one (the full one can be
// reprinted from My day) rather than an error.
func (s *Service) creditedReceipt(ctx context.Context, t Teller, w Withdrawal) (DepositReceipt, error) {
	rc, err := s.CreditedReceipt(ctx, t, w.ID)
	if err != nil {
		s.log.Warn("reading a credited deposit's receipt", "deposit", w.ID, "err", err)
		return DepositReceipt{Withdrawal: Withdrawal{Kind: KindDeposit, ID: w.ID, Amount: w.Amount, Currency: w.Currency,
			Bank: w.Bank, PostOffice: t.PostOffice, PaidKiosk: t.Kiosk, State: StateDepCredited}}, nil
	}
	return rc, nil
}

// confirmedWith answers a confirm sent again for deposit w, whose 0200 it
// sent: the receipt once credited, hand the cash back once it is not
// (declined, or failed and reversed), and, while the bank's answer is not
// recorded either way, keep the cash apart.
func (s *Service) confirmedWith(ctx context.Context, t Teller, w Withdrawal) (DepositReceipt, error) {
	switch w.State {
	case StateDepCredited:
		return s.creditedReceipt(ctx, t, w)
	case StateDepCrediting:
		return DepositReceipt{}, softatm.Errorf(softatm.EDepositUnknown,
			"the bank's answer to this deposit is not recorded yet: keep the cash apart, do not hand it back, and confirm again in a minute")
	case StateDepDeclined, StateDepFailed:
		return DepositReceipt{}, softatm.Errorf(softatm.EDepositNotTaken, "the bank did not credit this deposit; hand the cash back")
	}
	return DepositReceipt{}, depositStateError(w, s.now(), t.holder())
}

// handBack fails deposit w, whose credit has no usable answer (its 0420
// queued), and tells teller t to hand the cash back, unless the credit
// turns out recorded meanwhile (a commit whose answer was lost became
// visible): then the answer is its receipt.
func (s *Service) handBack(ctx context.Context, t Teller, w Withdrawal, msg string, cause error) (DepositReceipt, error) {
	_, err := s.apply(context.WithoutCancel(ctx), Move{Kind: KindDeposit, ID: w.ID, Event: EvFail, At: s.now()})
	switch {
	case err == nil:
		s.m.transition(StateDepFailed)
		s.wake()
	case errors.Is(err, ledger.ErrUnchanged):
		// Failed already (the sweeper), or recorded meanwhile: read which.
		if cur, rerr := s.store.Get(context.WithoutCancel(ctx), w.ID); rerr == nil && cur.State == StateDepCredited {
			s.log.Warn("the deposit was credited while failing it; answering with its receipt", "deposit", w.ID, "cause", cause)
			return s.creditedReceipt(ctx, t, w)
		}
	default:
		// The row stays in crediting; the sweeper fails it.
		s.log.Error("failing a deposit", "deposit", w.ID, "err", err)
	}
	return DepositReceipt{}, softatm.Wrap(softatm.EDepositNotTaken, msg, cause)
}

// ensurePayable creates a bank's payable account on its first deposit.
func (s *Service) ensurePayable(ctx context.Context, bank string) error {
	if _, ok := s.payables.Load(bank); ok {
		return nil
	}
	if err := s.ledger.EnsureAccount(ctx, ledger.PayableCode(bank), s.cfg.Currency, 0); err != nil {
		return fmt.Errorf("opening the bank's payable account: %w", err)
	}
	s.payables.Store(bank, true)
	return nil
}

// CreditedReceipt returns the receipt of a deposit credited at the teller's
// post office; any other is not found.
func (s *Service) CreditedReceipt(ctx context.Context, t Teller, id uuid.UUID) (DepositReceipt, error) {
	r, err := s.store.PaidReceipt(ctx, id)
	if err != nil {
		return DepositReceipt{}, err
	}
	w := r.Withdrawal
	if w.Kind != KindDeposit || w.State != StateDepCredited || w.PostOffice == "" || w.PostOffice != t.PostOffice {
		return DepositReceipt{}, softatm.Errorf(softatm.ENotFound, "no deposit of this post office has this id")
	}
	r.Withdrawal.HolderName, r.Withdrawal.QRPayload = "", ""
	return r, nil
}

// ReleaseDeposit gives up the teller's claim on a deposit (the citizen
// left, the name did not match): the code may be brought again.
func (s *Service) ReleaseDeposit(ctx context.Context, t Teller, id uuid.UUID) error {
	now := s.now()
	_, err := s.apply(ctx, Move{Kind: KindDeposit, ID: id, Event: EvRelease, At: now, Holder: t.holder(), Set: claimCleared})
	if errors.Is(err, ledger.ErrUnchanged) {
		cur, rerr := s.store.Get(ctx, id)
		if rerr != nil {
			return rerr
		}
		return depositStateError(cur, now, t.holder())
	}
	return err
}

// cancelDeposit cancels a deposit code no teller has claimed.
func (s *Service) cancelDeposit(ctx context.Context, id uuid.UUID) error {
	now := s.now()
	_, err := s.apply(ctx, Move{Kind: KindDeposit, ID: id, Event: EvCancel, At: now})
	if errors.Is(err, ledger.ErrUnchanged) {
		cur, rerr := s.store.Get(ctx, id)
		if rerr != nil {
			return rerr
		}
		if cur.State == StateDepCancelled {
			return nil
		}
		return depositStateError(cur, now, "")
	}
	if err == nil {
		s.m.transition(StateDepCancelled)
	}
	return err
}

// sweepDeposits moves the deposits whose time has come: codes expired,
// claims lapsed, credits without an answer for CreditingMax (failed, 0420
// queued).
func (s *Service) sweepDeposits(ctx context.Context, now, before time.Time) (moved int, err error) {
	for _, sw := range []struct {
		ev     Event
		before time.Time
		set    []Col
	}{
		{EvExpire, before, nil},
		{EvFail, before.Add(-s.cfg.CreditingMax), nil},
		{EvLapse, before, claimCleared},
	} {
		ids, err := s.store.DueDeposits(ctx, sw.ev, sw.before, sweepBatch)
		if err != nil {
			return moved, err
		}
		for _, id := range ids {
			_, err := s.apply(ctx, Move{Kind: KindDeposit, ID: id, Event: sw.ev, At: now, Before: before, Set: sw.set})
			if errors.Is(err, ledger.ErrUnchanged) {
				continue // moved meanwhile
			}
			if err != nil {
				return moved, fmt.Errorf("deposit %s %s: %w", sw.ev, id, err)
			}
			s.m.transition(targetOf(KindDeposit, sw.ev).To)
			if targetOf(KindDeposit, sw.ev).Queues != MsgNone {
				s.wake()
			}
			moved++
		}
	}
	return moved, nil
}

// LargeCash returns the credited large-cash deposits of business days
// from..to, with the ID numbers typed (finance's report).
func (s *Service) LargeCash(ctx context.Context, from, to time.Time) ([]LargeCashDeposit, error) {
	return s.store.LargeCash(ctx, from, to)
}

// depositStateError explains, in the error vocabulary, why a deposit in
// its state cannot be claimed or confirmed.
func depositStateError(w Withdrawal, now time.Time, holder string) error {
	switch w.State {
	case StateDepCredited:
		return softatm.Errorf(softatm.ECodeUsed, "this deposit has already been credited")
	case StateDepCancelled:
		return softatm.Errorf(softatm.ECodeCancelled, "this deposit code was cancelled")
	case StateDepExpired:
		return softatm.Errorf(softatm.ECodeExpired, "this deposit code has expired")
	case StateDepDeclined, StateDepFailed:
		return softatm.Errorf(softatm.ECodeCancelled, "this deposit was not credited; ask for a new code")
	case StateDepCrediting:
		return softatm.Errorf(softatm.EConflict, "this deposit is waiting for the bank's answer")
	case StateDepCounter:
		if w.ClaimedBy != holder {
			return softatm.Errorf(softatm.ECodeClaimed, "another counter is taking this deposit")
		}
		if w.ClaimUntil.Before(now) {
			return softatm.Errorf(softatm.EConflict, "your claim on this deposit has ended; scan it again")
		}
		return softatm.Errorf(softatm.EConflict, "this deposit is already at your counter")
	case StateDepIssued:
		if !w.ExpiresAt.IsZero() && now.After(w.ExpiresAt) {
			return softatm.Errorf(softatm.ECodeExpired, "this deposit code has expired")
		}
		return softatm.Errorf(softatm.EConflict, "scan the deposit code before confirming")
	}
	if w.Kind != KindDeposit {
		return softatm.Errorf(softatm.ENotFound, "no deposit has this id")
	}
	return softatm.Errorf(softatm.EConflict, "deposit is %s", w.State)
}

package atmswitch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm/iso"
	"github.com/softatm/softatm/ledger"
)

// OutboxConfig bounds the store-and-forward worker.
type OutboxConfig struct {
	Owner       string        // this worker's name in lease_owner; unique per instance
	Batch       int           // messages leased per pass
	Lease       time.Duration // how long a leased message is ours; past it another worker may send it
	MaxAttempts int           // after this many unanswered tries a message becomes an exception
	BackoffMin  time.Duration // first retry delay; doubles per attempt, with jitter
	BackoffMax  time.Duration //
	Poll        time.Duration // idle poll interval (a kick wakes the worker sooner)
	SendTimeout time.Duration // deadline of one advice or reversal

	// CardAcceptorID is ISO field 42 of advices and reversals: it must be
	// the 0100's, Config.CardAcceptorID (serve sets both from one flag).
	// AcceptorName and AcceptorCity are field 43 of reversals, as the 0100
	// carried them (Config's); an advice's field 43 names the post office
	// that paid.
	CardAcceptorID string
	AcceptorName   string
	AcceptorCity   string
}

// DefaultOutboxConfig returns the defaults.
func DefaultOutboxConfig() OutboxConfig {
	return OutboxConfig{
		Owner:       "outbox-" + uuid.NewString()[:8],
		Batch:       32,
		Lease:       30 * time.Second,
		MaxAttempts: 20,
		BackoffMin:  500 * time.Millisecond,
		BackoffMax:  2 * time.Minute,
		Poll:        500 * time.Millisecond,
		SendTimeout: 10 * time.Second,

		CardAcceptorID: DefaultConfig().CardAcceptorID,
		AcceptorName:   DefaultConfig().AcceptorName,
		AcceptorCity:   DefaultConfig().AcceptorCity,
	}
}

// Outbox sends queued advices (0220, repeated as 0221) and reversals (0420,
// repeated as 0421) until the bank answers. Messages of one withdrawal go in
// order. Several workers, in several processes, may run at once: a message is
// leased before it is sent, so no two workers send it in parallel; a worker
// that dies mid-send leaves a lease that runs out, and the message is sent
// again as a repeat, which the issuer treats idempotently.
type Outbox struct {
	cfg   OutboxConfig
	store Store // its writes go through the ledger's committer with the switch's others
	bank  Bank
	log   *slog.Logger
	m     *Metrics
	now   func() time.Time
	kick  chan struct{}
	// banks, when set (Links does, one worker per link), names the banks
	// whose messages this worker sends; nil: every bank's.
	banks func() []string
}

// NewOutbox returns a worker; call Run.
func NewOutbox(cfg OutboxConfig, pool *pgxpool.Pool, l *ledger.Ledger, bank Bank, log *slog.Logger, m *Metrics, now func() time.Time) *Outbox {
	if now == nil {
		now = time.Now
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Outbox{cfg: cfg, store: newPGStore(pool, l, nil), bank: bank, log: log, m: m, now: now, kick: make(chan struct{}, 1)}
}

// Kick wakes the worker without waiting for the next poll.
func (o *Outbox) Kick() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// Run sends messages until ctx ends.
func (o *Outbox) Run(ctx context.Context) {
	drainLoop(ctx, o.kick, o.cfg.Poll, o.cfg.Batch, o.Drain, func(err error) { o.log.Warn("outbox pass failed", "err", err) })
}

// drainLoop runs drain until ctx ends: at once, then every poll, or when
// kicked (kick may be nil), and again at once after a full batch (more may
// be waiting). The outbox and the callback worker share it.
func drainLoop(ctx context.Context, kick <-chan struct{}, poll time.Duration, batch int,
	drain func(context.Context) (int, error), failed func(error)) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
		n, err := drain(ctx)
		if err != nil && ctx.Err() == nil {
			failed(err)
		}
		next := poll
		if n == batch {
			next = 0
		}
		t.Reset(next)
	}
}

// Drain leases the due messages and sends them once each; it returns how
// many it leased.
func (o *Outbox) Drain(ctx context.Context) (int, error) {
	// A link that would not send (down, or its circuit open) leases
	// nothing: its messages wait in the queue, their attempts untouched,
	// and no pass of this worker waits on a bank that is not there.
	if r, ok := o.bank.(interface{ Ready() bool }); ok && o.banks != nil && !r.Ready() {
		return 0, nil
	}
	var banks []string // nil: every bank's messages
	now := o.now()
	if o.banks != nil {
		if banks = o.banks(); len(banks) == 0 {
			return 0, nil
		}
		// One worker per link polls: most passes find nothing, and a
		// lease is a write through the committer. Ask first.
		if due, err := o.store.AnyDue(ctx, now, banks); err != nil || !due {
			return 0, err
		}
	}
	msgs, err := o.store.Lease(ctx, o.cfg.Owner, now, now.Add(o.cfg.Lease), o.cfg.Batch, banks)
	if err != nil {
		return 0, fmt.Errorf("leasing outbox: %w", err)
	}
	// Each message in its own goroutine (at most Batch): the link carries
	// them concurrently and their answers share the committer's batches.
	var wg sync.WaitGroup
	for _, m := range msgs {
		wg.Go(func() {
			if err := o.send(ctx, m); err != nil && ctx.Err() == nil {
				o.log.Warn("outbox send", "withdrawal", m.withdrawalID, "kind", m.kind, "err", err)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return len(msgs), err
	}
	o.observeDepth(ctx)
	return len(msgs), nil
}

func (o *Outbox) send(ctx context.Context, m outboxMsg) error {
	w, po, err := o.store.ForMessage(ctx, m.withdrawalID)
	if err != nil {
		return fmt.Errorf("loading withdrawal: %w", err)
	}
	// One identity per withdrawal: 41, 42 and 37 are the 0100's, and 90
	// names it, so the bank pairs this message with its hold by STAN and
	// terminal. Only field 43 differs: on an advice it says where the cash
	// was paid.
	req := iso.AdviceRequest{
		Repeat: m.attempts > 0, STAN: o.bank.NextSTAN(), RRN: w.RRN, TransmittedAt: o.now(),
		Account: w.Account, Amount: w.Amount, Currency: w.Currency, ApprovalCode: w.ApprovalCode,
		TerminalID: w.TerminalID, CardAcceptor: o.cfg.CardAcceptorID,
		AcceptorName: iso.AcceptorLocation(o.cfg.AcceptorName, o.cfg.AcceptorCity, iso.CountryVN),
		Original:     iso.Original{MTI: "0100", STAN: w.STAN, TransmittedAt: w.TransmittedAt},
	}
	if m.kind == "advice" {
		req.AcceptorName = iso.AcceptorLocation(po.Name, po.Town(), iso.CountryVN)
		if w.BusinessDate.After(time.Unix(0, 0)) { // the store reads no date as the epoch
			req.SettlementDate = w.BusinessDate
		}
	}
	if w.Kind == KindDeposit {
		// A deposit's reversal names its 0200 and says which way the money
		// went (iso/deposit.go).
		req.ProcessingCode, req.Original.MTI = iso.ProcessingDeposit, iso.MTIFinancialRequest
	}
	sctx, cancel := context.WithTimeout(logAbout(ctx, m.withdrawalID), o.cfg.SendTimeout)
	var resp iso.AdviceResponse
	if m.kind == "advice" {
		resp, err = o.bank.Advise(sctx, req)
	} else {
		crashPoint(CrashBeforeReversal)
		resp, err = o.bank.Reverse(sctx, req)
	}
	cancel()
	crashPoint(CrashAfterSend)
	o.m.outboxSent.WithLabelValues(m.kind, outcome(resp.ResponseCode, err)).Inc()
	if err != nil {
		return o.retryLater(ctx, m, err)
	}
	if m.kind == "advice" && resp.SettlementDate != "" {
		// The bank's own business date for the capture: kept beside the
		// switch's, so that recon can tell a cut-off difference from a
		// missing line. A malformed one is only logged: the advice was
		// acknowledged all the same.
		if d, ok := iso.SettlementDay(resp.SettlementDate, w.BusinessDate); ok {
			m.bankDate = d
		} else {
			o.log.Warn("advice answer with a malformed settlement date", "withdrawal", m.withdrawalID, "field15", resp.SettlementDate)
		}
	}
	return o.answered(ctx, m, resp.ResponseCode)
}

func outcome(rc string, err error) string {
	if err != nil {
		return "no_answer"
	}
	return "rc_" + rc
}

// answered records the bank's answer. 00 (and 94, "already have it") end the
// message; any other answer is an exception for finance: the bank refused
// to capture or release, and only a person can decide what that means.
func (o *Outbox) answered(ctx context.Context, m outboxMsg, rc string) error {
	now := o.now()
	state := "done"
	if rc != iso.RCApproved && rc != iso.RCDuplicate {
		state = "exception"
	}
	ended, err := o.store.Answered(ctx, m, state, rc, now)
	if err == nil && ended && state == "exception" {
		o.m.outboxExceptions.WithLabelValues(m.kind).Inc()
	}
	return err
}

func (o *Outbox) retryLater(ctx context.Context, m outboxMsg, cause error) error {
	now := o.now()
	attempts := m.attempts + 1
	state := "pending"
	if attempts >= o.cfg.MaxAttempts {
		state = "exception"
		o.log.Error("outbox message moved to exceptions", "withdrawal", m.withdrawalID, "kind", m.kind, "attempts", attempts)
	}
	moved, err := o.store.RetryLater(ctx, m, state, attempts, now.Add(o.backoff(attempts)), cause.Error())
	if err == nil && moved && state == "exception" {
		o.m.outboxExceptions.WithLabelValues(m.kind).Inc()
	}
	return errors.Join(cause, err)
}

func (o *Outbox) backoff(attempts int) time.Duration {
	d := o.cfg.BackoffMin << min(attempts-1, 20)
	if d > o.cfg.BackoffMax || d <= 0 {
		d = o.cfg.BackoffMax
	}
	return d/2 + rand.N(d/2+1)
}

func (o *Outbox) observeDepth(ctx context.Context) {
	depth, oldest, err := o.store.OutboxDepth(ctx)
	if err != nil {
		return
	}
	o.m.outboxDepth.Set(float64(depth))
	o.m.outboxOldest.Set(o.now().Sub(oldest).Seconds())
}

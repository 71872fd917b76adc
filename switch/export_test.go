package atmswitch

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// SetNumericSource makes s draw numeric codes from next (tests).
func SetNumericSource(s *Service, next func() (string, error)) { s.numeric = next }

// OutboxExceptions is softatm_outbox_exceptions_total{kind} (tests).
func (m *Metrics) OutboxExceptions(kind string) float64 {
	return testutil.ToFloat64(m.outboxExceptions.WithLabelValues(kind))
}

// SendDeposit is the move of a counted deposit to crediting with its till
// guard, as ConfirmDeposit makes it, without the checks before it (tests:
// the guard alone).
func SendDeposit(s *Service, t Teller, id uuid.UUID, amount int64) error {
	_, err := s.apply(context.Background(), Move{Kind: KindDeposit, ID: id, Event: EvSend, At: s.now(), Holder: t.holder(),
		Set: []Col{{"post_office", t.PostOffice}}, TillRoom: &TillRoom{PostOffice: t.PostOffice, Amount: amount}})
	return err
}

// SendDepositUnderLargeCash is the same move with the large-cash guard
// ConfirmDeposit adds when no ID number was given (tests: the guard alone).
func SendDepositUnderLargeCash(s *Service, t Teller, id uuid.UUID, bank, account string, amount int64) error {
	day, err := s.largeCashDay(context.Background(), bank)
	if err != nil {
		return err
	}
	_, err = s.apply(context.Background(), Move{Kind: KindDeposit, ID: id, Event: EvSend, At: s.now(), Holder: t.holder(),
		Set:            []Col{{"post_office", t.PostOffice}},
		UnderLargeCash: &UnderLargeCash{Bank: bank, Account: account, Day: day, Amount: amount, Threshold: s.cfg.LargeCashThreshold}})
	return err
}

// SetRecheck sets how often s's Wait reads again without a wake-up.
func SetRecheck(s *Service, d time.Duration) { s.recheck = d }

// Waiters is how many Waits wait on id in this process.
func Waiters(id uuid.UUID) int {
	changes.mu.Lock()
	defer changes.mu.Unlock()
	return len(changes.waiting[id])
}

// HandBack is what ConfirmDeposit does with a credit that has no usable
// answer (tests: when the deposit turns out credited meanwhile).
func HandBack(s *Service, t Teller, id uuid.UUID) (DepositReceipt, error) {
	w, err := s.store.Get(context.Background(), id)
	if err != nil {
		return DepositReceipt{}, err
	}
	return s.handBack(context.Background(), t, w, "hand the cash back", errors.New("no usable 0210"))
}

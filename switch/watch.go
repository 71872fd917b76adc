package atmswitch

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/softatm/softatm"
)

// watch wakes the requests waiting for a withdrawal to change (GET
// /v1/withdrawals/{id}?changed_from=STATE&wait=D). A wake-up is a hint,
// never the news: the waiter reads the row again from its database.
//
// It is one per process because a withdrawal's moves are made by workers
// that share no other object (the service, each bank's outbox), all through
// pgStore's Apply or Answered, which call changed. Withdrawal ids are
// random, so a wake-up for another system's id in the same process (tests)
// costs at most one read. A move made by another switch instance wakes no
// one here: a waiter reads again every recheck as well.
type watch struct {
	mu      sync.Mutex
	waiting map[uuid.UUID][]chan struct{}
}

var changes = &watch{waiting: map[uuid.UUID][]chan struct{}{}}

// subscribe returns a channel closed at id's next change, and a func that
// forgets it (call it when done waiting, woken or not).
func (w *watch) subscribe(id uuid.UUID) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	w.mu.Lock()
	w.waiting[id] = append(w.waiting[id], ch)
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		list := w.waiting[id]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(w.waiting, id)
		} else {
			w.waiting[id] = list
		}
	}
}

// changed wakes every waiter of id.
func (w *watch) changed(id uuid.UUID) {
	w.mu.Lock()
	list := w.waiting[id]
	delete(w.waiting, id)
	w.mu.Unlock()
	for _, ch := range list {
		close(ch)
	}
}

const (
	// MaxWait bounds a waiting GET: well under serve's write timeout.
	MaxWait = 30 * time.Second
	// defaultRecheck is how often a waiting GET reads the row again
	// without a wake-up: the bound on how late it sees a move another
	// switch instance made (Service.recheck; tests set it).
	defaultRecheck = time.Second
)

// Wait returns bank's withdrawal id once its state is not from, or after
// wait with the state it then has (still from: the caller asks again). The
// answer is always a read of the row, so a wake-up lost or spurious
// changes only when it is read, never what is answered.
func (s *Service) Wait(ctx context.Context, bank string, id uuid.UUID, from State, wait time.Duration) (Withdrawal, error) {
	if wait <= 0 || wait > MaxWait {
		return Withdrawal{}, softatm.Errorf(softatm.EInvalid, "wait must be more than 0 and at most %s", MaxWait)
	}
	if !slices.Contains(States, from) && !slices.Contains(DepositStates, from) {
		return Withdrawal{}, softatm.Errorf(softatm.EInvalid, "changed_from %q is not a state", from)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		// Subscribe before reading, so a change between the read and the
		// wait still wakes it.
		woken, forget := changes.subscribe(id)
		w, err := s.Get(ctx, bank, id)
		if err != nil || w.State != from {
			forget()
			return w, err
		}
		again := time.NewTimer(s.recheck)
		select {
		case <-woken:
		case <-again.C:
		case <-deadline.C:
			forget()
			again.Stop()
			return w, nil
		case <-ctx.Done():
			forget()
			again.Stop()
			return w, nil
		}
		forget()
		again.Stop()
	}
}

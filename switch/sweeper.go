package atmswitch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
)

// sweepBatch bounds the withdrawals one sweep pass moves per kind.
const sweepBatch = 100

// Sweep ends what time has ended: codes past their expiry are expired and
// their holds reversed; claims whose lease ran out go back to reserved;
// requests that never got a usable 0110 (the switch crashed while waiting,
// or the reply never came) are failed and reversed. It is safe to run from
// several instances at once: every move is a conditional UPDATE.
func (s *Service) Sweep(ctx context.Context) (moved int, err error) {
	now := s.now()
	// Every time below was written by whichever instance took the request
	// (or the claim), on its clock: allow for the skew, or an instance
	// whose clock runs ahead ends what a slower one still has in flight.
	before := now.Add(-s.cfg.ClockSkew)
	for _, sw := range []struct {
		ev     Event
		before time.Time
		move   func(uuid.UUID) error
	}{
		{EvExpire, before, func(id uuid.UUID) error { return s.endHold(ctx, id, "", EvExpire) }},
		{EvFail, before.Add(-s.cfg.RequestedMax), func(id uuid.UUID) error { return s.fail(ctx, id) }},
		{EvLapse, before, func(id uuid.UUID) error { return s.lapse(ctx, id, now, before) }},
	} {
		ids, err := s.store.Due(ctx, sw.ev, sw.before, sweepBatch)
		if err != nil {
			return moved, err
		}
		for _, id := range ids {
			if err := sw.move(id); err != nil && !isStateErr(err) {
				return moved, fmt.Errorf("%s %s: %w", sw.ev, id, err)
			}
			moved++
		}
	}
	n, err := s.sweepDeposits(ctx, now, before)
	return moved + n, err
}

// lapse frees a claim whose lease ended before before.
func (s *Service) lapse(ctx context.Context, id uuid.UUID, now, before time.Time) error {
	_, err := s.apply(ctx, Move{ID: id, Event: EvLapse, At: now, Before: before, Set: claimCleared})
	if errors.Is(err, ledger.ErrUnchanged) {
		return nil // confirmed, released or re-claimed meanwhile
	}
	return err
}

// isStateErr says err is a domain refusal (the row moved on), not a failure.
func isStateErr(err error) bool {
	c := softatm.ErrorCode(err)
	return c != "" && c != softatm.EInternal
}

// RunSweeper sweeps every interval until ctx ends.
func (s *Service) RunSweeper(ctx context.Context, interval time.Duration) {
	Every(ctx, interval, func(ctx context.Context) {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sweep failed", "err", err)
		}
	})
}

// Every runs fn every interval until ctx ends.
func Every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

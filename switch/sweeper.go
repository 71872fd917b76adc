package atmswitch

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/softatm/softatm"
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
	ids, err := s.ids(ctx, `SELECT id FROM withdrawals WHERE state = 'reserved' AND expires_at < $1 LIMIT $2`,
		now.Add(-s.cfg.ClockSkew), sweepBatch)
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if err := s.endHold(ctx, id, StateExpired); err != nil && !isStateErr(err) {
			return moved, fmt.Errorf("expiring %s: %w", id, err)
		}
		moved++
	}
	// created_at was written by whichever instance took the request, on its
	// clock: allow for the skew, as the other two sweeps do, or an instance
	// whose clock runs ahead fails every request a slower one has in flight.
	ids, err = s.ids(ctx, `SELECT id FROM withdrawals WHERE state = 'requested' AND created_at < $1 LIMIT $2`,
		now.Add(-s.cfg.RequestedMax-s.cfg.ClockSkew), sweepBatch)
	if err != nil {
		return moved, err
	}
	for _, id := range ids {
		if err := s.fail(ctx, id); err != nil {
			return moved, err
		}
		moved++
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE withdrawals SET state = 'reserved', claimed_by = '', claimed_kiosk = '',
			claim_until = NULL, updated_at = $1
			WHERE id IN (SELECT id FROM withdrawals WHERE state = 'claimed' AND claim_until < $2 LIMIT $3)
			  AND state = 'claimed'`, now, now.Add(-s.cfg.ClockSkew), sweepBatch)
		if err == nil {
			moved += int(tag.RowsAffected())
		}
		return err
	})
	return moved, err
}

// isStateErr says err is a domain refusal (the row moved on), not a failure.
func isStateErr(err error) bool {
	c := softatm.ErrorCode(err)
	return c != "" && c != softatm.EInternal
}

func (s *Service) ids(ctx context.Context, q string, args ...any) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
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

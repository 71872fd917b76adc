package main

import (
	"context"
	"testing"
	"time"
)

// TestServePurgesOldIdempotencyKeys: serve deletes finished idempotency
// keys once they are older than -idempotency-keep, every -purge-every.
func TestServePurgesOldIdempotencyKeys(t *testing.T) {
	t.Parallel()
	s := startSystem(t, func(c *ServeConfig) { c.PurgeEvery, c.KeysKeep = 100*time.Millisecond, 2*time.Second })
	keys := func() int {
		var n int
		if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM idempotency_keys WHERE state = 'done'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	s.createWithdrawal(t, "9704000000000011", 100_000)
	// A create's record is stored after its answer (idem.WithLazyCommit).
	eventually(t, "the create's key finished", func() bool { return keys() == 1 })
	eventually(t, "the finished key is purged", func() bool { return keys() == 0 })
}

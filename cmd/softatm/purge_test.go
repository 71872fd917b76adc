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
	if n := keys(); n != 1 {
		t.Fatalf("%d finished keys after one create, want 1 (kept for 2 s)", n)
	}
	eventually(t, "the finished key is purged", func() bool { return keys() == 0 })
}

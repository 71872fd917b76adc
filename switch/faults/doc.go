// Package faults is the fault and concurrency proof suite: it starts the
// real `softatm serve` binary (one or more processes) against a private
// PostgreSQL and Redis, with the issuer simulator (iso/banksim) in-process
// behind a loopback fault proxy (fixtures/faultproxy), drives withdrawals
// through the HTTP API from many goroutines while it kills, cuts, floods and
// skews, and then proves DESIGN.md's promises:
//
//   - a code pays at most once (scenarios 1, 2, 5, 6, 7);
//   - the same request resent has one effect and one answer (2);
//   - every hold at the bank ends captured or released, even across
//     `kill -9` at each labelled crash point (3) and of one of two
//     instances (8);
//   - no payout without an approval, reversals are sent, nothing is
//     dropped when the bank misbehaves or goes away (4);
//   - Redis is only a fast gate (5); a cut during COMMIT is read back (6);
//   - a redemption at expiry is paid or refused, never both, with ±5 min of
//     skew between instances (7).
//   - a deposit is credited at most once, at the bank exactly when in the
//     ledger: under the bank's faults the cash is handed back and what the
//     bank credited is reversed, across `kill -9` before the 0200, after
//     the 0210, after the commit and before a deposit's 0420, and with
//     Redis flushed (9).
//
// After every scenario the suite settles the system (cancels what is still
// redeemable, lets the sweeper and the outbox finish), runs `softatm admin
// check`, and compares the database with the simulator's own books.
//
// Every scenario takes a seed (SOFTATM_SEED, else the time) and logs it;
// all its random choices come from it. `make soak DURATION=10m` runs the
// package repeatedly with SOFTATM_SOAK_SCALE raising the rounds, and sums
// the lines each scenario appends to SOFTATM_SOAK_STATS.
//
// The package holds tests only. It imports the switch's packages for their
// constants and the simulator, and starts the switch itself only as a
// separate process, as production runs it.
package faults

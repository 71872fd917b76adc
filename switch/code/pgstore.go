package code

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm"
	"github.com/softatm/softatm/ledger"
)

// PGKeyStore settings.
const (
	// txRetriesMax bounds the retries of one key-store transaction after a
	// serialization failure or deadlock; key changes are rare operator
	// actions, so contention is a race between two operators at most.
	txRetriesMax = 10
)

// PGKeyStore keeps keys in the table signing_keys (migrations 00021 and
// 00030) on PostgreSQL or CockroachDB. Private keys are stored there as
// 32-byte seeds: sealed (sealed_seed) with a key-encryption key, in clear
// (private_seed) without one. See seal.go.
type PGKeyStore struct {
	pool        *pgxpool.Pool
	kek         *KEK
	publicsOnly bool
}

// PGOption configures a PGKeyStore.
type PGOption func(*PGKeyStore)

// WithKEK seals the seeds of new keys with kek and opens sealed seeds with
// it. Without it, new seeds are stored in clear and a sealed seed cannot be
// read (ErrSealed).
func WithKEK(kek *KEK) PGOption { return func(s *PGKeyStore) { s.kek = kek } }

// WithPublicsOnly reads keys without their private halves (Private nil):
// for listing keys and for an instance that only verifies, neither of which
// needs the KEK.
func WithPublicsOnly() PGOption { return func(s *PGKeyStore) { s.publicsOnly = true } }

// NewPGKeyStore returns a key store on pool.
func NewPGKeyStore(pool *pgxpool.Pool, opts ...PGOption) *PGKeyStore {
	s := &PGKeyStore{pool: pool}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Keys implements KeyStore. It reads without locking.
func (s *PGKeyStore) Keys(ctx context.Context) ([]Key, error) {
	var keys []Key
	err := s.run(ctx, func(tx pgx.Tx) error {
		keys = keys[:0]
		rows, err := tx.Query(ctx, `SELECT id, public_key, private_seed, sealed_seed, state, created_at, activated_at, retired_at
			FROM signing_keys ORDER BY created_at, id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				k                  Key
				pub, seed, sealed  []byte
				activated, retired *time.Time
			)
			if err := rows.Scan(&k.ID, &pub, &seed, &sealed, &k.State, &k.CreatedAt, &activated, &retired); err != nil {
				return err
			}
			k.Public = ed25519.PublicKey(pub)
			if s.publicsOnly {
				seed, sealed = nil, nil
			}
			if sealed != nil {
				if seed, err = s.kek.openSeed(k.ID, sealed); err != nil {
					return err
				}
			}
			if seed != nil {
				if len(seed) != ed25519.SeedSize {
					return fmt.Errorf("key %s: private seed is %d bytes", k.ID, len(seed))
				}
				k.Private = ed25519.NewKeyFromSeed(seed)
			}
			k.CreatedAt = k.CreatedAt.UTC()
			if activated != nil {
				k.ActivatedAt = activated.UTC()
			}
			if retired != nil {
				k.RetiredAt = retired.UTC()
			}
			keys = append(keys, k)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("reading signing keys: %w", err)
	}
	return keys, nil
}

// Create implements KeyStore.
func (s *PGKeyStore) Create(ctx context.Context, k Key) error {
	if err := checkNew(k); err != nil {
		return err
	}
	var seed, sealed []byte
	if k.Private != nil {
		seed = k.Private.Seed()
	}
	if seed != nil && s.kek != nil {
		var err error
		if sealed, err = s.kek.sealSeed(k.ID, seed); err != nil {
			return err
		}
		seed = nil
	}
	err := s.run(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO signing_keys (id, public_key, private_seed, sealed_seed, state, created_at)
			VALUES ($1, $2, $3, $4, 'pending', $5)`, k.ID, []byte(k.Public), seed, sealed, k.CreatedAt.UTC())
		return err
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return softatm.Errorf(softatm.EConflict, "key %s already exists", k.ID)
	}
	if err != nil {
		return fmt.Errorf("creating key %s: %w", k.ID, err)
	}
	return nil
}

// Activate implements KeyStore. In one transaction it reads the key's state,
// retires the active key and activates this one; the unique index
// signing_keys_one_active makes a concurrent activation fail rather than
// leave two active keys.
func (s *PGKeyStore) Activate(ctx context.Context, id string, at time.Time) error {
	at = at.UTC()
	var result error
	err := s.run(ctx, func(tx pgx.Tx) error {
		result = nil
		var state string
		err := tx.QueryRow(ctx, `SELECT state FROM signing_keys WHERE id = $1`, id).Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) {
			result = softatm.Errorf(softatm.ENotFound, "key %s not found", id)
			return nil
		}
		if err != nil {
			return err
		}
		switch state {
		case StateActive:
			return nil
		case StateRetired:
			result = softatm.Errorf(softatm.EConflict, "key %s is retired", id)
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE signing_keys SET state = 'retired', retired_at = $1
			WHERE state = 'active'`, at); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE signing_keys SET state = 'active', activated_at = $2
			WHERE id = $1 AND state = 'pending'`, id, at)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			// A concurrent activation committed first; a new transaction
			// will see its key and retire it.
			return ledger.Retryable(err)
		}
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			// Serializable isolation makes this impossible: the row read as
			// pending above cannot have changed.
			return fmt.Errorf("key %s: activated %d rows", id, tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("activating key %s: %w", id, err)
	}
	return result
}

// Retire implements KeyStore. A retired key's RetiredAt only moves earlier.
func (s *PGKeyStore) Retire(ctx context.Context, id string, at time.Time) error {
	at = at.UTC()
	var n int64
	err := s.run(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE signing_keys SET state = 'retired',
			retired_at = CASE WHEN state = 'retired' THEN LEAST(retired_at, $2) ELSE $2 END
			WHERE id = $1`, id, at)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("retiring key %s: %w", id, err)
	}
	if n == 0 {
		return softatm.Errorf(softatm.ENotFound, "key %s not found", id)
	}
	return nil
}

// Rewrap seals every private seed with the store's KEK, in one
// transaction: a seed in clear is sealed, a seed sealed with old is opened
// and sealed again, a seed already sealed with the store's KEK is left as it
// is (so a rewrap that was interrupted can simply be run again). old may be
// nil when no seed is sealed with another KEK; a seed sealed with a KEK
// that is neither is an error and nothing changes. It returns how many rows
// it changed. `softatm serve` with a KEK calls it at start (old nil) to seal
// the seeds written without one; `softatm keys rewrap` calls it to move to
// a new KEK.
func (s *PGKeyStore) Rewrap(ctx context.Context, old *KEK) (int, error) {
	if s.kek == nil {
		return 0, errors.New("rewrapping signing keys: no key-encryption key to seal with")
	}
	var n int
	err := s.run(ctx, func(tx pgx.Tx) error {
		n = 0
		rows, err := tx.Query(ctx, `SELECT id, private_seed, sealed_seed FROM signing_keys
			WHERE private_seed IS NOT NULL OR sealed_seed IS NOT NULL ORDER BY id`)
		if err != nil {
			return err
		}
		type row struct {
			id           string
			seed, sealed []byte
		}
		var todo []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.seed, &r.sealed); err != nil {
				rows.Close()
				return err
			}
			todo = append(todo, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range todo {
			if r.sealed != nil && sealedBy(r.sealed) == s.kek.Fingerprint() {
				continue
			}
			seed, from := r.seed, old
			if from == nil {
				// Sealed with neither KEK: say so with both fingerprints.
				from = s.kek
			}
			if r.sealed != nil {
				if seed, err = from.openSeed(r.id, r.sealed); err != nil {
					return err
				}
			}
			sealed, err := s.kek.sealSeed(r.id, seed)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE signing_keys SET sealed_seed = $2, private_seed = NULL WHERE id = $1`,
				r.id, sealed); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("rewrapping signing keys: %w", err)
	}
	return n, nil
}

// run runs fn through the one serializable retry loop of the switch.
func (s *PGKeyStore) run(ctx context.Context, fn func(pgx.Tx) error) error {
	return ledger.RunTx(ctx, s.pool, txRetriesMax, fn)
}

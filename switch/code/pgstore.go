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

// PGKeyStore keeps keys in the table signing_keys (migration 00021) on
// PostgreSQL or CockroachDB. Private keys are stored there as 32-byte
// seeds: see the package comment.
type PGKeyStore struct {
	pool *pgxpool.Pool
}

// NewPGKeyStore returns a key store on pool.
func NewPGKeyStore(pool *pgxpool.Pool) *PGKeyStore { return &PGKeyStore{pool: pool} }

// Keys implements KeyStore. It reads without locking.
func (s *PGKeyStore) Keys(ctx context.Context) ([]Key, error) {
	var keys []Key
	err := s.run(ctx, func(tx pgx.Tx) error {
		keys = keys[:0]
		rows, err := tx.Query(ctx, `SELECT id, public_key, private_seed, state, created_at, activated_at, retired_at
			FROM signing_keys ORDER BY created_at, id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				k                  Key
				pub, seed          []byte
				activated, retired *time.Time
			)
			if err := rows.Scan(&k.ID, &pub, &seed, &k.State, &k.CreatedAt, &activated, &retired); err != nil {
				return err
			}
			k.Public = ed25519.PublicKey(pub)
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
	var seed []byte
	if k.Private != nil {
		seed = k.Private.Seed()
	}
	err := s.run(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO signing_keys (id, public_key, private_seed, state, created_at)
			VALUES ($1, $2, $3, 'pending', $4)`, k.ID, []byte(k.Public), seed, k.CreatedAt.UTC())
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

// run runs fn through the one serializable retry loop of the switch.
func (s *PGKeyStore) run(ctx context.Context, fn func(pgx.Tx) error) error {
	return ledger.RunTx(ctx, s.pool, txRetriesMax, fn)
}

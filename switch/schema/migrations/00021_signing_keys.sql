-- +goose Up
-- Owned by package code (switch/code): the Ed25519 keys that sign withdrawal
-- codes. A key is 'pending' when generated, 'active' while it signs new codes
-- (at most one at a time, enforced by the unique partial index below) and
-- 'retired' afterwards; a retired key still verifies codes until its
-- retired_at plus the longest code lifetime plus the clock skew.
--
-- private_seed holds the 32-byte Ed25519 seed in this version. That is a
-- known weakness: in production the private key belongs in an HSM or a KMS
-- and this column stays NULL (a verify-only instance never needs it).

CREATE TABLE signing_keys (
    id           TEXT PRIMARY KEY CHECK (id ~ '^[A-Z0-9]{1,8}$'),
    public_key   BYTEA NOT NULL CHECK (length(public_key) = 32),
    private_seed BYTEA CHECK (private_seed IS NULL OR length(private_seed) = 32),
    state        TEXT NOT NULL CHECK (state IN ('pending','active','retired')),
    created_at   TIMESTAMPTZ NOT NULL,
    activated_at TIMESTAMPTZ,
    retired_at   TIMESTAMPTZ,
    CHECK (state <> 'active' OR activated_at IS NOT NULL),
    CHECK (state <> 'retired' OR retired_at IS NOT NULL)
);

-- Exactly one key signs: a second 'active' row fails this index, so a race
-- between two `softatm keys activate` runs cannot leave two active keys.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';

-- +goose Down
DROP TABLE signing_keys;

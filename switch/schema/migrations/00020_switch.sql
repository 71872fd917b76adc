-- +goose Up
-- Owned by package atmswitch (switch/): banks, post offices, kiosks, the
-- withdrawals themselves and the store-and-forward outbox.

CREATE TABLE banks (
    code       TEXT PRIMARY KEY,                 -- short bank code, e.g. 'MB'
    name       TEXT NOT NULL,
    fee_amount BIGINT NOT NULL DEFAULT 0 CHECK (fee_amount >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE post_offices (
    code       TEXT PRIMARY KEY,                 -- e.g. 'LS-001'; ISO field 42
    name       TEXT NOT NULL,                    -- ISO field 43
    location   TEXT NOT NULL DEFAULT '',
    daily_limit BIGINT NOT NULL DEFAULT 0 CHECK (daily_limit >= 0), -- 0: no limit
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE kiosks (
    id             TEXT PRIMARY KEY,             -- 8 characters; ISO field 41
    post_office    TEXT NOT NULL REFERENCES post_offices (code),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE withdrawals (
    id                 UUID PRIMARY KEY,
    bank_code          TEXT NOT NULL REFERENCES banks (code),
    account_number     TEXT NOT NULL,            -- ISO field 102; never logged, shown masked
    holder_name_masked TEXT NOT NULL DEFAULT '',
    phone_last4_hash   BYTEA,                    -- keyed hash, for the numeric fallback
    amount             BIGINT NOT NULL CHECK (amount > 0),
    currency           TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('requested','reserved','declined','failed',
                                   'claimed','paid','completed','cancelled','expired')),
    -- the 0100 that reserved the money; field 90 of every later advice names it
    terminal_id        TEXT NOT NULL,
    stan               TEXT NOT NULL,
    rrn                TEXT NOT NULL UNIQUE,
    transmitted_at     TIMESTAMPTZ NOT NULL,
    approval_code      TEXT NOT NULL DEFAULT '',
    response_code      TEXT NOT NULL DEFAULT '',
    -- the code
    key_id             TEXT NOT NULL DEFAULT '',
    qr_payload         TEXT NOT NULL DEFAULT '',   -- the signed code; a bearer token, shown only to its bank
    numeric_hash       BYTEA UNIQUE,
    expires_at         TIMESTAMPTZ,
    -- the claim and the payout
    claimed_by         TEXT NOT NULL DEFAULT '',
    claimed_kiosk      TEXT NOT NULL DEFAULT '',
    claim_until        TIMESTAMPTZ,
    paid_by            TEXT NOT NULL DEFAULT '',
    paid_kiosk         TEXT NOT NULL DEFAULT '',
    post_office        TEXT NOT NULL DEFAULT '',
    paid_at            TIMESTAMPTZ,
    business_date      DATE,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX withdrawals_state_expires ON withdrawals (state, expires_at);
CREATE INDEX withdrawals_state_created ON withdrawals (state, created_at);
CREATE INDEX withdrawals_paid ON withdrawals (post_office, business_date) WHERE paid_at IS NOT NULL;

-- Store-and-forward outbox: one row per advice (0220) or reversal (0420),
-- written in the same transaction as the state change that needs it. Rows are
-- never deleted; 'done' and 'exception' are final.
CREATE TABLE outbox (
    id             UUID PRIMARY KEY,
    withdrawal_id  UUID NOT NULL REFERENCES withdrawals (id),
    seq            INT NOT NULL,                 -- order per withdrawal
    kind           TEXT NOT NULL CHECK (kind IN ('advice','reversal')),
    state          TEXT NOT NULL CHECK (state IN ('pending','done','exception')),
    attempts       INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_owner    TEXT NOT NULL DEFAULT '',
    lease_until    TIMESTAMPTZ,
    response_code  TEXT NOT NULL DEFAULT '',
    last_error     TEXT NOT NULL DEFAULT '',
    resolved_note  TEXT NOT NULL DEFAULT '',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    done_at        TIMESTAMPTZ,
    UNIQUE (withdrawal_id, seq)
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- +goose Down
DROP TABLE outbox;
DROP TABLE withdrawals;
DROP TABLE kiosks;
DROP TABLE post_offices;
DROP TABLE banks;

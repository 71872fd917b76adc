-- +goose Up
-- Owned by package ledger (ledger/): accounts, transfers and business days,
-- modelled on TigerBeetle's accounts and transfers.

-- Balances are kept in four columns, as TigerBeetle does. A till carries flag
-- 1 (credits must not exceed debits): it cannot pay out cash it does not
-- hold. The CHECK is the database's own copy of that rule: the ledger checks
-- it in memory before writing, so a violation here is a bug, not a refusal.
CREATE TABLE accounts (
    id              UUID PRIMARY KEY,
    code            TEXT NOT NULL UNIQUE,       -- e.g. 'bank:MB:receivable', 'po:LS-001:till'
    currency        TEXT NOT NULL,
    flags           BIGINT NOT NULL DEFAULT 0 CHECK (flags >= 0),
    debits_pending  BIGINT NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted   BIGINT NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending BIGINT NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted  BIGINT NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT accounts_credits_within_debits
        CHECK ((flags & 1) = 0 OR credits_pending + credits_posted <= debits_posted)
);

-- Append-only. A post_pending row carries the posted amount, a void_pending
-- row the voided (whole pending) amount; both name the pending transfer, and
-- the unique index makes "every hold resolves once" a database rule.
CREATE TABLE transfers (
    id                UUID PRIMARY KEY,          -- given by the caller: a retry is a no-op
    debit_account_id  UUID NOT NULL REFERENCES accounts (id),
    credit_account_id UUID NOT NULL REFERENCES accounts (id),
    amount            BIGINT NOT NULL CHECK (amount >= 0),
    currency          TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('single','pending','post_pending','void_pending')),
    pending_id        UUID REFERENCES transfers (id),
    withdrawal_id     UUID,                      -- no FK: withdrawals are the switch's table, not the ledger's
    business_date     DATE NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (debit_account_id <> credit_account_id),
    CHECK ((kind IN ('post_pending','void_pending')) = (pending_id IS NOT NULL))
);
CREATE UNIQUE INDEX transfers_resolves_once ON transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX transfers_withdrawal ON transfers (withdrawal_id) WHERE withdrawal_id IS NOT NULL;
CREATE INDEX transfers_business_date ON transfers (business_date);
CREATE INDEX transfers_debit ON transfers (debit_account_id);
CREATE INDEX transfers_credit ON transfers (credit_account_id);

-- One row per business day that has seen a posting or was closed. Closing
-- records how many transfers the day held, so that a check can prove that
-- nothing was posted into the day afterwards.
CREATE TABLE business_days (
    date            DATE PRIMARY KEY,
    closed          BOOLEAN NOT NULL DEFAULT false,
    closed_at       TIMESTAMPTZ,
    closed_by       TEXT NOT NULL DEFAULT '',
    transfer_count  BIGINT NOT NULL DEFAULT 0,   -- frozen at close
    amount_sum      BIGINT NOT NULL DEFAULT 0,   -- frozen at close
    CHECK (closed = (closed_at IS NOT NULL))
);

-- Bank settlements received (SettleBank): which business day a bank paid for.
-- The id is the id of the ledger transfer that booked it.
CREATE TABLE bank_settlements (
    id            UUID PRIMARY KEY,
    bank          TEXT NOT NULL,
    business_date DATE NOT NULL,                -- the day being settled
    amount        BIGINT NOT NULL CHECK (amount > 0),
    currency      TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX bank_settlements_day ON bank_settlements (business_date, bank);

-- +goose Down
DROP TABLE bank_settlements;
DROP TABLE business_days;
DROP TABLE transfers;
DROP TABLE accounts;

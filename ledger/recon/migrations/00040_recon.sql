-- +goose Up
-- Owned by package recon (ledger/recon/): imported bank settlement files,
-- their lines, and the reconciliation items finance resolves by hand.

-- A file is identified by bank, business date and the SHA-256 of its bytes:
-- importing the same file twice finds the first import.
CREATE TABLE recon_files (
    id            UUID PRIMARY KEY,
    bank          TEXT NOT NULL,
    business_date DATE NOT NULL,
    name          TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    line_count    INT NOT NULL,
    new_lines     INT NOT NULL,                 -- lines not already known from an earlier file
    imported_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (bank, business_date, sha256)
);

-- A line's id is derived from bank, date, the line's content and its
-- occurrence among identical lines of the file, so that a corrected file
-- that repeats earlier lines adds only the new ones, while a line repeated
-- inside one file is kept (and reported as a duplicate).
CREATE TABLE recon_lines (
    id               UUID PRIMARY KEY,
    bank             TEXT NOT NULL,
    business_date    DATE NOT NULL,
    file_id          UUID NOT NULL REFERENCES recon_files (id),
    line_no          INT NOT NULL,
    rrn              TEXT NOT NULL,
    stan             TEXT NOT NULL,
    approval_code    TEXT NOT NULL,
    amount           BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    transaction_time TIMESTAMPTZ NOT NULL,
    type             TEXT NOT NULL
);
CREATE INDEX recon_lines_day ON recon_lines (bank, business_date);

-- Items are computed by Report and kept so that a resolution sticks to
-- them; an item's id is derived from what it is about, so recomputing the
-- report finds the same item. Nothing is fixed automatically.
CREATE TABLE recon_items (
    id            UUID PRIMARY KEY,
    bank          TEXT NOT NULL,
    business_date DATE NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('matched','missing_at_bank','missing_at_switch',
                                   'amount_mismatch','field_mismatch','duplicate')),
    rrn           TEXT NOT NULL,
    stan          TEXT NOT NULL DEFAULT '',
    approval_code TEXT NOT NULL DEFAULT '',
    bank_amount   BIGINT NOT NULL DEFAULT 0,
    switch_amount BIGINT NOT NULL DEFAULT 0,
    withdrawal_id UUID,
    line_id       UUID,
    detail        TEXT NOT NULL DEFAULT '',
    resolved      BOOLEAN NOT NULL DEFAULT false,
    resolved_by   TEXT NOT NULL DEFAULT '',
    reason        TEXT NOT NULL DEFAULT '',
    resolved_at   TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX recon_items_day ON recon_items (bank, business_date);

-- +goose Down
DROP TABLE recon_items;
DROP TABLE recon_lines;
DROP TABLE recon_files;

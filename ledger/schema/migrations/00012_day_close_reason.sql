-- +goose Up
-- Owned by package ledger (ledger/day.go): why a day was closed while
-- something was still open, and what was open. A day closes only after
-- every bank's cut-off; anything still open then (unresolved recon rows,
-- outbox exceptions, claims in flight) is listed to the person closing,
-- who must give a reason to close anyway. Both are kept with the close
-- and shown with the day.
ALTER TABLE business_days
    ADD COLUMN close_reason  TEXT NOT NULL DEFAULT '',
    ADD COLUMN open_at_close TEXT[] NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE business_days DROP COLUMN open_at_close, DROP COLUMN close_reason;

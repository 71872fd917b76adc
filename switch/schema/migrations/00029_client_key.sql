-- +goose Up
-- Owned by package atmswitch. The bank client's idempotency key of the
-- create that made a withdrawal (scope and key), bound in the same statement
-- as the withdrawal's first row: a retry of an interrupted create finds its
-- withdrawal and continues from its state instead of sending a second 0100.
-- A failed request gives its key up (NULL), so that a retry can try again.
ALTER TABLE withdrawals ADD COLUMN client_key TEXT UNIQUE;

-- +goose Down
ALTER TABLE withdrawals DROP COLUMN client_key;

-- +goose Up
-- Owned by package atmswitch (issue 19). The idempotency key (scope/key)
-- of the confirm that paid a withdrawal, bound in the payout's own move,
-- as client_key binds a create's key to its withdrawal: a retry of that
-- confirm whose idempotency record was lost (records of the hot routes are
-- committed lazily, switch/idem "Durability") is answered with its receipt
-- from the row, and any other confirm still with code_already_used.
ALTER TABLE withdrawals ADD COLUMN confirm_key TEXT;

-- +goose Down
ALTER TABLE withdrawals DROP COLUMN confirm_key;

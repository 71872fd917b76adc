-- +goose Up
-- The per-account daily maximum sums an account's withdrawals of the last
-- 24 hours on every create. Without an index of its own that read went
-- through withdrawals_state_created and visited every live and dead row
-- version of the day (1.5 ms with a few thousand rows, growing with the
-- day); with this one it reads the account's own rows.
CREATE INDEX withdrawals_account_created ON withdrawals (bank_code, account_number, created_at);

-- +goose Down
DROP INDEX withdrawals_account_created;

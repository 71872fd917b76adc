-- +goose Up
-- Owned by package atmswitch (switch/limits.go). A bank's own limits on the
-- withdrawals of its accounts; NULL: the switch's configured default
-- (serve's -account-daily-max, switch.Config's amounts). Managed with
-- `softatm admin bank -amount-min -amount-max -amount-multiple
-- -account-daily-max`; a running switch picks a change up within seconds.
ALTER TABLE banks
    ADD COLUMN amount_min        BIGINT CHECK (amount_min > 0),
    ADD COLUMN amount_max        BIGINT CHECK (amount_max > 0),
    ADD COLUMN amount_multiple   BIGINT CHECK (amount_multiple > 0),
    ADD COLUMN account_daily_max BIGINT CHECK (account_daily_max >= 0), -- 0: no daily limit of the switch's for this bank
    ADD CONSTRAINT banks_amount_range CHECK (amount_max IS NULL OR amount_min IS NULL OR amount_max >= amount_min);

-- +goose Down
ALTER TABLE banks DROP CONSTRAINT banks_amount_range,
    DROP COLUMN account_daily_max, DROP COLUMN amount_multiple, DROP COLUMN amount_max, DROP COLUMN amount_min;

-- +goose Up
-- Numeric entry of a code is capped per code (issue 13): wrong phone digits
-- typed for a code are counted on its row, and at the cap (the switch's
-- NumericCodeFailMax) the code is blocked for numeric entry for good; its
-- QR code still pays. On the row rather than in Redis, so that a Redis
-- flush cannot hand a guesser a fresh set of tries, and so that the bank's
-- app can show why the numeric code no longer works.
ALTER TABLE withdrawals
    ADD COLUMN numeric_failures INT NOT NULL DEFAULT 0 CHECK (numeric_failures >= 0),
    ADD COLUMN numeric_blocked  BOOLEAN NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE withdrawals DROP COLUMN numeric_blocked, DROP COLUMN numeric_failures;

-- +goose Up
-- Owned by package atmswitch (deposit.go, lifecycle.go). Deposits (cash in)
-- are a second lifecycle of the same record: a row of withdrawals whose kind
-- is 'deposit'. Each kind is held to its own states, so a query naming
-- withdrawal states never counts a deposit. The columns a deposit uses are
-- the withdrawal's, read the other way: post_office, paid_by and paid_kiosk
-- are where and by whom the cash was taken in; approved_amount is field 4 of
-- the approving 0210; paid_at and business_date stay NULL (they mark cash
-- paid out), credited_at and credit_date mark cash taken in.
ALTER TABLE withdrawals ADD COLUMN kind TEXT NOT NULL DEFAULT 'withdrawal'
    CHECK (kind IN ('withdrawal','deposit'));
ALTER TABLE withdrawals DROP CONSTRAINT withdrawals_state_check;
ALTER TABLE withdrawals ADD CONSTRAINT withdrawals_state_check CHECK (
    (kind = 'withdrawal' AND state IN ('requested','reserved','declined','failed',
                                       'claimed','paid','completed','cancelled','expired'))
 OR (kind = 'deposit' AND state IN ('deposit_issued','at_counter','crediting','credited',
                                    'credit_declined','credit_failed','deposit_cancelled','deposit_expired')));
ALTER TABLE withdrawals ADD COLUMN credited_at TIMESTAMPTZ;
ALTER TABLE withdrawals ADD COLUMN credit_date DATE;
-- The ID number the teller typed for a deposit at or above the large-cash
-- threshold, sealed like the holder's name (purpose "id number").
ALTER TABLE withdrawals ADD COLUMN id_number_sealed TEXT NOT NULL DEFAULT '';
ALTER TABLE withdrawals ADD COLUMN large_cash BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX withdrawals_credited ON withdrawals (post_office, credit_date) WHERE credited_at IS NOT NULL;

-- The till's cash cap (the insured amount): a deposit that would push the
-- till over it is refused before the cash is counted. 0: no cap.
ALTER TABLE post_offices ADD COLUMN cash_cap BIGINT NOT NULL DEFAULT 0 CHECK (cash_cap >= 0);

-- +goose Down
ALTER TABLE post_offices DROP COLUMN cash_cap;
DROP INDEX withdrawals_credited;
ALTER TABLE withdrawals DROP COLUMN large_cash;
ALTER TABLE withdrawals DROP COLUMN id_number_sealed;
ALTER TABLE withdrawals DROP COLUMN credit_date;
ALTER TABLE withdrawals DROP COLUMN credited_at;
ALTER TABLE withdrawals DROP CONSTRAINT withdrawals_state_check;
ALTER TABLE withdrawals ADD CONSTRAINT withdrawals_state_check CHECK (state IN ('requested','reserved','declined','failed',
                                   'claimed','paid','completed','cancelled','expired'));
ALTER TABLE withdrawals DROP COLUMN kind;

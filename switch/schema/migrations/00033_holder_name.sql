-- +goose Up
-- Owned by package atmswitch. The account holder's full name as the bank
-- holds it, sealed (package seal, purpose "holder name", bound to the
-- withdrawal's id): the teller needs it to check the citizen's ID card, but
-- reading the table must not give a list of names. '' for withdrawals made
-- before this column, and until the bank approves the hold.
ALTER TABLE withdrawals ADD COLUMN holder_name_sealed TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE withdrawals DROP COLUMN holder_name_sealed;

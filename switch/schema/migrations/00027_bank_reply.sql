-- +goose Up
-- Owned by package atmswitch. What the bank approved, as its 0110 said it
-- (the reply is checked field by field against the 0100, so it equals the
-- amount asked for; a payout posts exactly this), and a reply that did not
-- match its request kept for finance as an outbox exception of its own
-- kind, never sent.
ALTER TABLE withdrawals ADD COLUMN approved_amount BIGINT NOT NULL DEFAULT 0 CHECK (approved_amount >= 0);
-- Codes approved before this column existed were approved for their amount
-- (the switch judged the 0110 on field 39 alone).
UPDATE withdrawals SET approved_amount = amount WHERE approval_code <> '';
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('advice','reversal','reply_mismatch'));

-- +goose Down
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('advice','reversal'));
ALTER TABLE withdrawals DROP COLUMN approved_amount;

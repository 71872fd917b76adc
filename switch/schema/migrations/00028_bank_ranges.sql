-- +goose Up
-- Owned by package atmswitch. The account ranges a bank owns: prefixes of
-- account numbers or card numbers (BINs). A withdrawal belongs to the bank
-- whose longest prefix holds its account, and a bank's client may act only
-- for its own bank's accounts. A bank with no ranges owns no account: after
-- this migration an operator sets them (softatm admin bank -ranges ...)
-- before its app can create codes again.
ALTER TABLE banks ADD COLUMN account_ranges TEXT[] NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE banks DROP COLUMN account_ranges;

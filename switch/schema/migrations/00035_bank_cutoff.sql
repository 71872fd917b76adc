-- +goose Up
-- Owned by the business-day code (ledger.Cutoff; read by switch/cutoff.go
-- and recon's close): each bank's cut-off, the last second of a calendar
-- day (Asia/Ho_Chi_Minh) that still belongs to that business day. A
-- transaction later than it is the next day's, in the switch's books as in
-- the bank's settlement file. Set with `softatm admin bank -code B
-- -cutoff HH:MM[:SS]`; a running switch picks a change up within seconds.
ALTER TABLE banks ADD COLUMN cutoff TIME(0) NOT NULL DEFAULT '23:59:59';

-- The business date the bank named for the payout's capture (ISO 8583
-- field 15 of its 0230), when it sent one. business_date is the switch's
-- (from the bank's cut-off at payout); reconciliation shows a difference
-- between the two as date_differs.
ALTER TABLE withdrawals ADD COLUMN bank_business_date DATE;

-- +goose Down
ALTER TABLE withdrawals DROP COLUMN bank_business_date;
ALTER TABLE banks DROP COLUMN cutoff;

-- +goose Up
-- Owned by package recon: the categories finance reads (amount_mismatch is
-- now amount_differs; date_differs is a line the other side has under
-- another business date, a cut-off difference), and a file's checksum
-- looked up across banks and days: the same bytes are one import.
UPDATE recon_items SET status = 'amount_differs' WHERE status = 'amount_mismatch';
ALTER TABLE recon_items DROP CONSTRAINT recon_items_status_check;
ALTER TABLE recon_items ADD CONSTRAINT recon_items_status_check
    CHECK (status IN ('matched','missing_at_bank','missing_at_switch','amount_differs','field_mismatch','date_differs','duplicate'));
CREATE INDEX recon_files_sha256 ON recon_files (sha256);

-- +goose Down
DROP INDEX recon_files_sha256;
ALTER TABLE recon_items DROP CONSTRAINT recon_items_status_check;
UPDATE recon_items SET status = 'amount_mismatch' WHERE status = 'amount_differs';
DELETE FROM recon_items WHERE status = 'date_differs';
ALTER TABLE recon_items ADD CONSTRAINT recon_items_status_check
    CHECK (status IN ('matched','missing_at_bank','missing_at_switch','amount_mismatch','field_mismatch','duplicate'));

-- +goose Up
-- Owned by package ledger: the teller's end-of-day till counts (Ledger.Count).
-- One count per post office and business day: the (post_office,
-- business_date) key is what makes "a till cannot be closed twice" a
-- database rule. expected is the till's posted balance the count was
-- compared with; a difference was booked, in the same transaction, as the
-- transfer between the till and po:<P>:over_short whose id is derived from
-- this row's id (TillCountTransferID).
CREATE TABLE till_counts (
    id            UUID PRIMARY KEY,
    post_office   TEXT NOT NULL,
    business_date DATE NOT NULL,
    expected      BIGINT NOT NULL,
    counted       BIGINT NOT NULL CHECK (counted >= 0),
    currency      TEXT NOT NULL,
    counted_by    TEXT NOT NULL,
    counted_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (post_office, business_date)
);
CREATE INDEX till_counts_day ON till_counts (business_date);

-- +goose Down
DROP TABLE till_counts;

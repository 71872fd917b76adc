-- +goose Up
-- Owned by package atmswitch (issue 19: fewer writes per withdrawal). A
-- withdrawal's row is updated four times (reserve, claim, paid, completed),
-- and every update wrote a new entry into every index of the table: none
-- was HOT (heap-only), because state, which every move changes, was indexed
-- by the sweeper's (state, expires_at) and (state, created_at). (PostgreSQL
-- counts a partial index's predicate columns as indexed too, so partial
-- indexes on state would not have helped.)
--
-- due_at replaces both for the sweeper: it is the time the sweeper's
-- deadline for the row's state runs from, while the row is in a state the
-- sweeper watches, and NULL in every other state:
--
--   requested                  created_at   (failed RequestedMax later)
--   reserved, claimed          expires_at   (expired; a claim lapses by claim_until)
--   deposit_issued, at_counter expires_at
--   crediting                  updated_at   (the teller's confirm; failed CreditingMax later)
--
-- These are exactly the columns the sweeper's queries read before (see
-- dueSQL in store_pg.go), so it moves the same rows as before. The column
-- is generated from the row itself, so no move can forget it: set while
-- the row is live, NULL once it leaves the watched states (paid is not
-- watched: the outbox completes it). Its value does not change on a claim
-- (reserved -> claimed keeps expires_at), a lapse or release, or a
-- completion (NULL -> NULL), so once no indexed column changes those
-- updates are HOT. The index holds only the live rows (WHERE due_at IS
-- NOT NULL): a finished row leaves it and never adds an entry again.
ALTER TABLE withdrawals ADD COLUMN due_at TIMESTAMPTZ GENERATED ALWAYS AS (CASE
    WHEN state = 'requested' THEN created_at
    WHEN state IN ('reserved', 'claimed', 'deposit_issued', 'at_counter') THEN expires_at
    WHEN state = 'crediting' THEN updated_at
END) STORED;
CREATE INDEX withdrawals_due ON withdrawals (due_at) WHERE due_at IS NOT NULL;
-- The state-by-state gauge counts the finished withdrawals created in the
-- last 24 hours (CountByState): it read (state, created_at). created_at
-- never changes after the insert, so its index costs no HOT update.
CREATE INDEX withdrawals_created ON withdrawals (created_at);
DROP INDEX withdrawals_state_expires;
DROP INDEX withdrawals_state_created;
-- Room on each page for an updated row's new version, as 00039 gave the
-- outbox and the idempotency keys: with the default (100) a HOT update
-- seldom finds room on its page. Applies to pages written from now on.
ALTER TABLE withdrawals SET (fillfactor = 70);

-- +goose Down
ALTER TABLE withdrawals RESET (fillfactor);
CREATE INDEX withdrawals_state_created ON withdrawals (state, created_at);
CREATE INDEX withdrawals_state_expires ON withdrawals (state, expires_at);
DROP INDEX withdrawals_created;
DROP INDEX withdrawals_due;
ALTER TABLE withdrawals DROP COLUMN due_at;

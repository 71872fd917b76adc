-- +goose Up
-- Owned by package atmswitch (issue 19, the write path's cost). Room on
-- each page for an updated row's new version, so that updates that change
-- no indexed column stay HOT (heap-only: no new index entries, no index
-- bloat): the idempotency record's finish, an outbox message's or a
-- callback's lease. With the default (100) only about a third of them were
-- (pg_stat_user_tables.n_tup_hot_upd in a 20 s hot load run: idempotency_keys
-- 3092 of 8915, outbox 2651 of 5886). Applies to pages written from now on.
-- (withdrawals cannot have HOT state changes: state is indexed, by the
-- sweeper's (state, ...) indexes.)
ALTER TABLE idempotency_keys SET (fillfactor = 70);
ALTER TABLE outbox SET (fillfactor = 70);
ALTER TABLE callbacks SET (fillfactor = 70);

-- +goose Down
ALTER TABLE callbacks RESET (fillfactor);
ALTER TABLE outbox RESET (fillfactor);
ALTER TABLE idempotency_keys RESET (fillfactor);

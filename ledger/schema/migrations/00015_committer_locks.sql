-- +goose Up
-- Owned by package ledger: the commit lock (ledger/lease.go). One row per
-- lock name; a committer locks its row (SELECT ... FOR UPDATE) for the
-- length of a batch, so that the committers of several switch instances on
-- one database take turns instead of colliding. The row holds no state: the
-- lock is the row lock, which ends with the holder's session.
CREATE TABLE committer_locks (
    name TEXT PRIMARY KEY
);

-- +goose Down
DROP TABLE committer_locks;

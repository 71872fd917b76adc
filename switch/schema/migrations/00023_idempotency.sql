-- +goose Up
-- Owned by package idem (switch/idem/): HTTP idempotency keys. The row is the
-- record of a state-changing request: while it is 'running' a second request
-- with the same key is refused (409); once 'done' the stored response is
-- replayed. It lives in the database, not only in Redis, so that a key keeps
-- its meaning across a Redis flush and a restart of every switch instance.

CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,                  -- the caller: bank client id or staff user id
    key          TEXT NOT NULL,                  -- the Idempotency-Key header
    request_hash BYTEA NOT NULL,                 -- SHA-256 of method, path and body
    state        TEXT NOT NULL CHECK (state IN ('running','done')),
    owner        UUID NOT NULL,                  -- the request holding the lease; a taken-over request may not finish the row
    status       INT NOT NULL DEFAULT 0,
    content_type TEXT NOT NULL DEFAULT '',
    body         BYTEA,
    lease_until  TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;

-- +goose Up
-- Owned by package auth (switch/auth/): the credentials of bank clients (the
-- banks' backends calling the API) and of staff (tellers, finance, admins),
-- staff sessions and the failed-login record that caps password guessing.
-- No secret is stored in clear: secrets and passwords are bcrypt hashes, and a
-- session row is keyed by the SHA-256 of its token, so a copy of this
-- database does not let anyone log in.

CREATE TABLE bank_clients (
    id          TEXT PRIMARY KEY,                -- the HTTP Basic user name; never contains ':'
    bank_code   TEXT NOT NULL REFERENCES banks (code),
    secret_hash TEXT NOT NULL,                   -- bcrypt
    disabled    BOOL NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,          -- stored lower-case
    password_hash TEXT NOT NULL,                 -- bcrypt
    role          TEXT NOT NULL CHECK (role IN ('teller','finance','admin')),
    post_office   TEXT REFERENCES post_offices (code),
    kiosk         TEXT REFERENCES kiosks (id),
    disabled      BOOL NOT NULL DEFAULT false,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- a teller always works at one kiosk of one post office
    CHECK (role <> 'teller' OR (post_office IS NOT NULL AND kiosk IS NOT NULL))
);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,                 -- hex SHA-256 of the token; the token itself is never stored
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    kiosk      TEXT NOT NULL DEFAULT '',
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- One row per login attempt that has not (yet) succeeded, counted per user
-- name over a sliding window. Unknown user names are counted too, so the
-- lock-out says nothing about which names exist.
CREATE TABLE login_failures (
    id        UUID PRIMARY KEY,
    username  TEXT NOT NULL,
    failed_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX login_failures_user_time ON login_failures (username, failed_at);
CREATE INDEX login_failures_time ON login_failures (failed_at);

-- +goose Down
DROP TABLE login_failures;
DROP TABLE sessions;
DROP TABLE users;
DROP TABLE bank_clients;

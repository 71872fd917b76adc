-- +goose Up
-- Owned by package auth (switch/auth/).
--
-- Bank-client secrets are random keys, so they are now stored as a keyed
-- hash ('hmac-sha256:' || hex HMAC-SHA-256 of id and secret, keyed from the
-- server secret) instead of bcrypt. Existing bcrypt rows stay as they are and
-- are rewritten by the switch on their next successful use; no data change
-- here.
COMMENT ON COLUMN bank_clients.secret_hash IS
    'hmac-sha256:<hex> keyed from the server secret; a bcrypt hash until the client''s next successful call';

-- Failed logins are now counted per (user name, source address), so that
-- guessing from one address slows that address only and nobody can lock a
-- user out from elsewhere. Rows from before have no address ('').
ALTER TABLE login_failures ADD COLUMN source TEXT NOT NULL DEFAULT '';
CREATE INDEX login_failures_user_source_time ON login_failures (username, source, failed_at);
DROP INDEX login_failures_user_time;

-- +goose Down
-- Keyed client hashes cannot be turned back into bcrypt: after going down,
-- clients created or used since this migration must be created again.
CREATE INDEX login_failures_user_time ON login_failures (username, failed_at);
DROP INDEX login_failures_user_source_time;
ALTER TABLE login_failures DROP COLUMN source;
COMMENT ON COLUMN bank_clients.secret_hash IS NULL;

-- +goose Up
-- Owned by package atmswitch (switch/links.go). A bank's own TLS on its own
-- link (link_addr): PEM files on the switch's host, never the keys in the
-- database. All empty: serve's -bank-tls-* settings, which every link
-- without its own uses. Any set: that link speaks TLS with these and never
-- plain TCP. Managed with `softatm admin bank -tls-ca -tls-cert -tls-key
-- -tls-server-name`; a running switch reconnects the link within seconds.
ALTER TABLE banks
    ADD COLUMN link_tls_ca          TEXT NOT NULL DEFAULT '',
    ADD COLUMN link_tls_cert        TEXT NOT NULL DEFAULT '',
    ADD COLUMN link_tls_key         TEXT NOT NULL DEFAULT '',
    ADD COLUMN link_tls_server_name TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE banks DROP COLUMN link_tls_server_name, DROP COLUMN link_tls_key,
    DROP COLUMN link_tls_cert, DROP COLUMN link_tls_ca;

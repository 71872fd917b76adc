-- +goose Up
-- Owned by package code (switch/code): private seeds sealed with a
-- key-encryption key (KEK) kept outside the database (`softatm serve
-- -key-file`). sealed_seed is version byte 1, the 8-byte fingerprint of the
-- KEK that sealed it, a 12-byte nonce and the AES-256-GCM sealed 32-byte
-- seed (48 bytes with its tag), bound to the key id. A row holds its seed in
-- clear (private_seed, written by a switch without a KEK) or sealed, never
-- both; `softatm serve` with a KEK seals the clear ones when it starts.

ALTER TABLE signing_keys ADD COLUMN sealed_seed BYTEA
    CHECK (sealed_seed IS NULL OR length(sealed_seed) = 69);
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_seed_once
    CHECK (private_seed IS NULL OR sealed_seed IS NULL);

-- +goose Down
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_seed_once;
ALTER TABLE signing_keys DROP COLUMN sealed_seed;

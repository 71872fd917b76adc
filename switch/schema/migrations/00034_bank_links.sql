-- +goose Up
-- Owned by package atmswitch (switch/links.go). Each bank's own ISO 8583
-- link: its address and standby, its request time-out and echo interval
-- (NULL: serve's defaults, -auth-timeout and 30 s), and its state. A bank
-- with no link_addr is served on serve's -bank link (one link shared by
-- every such bank: the single-bank setup). A suspended bank gets no new
-- withdrawals (creates are refused with bank_unavailable) but its link stays
-- up, so its queued advices and reversals are still delivered. Managed with
-- `softatm admin bank -link -standby -link-timeout -echo-interval -state`; a
-- running switch picks a change up within seconds (atmswitch.Links).
ALTER TABLE banks
    ADD COLUMN link_addr       TEXT NOT NULL DEFAULT '',
    ADD COLUMN link_standby    TEXT NOT NULL DEFAULT '',
    ADD COLUMN link_timeout_ms INT CHECK (link_timeout_ms > 0),
    ADD COLUMN link_echo_ms    INT CHECK (link_echo_ms > 0),
    ADD COLUMN state           TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'suspended'));

-- +goose Down
ALTER TABLE banks DROP COLUMN state, DROP COLUMN link_echo_ms, DROP COLUMN link_timeout_ms,
    DROP COLUMN link_standby, DROP COLUMN link_addr;

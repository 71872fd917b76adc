-- +goose Up
-- Owned by package atmswitch (switch/callbacks.go). A bank client may
-- register a callback URL: the switch then POSTs every state change of the
-- withdrawals that client created, signed with the client's callback
-- secret (sealed with the switch's secret, bound to the client id: a copy
-- of this table does not let anyone forge a callback).
ALTER TABLE bank_clients
    ADD COLUMN callback_url    TEXT NOT NULL DEFAULT '',   -- '' : no callbacks
    ADD COLUMN callback_secret TEXT NOT NULL DEFAULT '';   -- sealed (seal.Box, purpose "callback secret")

-- The bank client whose create made the withdrawal: its callbacks go there.
-- Rows from before have none ('') and are never called back.
ALTER TABLE withdrawals ADD COLUMN client_id TEXT NOT NULL DEFAULT '';

-- The durable callback queue: one row per state change of a withdrawal
-- whose client has a callback URL, inserted by the very statement that
-- changes the state (so a change and its callback commit together, or
-- neither does). Rows are never deleted; 'done' and 'exception' are final
-- (an exception can be requeued by finance). The row's id is the event id
-- the receiver dedupes on.
CREATE TABLE callbacks (
    id              UUID PRIMARY KEY,
    withdrawal_id   UUID NOT NULL REFERENCES withdrawals (id),
    client_id       TEXT NOT NULL REFERENCES bank_clients (id),
    seq             INT NOT NULL,                  -- order per withdrawal
    event           TEXT NOT NULL,                 -- the lifecycle event, or 'reversed' (the bank acknowledged the 0420)
    state           TEXT NOT NULL,                 -- the withdrawal's state right after it
    occurred_at     TIMESTAMPTZ NOT NULL,
    delivery        TEXT NOT NULL DEFAULT 'pending' CHECK (delivery IN ('pending','done','exception')),
    attempts        INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_owner     TEXT NOT NULL DEFAULT '',
    lease_until     TIMESTAMPTZ,
    last_status     INT NOT NULL DEFAULT 0,        -- the receiver's last HTTP status (0: no answer)
    last_error      TEXT NOT NULL DEFAULT '',
    resolved_note   TEXT NOT NULL DEFAULT '',
    delivered_at    TIMESTAMPTZ,
    UNIQUE (withdrawal_id, seq)
);
CREATE INDEX callbacks_due ON callbacks (delivery, next_attempt_at);

-- +goose Down
DROP TABLE callbacks;
ALTER TABLE withdrawals DROP COLUMN client_id;
ALTER TABLE bank_clients DROP COLUMN callback_secret, DROP COLUMN callback_url;

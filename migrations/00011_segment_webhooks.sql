-- Outbound webhooks on segment enter/exit: the subscriptions, and the outbox
-- of transitions waiting to be posted. The outbox is filled in the
-- transaction that records the transition (pkg/segment record), so a
-- transition is queued exactly when it is committed; the dispatcher of the
-- worker process drains it (pkg/segment Dispatcher).

-- +goose Up
CREATE TABLE segment_webhooks (
    workspace_id      uuid NOT NULL,
    id                uuid NOT NULL,
    segment_id        uuid NOT NULL,
    url               text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    -- Which transitions are sent: entered, exited, or both.
    kinds             text[] NOT NULL CHECK (cardinality(kinds) > 0 AND kinds <@ '{entered,exited}'),
    -- AES-256-GCM of the signing secret (PARCOURS_SECRET_KEY); shown once at creation, never returned.
    secret_ciphertext bytea NOT NULL,
    -- Consecutive failed attempts; 0 after a delivery. The API derives the status from it.
    failures          int NOT NULL DEFAULT 0,
    last_error        text,
    last_attempt_at   timestamptz,
    last_delivered_at timestamptz,
    -- When the dispatcher may next post: the retry time after a failure, or
    -- the end of the lease of a dispatcher that is posting a batch.
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    -- The dispatcher attempt that holds the lease; its outcome is recorded
    -- only while it still holds it.
    claim             uuid,
    delivered         bigint NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, segment_id) REFERENCES segments (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX segment_webhooks_segment_idx ON segment_webhooks (workspace_id, segment_id);
CREATE INDEX segment_webhooks_due_idx ON segment_webhooks (next_attempt_at);

-- One row per (subscription, transition) not delivered yet; deleted once the
-- receiver answered 2xx. Kept, however long the receiver is down.
CREATE TABLE segment_webhook_outbox (
    workspace_id uuid NOT NULL,
    webhook_id   uuid NOT NULL,
    event_id     bigint NOT NULL,
    PRIMARY KEY (workspace_id, webhook_id, event_id),
    FOREIGN KEY (workspace_id, webhook_id) REFERENCES segment_webhooks (workspace_id, id) ON DELETE CASCADE,
    -- An erased profile's transitions go with it.
    FOREIGN KEY (workspace_id, event_id) REFERENCES segment_events (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX segment_webhook_outbox_event_idx ON segment_webhook_outbox (workspace_id, event_id);

-- +goose Down
DROP TABLE segment_webhook_outbox;
DROP TABLE segment_webhooks;

-- Delivery events: what SendGrid's signed Event Webhook says happened to the
-- messages of the ledger (delivered, opened, clicked, bounced, ...), stored
-- once per event, and the first occurrence of each outcome on the delivery.

-- +goose Up
CREATE TABLE delivery_events (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id            bigint GENERATED ALWAYS AS IDENTITY,
    -- The ledger row, from the parcours_delivery_id custom argument (NULL when
    -- the event names no delivery of this workspace).
    delivery_id   uuid,
    sg_event_id   text,
    sg_message_id text,
    -- "sg:<sg_event_id>", or "h:<sha256 of event, sg_message_id, timestamp,
    -- email, url>" when SendGrid sent no sg_event_id: the same event posted
    -- again is stored once.
    dedupe_key    text NOT NULL,
    event         text NOT NULL CHECK (length(event) BETWEEN 1 AND 64),
    -- An open by a mail client's privacy proxy (Apple Mail), not a person.
    machine_open  boolean NOT NULL DEFAULT false,
    url           text,
    reason        text,
    at            timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    -- SHA-256 of the normalised address, as on deliveries and suppressions.
    address_hash  bytea,
    -- The event as SendGrid sent it, without the address, IP and user agent
    -- (personal data that erasure could not find here).
    raw           jsonb NOT NULL,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, dedupe_key)
);
CREATE INDEX delivery_events_delivery_idx ON delivery_events (workspace_id, delivery_id, at);

-- First occurrence of each outcome, for reports and "resend to non-openers".
ALTER TABLE deliveries
    ADD COLUMN delivered_at      timestamptz,
    ADD COLUMN opened_at         timestamptz,
    ADD COLUMN machine_opened_at timestamptz,
    ADD COLUMN clicked_at        timestamptz,
    ADD COLUMN bounced_at        timestamptz,
    ADD COLUMN dropped_at        timestamptz,
    ADD COLUMN spam_reported_at  timestamptz,
    ADD COLUMN unsubscribed_at   timestamptz;

-- +goose Down
ALTER TABLE deliveries
    DROP COLUMN unsubscribed_at,
    DROP COLUMN spam_reported_at,
    DROP COLUMN dropped_at,
    DROP COLUMN bounced_at,
    DROP COLUMN clicked_at,
    DROP COLUMN machine_opened_at,
    DROP COLUMN opened_at,
    DROP COLUMN delivered_at;
DROP TABLE delivery_events;

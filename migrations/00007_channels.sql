-- Channels: per-workspace settings (secrets encrypted), Liquid templates, the
-- delivery ledger (one row per business key: exactly one send per step),
-- consent per channel and purpose, and suppressed addresses.

-- +goose Up
CREATE TABLE channel_settings (
    workspace_id      uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    channel           text NOT NULL CHECK (channel IN ('email', 'webhook')),
    -- Everything but the secret: from address, base URL, webhook URL, ...
    config            jsonb NOT NULL DEFAULT '{}',
    -- AES-256-GCM of the API key or signing secret (PARCOURS_SECRET_KEY); never returned by the API.
    secret_ciphertext bytea,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, channel)
);

CREATE TABLE templates (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    slug         text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    channel      text NOT NULL CHECK (channel IN ('email', 'webhook')),
    subject      text NOT NULL DEFAULT '',
    preheader    text NOT NULL DEFAULT '',
    html         text NOT NULL DEFAULT '',
    text         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, slug)
);

-- The delivery ledger: a send claims its business key before calling the
-- provider, so retries and duplicate activity attempts never send twice.
CREATE TABLE deliveries (
    workspace_id        uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id                  uuid NOT NULL DEFAULT gen_random_uuid(),
    business_key        text NOT NULL CHECK (length(business_key) BETWEEN 1 AND 500),
    template_id         uuid,
    profile_id          uuid,
    channel             text NOT NULL CHECK (channel IN ('email', 'webhook')),
    status              text NOT NULL CHECK (status IN ('claimed', 'sent', 'failed', 'skipped', 'unknown')),
    reason              text NOT NULL DEFAULT '',
    provider_message_id text NOT NULL DEFAULT '',
    attempts            int NOT NULL DEFAULT 1,
    -- True while an attempt may have handed the message to the provider: the
    -- window a crash leaves open (docs/delivery.md).
    in_flight           boolean NOT NULL DEFAULT false,
    class               text NOT NULL CHECK (class IN ('marketing', 'transactional')),
    journey_id          text,
    node_id             text,
    -- SHA-256 of the normalised address, for one-click unsubscribe suppressions.
    address_hash        bytea,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, business_key)
);
CREATE INDEX deliveries_profile_idx ON deliveries (workspace_id, profile_id, created_at DESC);

-- Consent per profile, channel and purpose. No row means subscribed (opt-out model).
CREATE TABLE subscriptions (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    profile_id   uuid NOT NULL,
    channel      text NOT NULL CHECK (channel IN ('email', 'webhook')),
    purpose      text NOT NULL CHECK (purpose IN ('marketing', 'transactional')),
    status       text NOT NULL CHECK (status IN ('subscribed', 'unsubscribed')),
    source       text NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, profile_id, channel, purpose)
);

-- Addresses never to send to, kept as hashes.
CREATE TABLE suppressions (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    channel      text NOT NULL CHECK (channel IN ('email', 'webhook')),
    address_hash bytea NOT NULL,
    reason       text NOT NULL CHECK (reason IN ('bounce', 'spamreport', 'unsubscribe', 'manual')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, channel, address_hash, reason)
);

-- +goose Down
DROP TABLE suppressions;
DROP TABLE subscriptions;
DROP TABLE deliveries;
DROP TABLE templates;
DROP TABLE channel_settings;

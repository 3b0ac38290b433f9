-- Workspaces (tenants) and their API keys.
-- Every table that holds customer data carries workspace_id and every query filters by it.

-- +goose Up
CREATE TABLE workspaces (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored as a SHA-256 of the secret: the secret is high-entropy
-- random, so a slow KDF adds nothing but latency on the ingestion hot path.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- write: ingestion only, safe to ship in a web page; admin: management and profile reads.
    scope        text NOT NULL CHECK (scope IN ('admin', 'write')),
    -- The named source a write key feeds (web, app, store, call_centre, crm, ...): the audit trail
    -- records it on every event.
    source       text CHECK (source ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    prefix       text NOT NULL,
    secret_hash  bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CHECK (scope = 'admin' OR source IS NOT NULL)
);
CREATE INDEX api_keys_workspace_idx ON api_keys (workspace_id);

-- +goose Down
DROP TABLE api_keys;
DROP TABLE workspaces;

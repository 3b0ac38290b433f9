-- Broadcasts: one template sent to a segment's members, once (now or at a
-- time) or on a recurring schedule. Each occurrence snapshots its audience
-- into broadcast_recipients, then sends in batches through the delivery
-- ledger (business key broadcast/<id>/<occurrence>/<profile>).

-- +goose Up
CREATE TABLE broadcasts (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id            uuid NOT NULL DEFAULT gen_random_uuid(),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- The segment is resolved by slug when the broadcast is created; no
    -- foreign key, so that deleting a segment does not delete the history of
    -- what was sent to it (a later occurrence fails with a reason instead).
    segment_id    uuid NOT NULL,
    segment_slug  text NOT NULL,
    -- The template is read by slug when each occurrence sends.
    template_slug text NOT NULL,
    channel       text NOT NULL CHECK (channel IN ('email')),
    class         text NOT NULL CHECK (class IN ('marketing', 'transactional')),
    -- One-off at a time (send_at), recurring (cron in timezone), or neither: at once.
    send_at       timestamptz,
    cron          text,
    timezone      text,
    status        text NOT NULL CHECK (status IN ('scheduled', 'running', 'sent', 'active', 'cancelled', 'failed')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    cancelled_at  timestamptz,
    PRIMARY KEY (workspace_id, id),
    CHECK (send_at IS NULL OR cron IS NULL)
);
CREATE INDEX broadcasts_created_idx ON broadcasts (workspace_id, created_at DESC);

-- One row per send of a broadcast: "once" for one-off broadcasts, the
-- scheduled time for recurring ones.
CREATE TABLE broadcast_occurrences (
    workspace_id uuid NOT NULL,
    broadcast_id uuid NOT NULL,
    occurrence   text NOT NULL CHECK (length(occurrence) BETWEEN 1 AND 64),
    workflow_id  text NOT NULL,
    run_id       text NOT NULL,
    status       text NOT NULL CHECK (status IN ('running', 'sent', 'cancelled', 'failed')),
    reason       text NOT NULL DEFAULT '',
    -- The audience is the segment's members at this time.
    as_of        timestamptz NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    PRIMARY KEY (workspace_id, broadcast_id, occurrence),
    FOREIGN KEY (workspace_id, broadcast_id) REFERENCES broadcasts (workspace_id, id) ON DELETE CASCADE
);

-- The audience snapshot: ids only. seq numbers the recipients from 0 so that
-- batch n is seq in [n*size, (n+1)*size).
CREATE TABLE broadcast_recipients (
    workspace_id uuid NOT NULL,
    broadcast_id uuid NOT NULL,
    occurrence   text NOT NULL,
    seq          int NOT NULL,
    -- NULL once the person is erased.
    profile_id   uuid,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'skipped', 'failed', 'unknown')),
    reason       text NOT NULL DEFAULT '',
    delivery_id  uuid,
    PRIMARY KEY (workspace_id, broadcast_id, occurrence, seq),
    FOREIGN KEY (workspace_id, broadcast_id, occurrence) REFERENCES broadcast_occurrences (workspace_id, broadcast_id, occurrence) ON DELETE CASCADE
-- Each row is updated once with its outcome: room on the page keeps that
-- update off the indexes (a HOT update).
) WITH (fillfactor = 80);
CREATE UNIQUE INDEX broadcast_recipients_profile_idx ON broadcast_recipients (workspace_id, broadcast_id, occurrence, profile_id);

-- Which recipient owns an address within an occurrence: two profiles that
-- share an address get one message (SendGrid also refuses a request naming
-- an address twice).
CREATE TABLE broadcast_addresses (
    workspace_id uuid NOT NULL,
    broadcast_id uuid NOT NULL,
    occurrence   text NOT NULL,
    address_hash bytea NOT NULL,
    profile_id   uuid NOT NULL,
    PRIMARY KEY (workspace_id, broadcast_id, occurrence, address_hash),
    FOREIGN KEY (workspace_id, broadcast_id, occurrence) REFERENCES broadcast_occurrences (workspace_id, broadcast_id, occurrence) ON DELETE CASCADE
);

-- +goose Down
DROP TABLE broadcast_addresses;
DROP TABLE broadcast_recipients;
DROP TABLE broadcast_occurrences;
DROP TABLE broadcasts;

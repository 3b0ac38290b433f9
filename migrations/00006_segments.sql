-- Segments, their current members, and the enter/exit history.

-- +goose Up
CREATE TABLE segments (
    workspace_id     uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id               uuid NOT NULL DEFAULT gen_random_uuid(),
    slug             text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    rule             text NOT NULL,
    -- What the rule depends on, read from its AST at save time (pkg/segment.Deps).
    deps             jsonb NOT NULL,
    size             int NOT NULL DEFAULT 0,
    last_computed_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, slug)
);

-- One row per (segment, profile) ever in it: exited_at is NULL while the profile is a member.
CREATE TABLE segment_memberships (
    workspace_id uuid NOT NULL,
    segment_id   uuid NOT NULL,
    profile_id   uuid NOT NULL,
    entered_at   timestamptz NOT NULL,
    exited_at    timestamptz,
    PRIMARY KEY (workspace_id, segment_id, profile_id),
    FOREIGN KEY (workspace_id, segment_id) REFERENCES segments (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX segment_members_idx ON segment_memberships (workspace_id, segment_id, profile_id) WHERE exited_at IS NULL;
CREATE INDEX segment_memberships_profile_idx ON segment_memberships (workspace_id, profile_id);

-- Every transition, exactly once: what journeys trigger on and timelines show.
CREATE TABLE segment_events (
    workspace_id uuid NOT NULL,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    segment_id   uuid NOT NULL,
    profile_id   uuid NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('entered', 'exited')),
    at           timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, segment_id) REFERENCES segments (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX segment_events_profile_idx ON segment_events (workspace_id, profile_id, at DESC);

-- Size over time, one row per recompute.
CREATE TABLE segment_sizes (
    workspace_id uuid NOT NULL,
    segment_id   uuid NOT NULL,
    at           timestamptz NOT NULL,
    size         int NOT NULL,
    PRIMARY KEY (workspace_id, segment_id, at),
    FOREIGN KEY (workspace_id, segment_id) REFERENCES segments (workspace_id, id) ON DELETE CASCADE
);

-- +goose Down
DROP TABLE segment_sizes;
DROP TABLE segment_events;
DROP TABLE segment_memberships;
DROP TABLE segments;

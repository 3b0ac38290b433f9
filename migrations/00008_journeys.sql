-- Journeys: definitions with immutable published versions, and one row per run.

-- +goose Up
CREATE TABLE journeys (
    workspace_id      uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    name              text NOT NULL,
    -- draft: never published; live: new entries allowed; paused: no new entries.
    status            text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'live', 'paused')),
    draft             jsonb NOT NULL,
    published_version int,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id)
);

CREATE TABLE journey_versions (
    workspace_id uuid NOT NULL,
    journey_id   uuid NOT NULL,
    version      int NOT NULL,
    definition   jsonb NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, journey_id, version),
    FOREIGN KEY (workspace_id, journey_id) REFERENCES journeys (workspace_id, id) ON DELETE CASCADE
);

CREATE TABLE journey_runs (
    workspace_id uuid NOT NULL,
    workflow_id  text NOT NULL,
    run_id       text NOT NULL,
    journey_id   uuid NOT NULL,
    version      int NOT NULL,
    profile_id   uuid NOT NULL,
    entered_at   timestamptz NOT NULL DEFAULT now(),
    node         text,
    ended_at     timestamptz,
    -- completed, exited:<event>, goal, removed, erased, failed
    end_reason   text,
    path         text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (workspace_id, workflow_id, run_id),
    FOREIGN KEY (workspace_id, journey_id) REFERENCES journeys (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX journey_runs_profile_idx ON journey_runs (workspace_id, profile_id) WHERE ended_at IS NULL;
CREATE INDEX journey_runs_journey_idx ON journey_runs (workspace_id, journey_id, node);

-- +goose Down
DROP TABLE journey_runs;
DROP TABLE journey_versions;
DROP TABLE journeys;

-- +goose Up
-- A run that reached its goal: the goal record, and the last message the
-- run sent before it (the message the conversion is attributed to).
CREATE TABLE journey_conversions (
    workspace_id uuid NOT NULL,
    workflow_id  text NOT NULL,
    run_id       text NOT NULL,
    journey_id   uuid NOT NULL,
    version      int NOT NULL,
    profile_id   uuid NOT NULL,
    event_id     bigint,
    delivery_id  uuid,
    node_id      text,
    revenue      numeric,
    at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, workflow_id, run_id),
    FOREIGN KEY (workspace_id, journey_id) REFERENCES journeys (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX journey_conversions_journey_idx ON journey_conversions (workspace_id, journey_id, at);

-- +goose Down
DROP TABLE journey_conversions;

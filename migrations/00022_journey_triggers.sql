-- Journey starts that must not be lost: the outbox of records (and segment
-- moves) that trigger a live journey. A row is written in the transaction
-- that stores the record, so a start is queued exactly when the record is
-- committed. The API starts the runs at once and deletes the row; should
-- the process die or Temporal be unreachable before that, the journey
-- trigger dispatcher of the worker process starts them later (on the same
-- deterministic workflow ids, so a start is never made twice).

-- +goose Up
-- The triggers of live journeys at their published version, read in the
-- ingest and segment transactions to decide which records to queue.
CREATE VIEW live_journey_triggers AS
SELECT j.workspace_id, j.id AS journey_id,
       v.definition -> 'trigger' ->> 'type' AS type,
       v.definition -> 'trigger' ->> 'event' AS event,
       v.definition -> 'trigger' ->> 'segment' AS segment
FROM journeys j
JOIN journey_versions v ON v.workspace_id = j.workspace_id AND v.journey_id = j.id AND v.version = j.published_version
WHERE j.status = 'live';

CREATE TABLE journey_triggers (
    workspace_id    uuid NOT NULL,
    -- The record that triggers: an ingested record, or the "Segment
    -- Entered"/"Segment Exited" event a segment move put on the timeline.
    event_id        bigint NOT NULL,
    -- event: journeys triggered by the record's name; segment: journeys
    -- triggered by entering or leaving the segment it names.
    kind            text NOT NULL CHECK (kind IN ('event', 'segment')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- When the dispatcher may try: first after a grace period that leaves
    -- the start to the API process that committed the record, then after
    -- each failure (backoff), or when a dispatcher's lease ends.
    next_attempt_at timestamptz NOT NULL DEFAULT now() + interval '30 seconds',
    attempts        int NOT NULL DEFAULT 0,
    last_error      text,
    -- The dispatcher attempt that holds the lease.
    claim           uuid,
    PRIMARY KEY (workspace_id, event_id),
    -- An erased profile's records go, and their pending starts with them.
    FOREIGN KEY (workspace_id, event_id) REFERENCES events (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX journey_triggers_due_idx ON journey_triggers (next_attempt_at);

-- +goose Down
DROP TABLE journey_triggers;
DROP VIEW live_journey_triggers;

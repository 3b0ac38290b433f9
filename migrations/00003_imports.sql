-- Bulk imports of CSV / NDJSON exports (CRM, store, call centre): one row per
-- uploaded file, with its mapping and progress. The rows themselves become
-- events (deduplicated by messageId); bad rows go to rejected_records.

-- +goose Up
CREATE TABLE imports (
    workspace_id   uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id             uuid NOT NULL DEFAULT gen_random_uuid(),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    format         text NOT NULL CHECK (format IN ('csv', 'ndjson')),
    -- The source the records are stored under (crm, store, call_centre, ...) and the key that
    -- started the import: the audit trail of every record.
    source         text NOT NULL CHECK (source ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    key_id         uuid NOT NULL,
    file_sha256    text NOT NULL,
    file_bytes     bigint NOT NULL CHECK (file_bytes >= 0),
    mapping        jsonb NOT NULL,
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    -- total_rows is known once the file was counted, when the import starts running.
    total_rows     integer NOT NULL DEFAULT 0,
    processed_rows integer NOT NULL DEFAULT 0,
    accepted       integer NOT NULL DEFAULT 0,
    duplicates     integer NOT NULL DEFAULT 0,
    rejected       integer NOT NULL DEFAULT 0,
    -- The first bad rows, [{line, field, reason}], for a person to fix the file; all of them
    -- are in rejected_records.
    bad_rows       jsonb NOT NULL DEFAULT '[]',
    -- Why a failed import stopped.
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX imports_recent_idx ON imports (workspace_id, created_at DESC);

-- +goose Down
DROP TABLE imports;

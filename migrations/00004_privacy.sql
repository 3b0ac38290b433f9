-- Right to erasure: suppressed identifiers (hashed, so the erased value is not
-- kept) and an audit log of erasures without personal data.

-- +goose Up
CREATE TABLE suppressed_identities (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    type         text NOT NULL,
    value_hash   bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, type, value_hash)
);

CREATE TABLE erasures (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    profile_id   uuid NOT NULL,
    key_id       uuid NOT NULL,
    profiles     int NOT NULL,
    identities   int NOT NULL,
    events       int NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id)
);

-- +goose Down
DROP TABLE erasures;
DROP TABLE suppressed_identities;

-- The single customer repository: raw events (the audit trail), profiles,
-- identities and the merge log.

-- +goose Up
-- Which identifier makes a contact "known", and which traits are identifiers.
ALTER TABLE workspaces
    ADD COLUMN unique_identifier text NOT NULL DEFAULT 'email'
        CHECK (unique_identifier ~ '^[a-z][a-z0-9_]{0,62}$'),
    ADD COLUMN identity_traits text[] NOT NULL DEFAULT '{email,phone}';

CREATE TABLE profiles (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id            uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- anonymous | known | omnichannel, derived from identities and sources on every write.
    state         text NOT NULL DEFAULT 'anonymous' CHECK (state IN ('anonymous', 'known', 'omnichannel')),
    -- Current trait values, and where each came from: {trait: {source, message_id, at}}.
    traits        jsonb NOT NULL DEFAULT '{}',
    trait_sources jsonb NOT NULL DEFAULT '{}',
    -- Computed traits kept current incrementally (see pkg/profile.Computed).
    computed      jsonb NOT NULL DEFAULT '{}',
    first_seen_at timestamptz,
    last_seen_at  timestamptz,
    -- Set when this profile was merged into another; kept so that a merge can be undone.
    merged_into   uuid,
    merged_at     timestamptz,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX profiles_live_idx ON profiles (workspace_id, last_seen_at DESC) WHERE merged_into IS NULL;

-- Deterministic identity graph: each (type, value) belongs to exactly one live profile.
CREATE TABLE identities (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    type         text NOT NULL,
    value        text NOT NULL,
    profile_id   uuid NOT NULL,
    -- The profile the identity was first attached to (for unmerge).
    origin_profile_id uuid NOT NULL,
    source       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, type, value)
);
CREATE INDEX identities_profile_idx ON identities (workspace_id, profile_id);

-- Every accepted record as received (raw), with its source and arrival time.
CREATE TABLE events (
    workspace_id       uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id                 bigint GENERATED ALWAYS AS IDENTITY,
    message_id         text NOT NULL,
    type               text NOT NULL CHECK (type IN ('identify', 'track', 'page', 'screen', 'group', 'alias')),
    -- track: the event name; page/screen: the page or screen name.
    name               text,
    anonymous_id       text,
    user_id            text,
    profile_id         uuid,
    -- The profile the event was first attached to (for unmerge).
    origin_profile_id  uuid,
    source             text NOT NULL,
    key_id             uuid NOT NULL,
    timestamp          timestamptz NOT NULL,
    original_timestamp timestamptz,
    sent_at            timestamptz,
    received_at        timestamptz NOT NULL,
    properties         jsonb NOT NULL DEFAULT '{}',
    traits             jsonb NOT NULL DEFAULT '{}',
    context            jsonb NOT NULL DEFAULT '{}',
    raw                jsonb NOT NULL,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, message_id)
);
CREATE INDEX events_profile_idx ON events (workspace_id, profile_id, timestamp DESC, id DESC);

CREATE TABLE profile_merges (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    survivor_id  uuid NOT NULL,
    merged_id    uuid NOT NULL,
    -- The record that linked them and the identities it carried.
    message_id   text NOT NULL,
    identities   jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    undone_at    timestamptz,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX profile_merges_survivor_idx ON profile_merges (workspace_id, survivor_id);

-- Two profiles a record tried to link although they hold different values of
-- the unique identifier: never merged, recorded for a person to look at.
CREATE TABLE identity_conflicts (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    message_id   text NOT NULL,
    profile_ids  uuid[] NOT NULL,
    reason       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id)
);

-- Records refused at the door (malformed, failing a validation rule), kept
-- as received with the reason, so that nothing sent is ever silently lost.
CREATE TABLE rejected_records (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    source       text NOT NULL,
    key_id       uuid NOT NULL,
    -- The endpoint's call type for single calls (a batch item names its own).
    call_type    text,
    received_at  timestamptz NOT NULL,
    field        text NOT NULL,
    reason       text NOT NULL,
    raw          text NOT NULL,
    replayed_at  timestamptz,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX rejected_records_recent_idx ON rejected_records (workspace_id, received_at DESC);

-- +goose Down
DROP TABLE rejected_records;
DROP TABLE identity_conflicts;
DROP TABLE profile_merges;
DROP TABLE events;
DROP TABLE identities;
DROP TABLE profiles;
ALTER TABLE workspaces DROP COLUMN identity_traits, DROP COLUMN unique_identifier;

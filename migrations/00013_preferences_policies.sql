-- Consent audit, manual suppressions and delivery policies:
--   * consent_log: every change of a subscription or a suppression, with its
--     source and time, written by triggers so that no code path (API,
--     preference page, unsubscribe link, provider webhooks, SMS opt-outs)
--     can change consent without a record;
--   * suppressions get an id (to be listed and lifted) and a source;
--   * delivery_policies: a workspace's frequency caps, quiet hours and
--     default time zone, checked by the ledger at send time;
--   * deliveries.deferred_until: a send held back by a policy, retried then.

-- +goose Up
ALTER TABLE suppressions
    ADD COLUMN id     uuid NOT NULL DEFAULT gen_random_uuid(),
    -- Who added it: sendgrid, unsubscribe_link, api, ... ('' before this column).
    ADD COLUMN source text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX suppressions_id_idx ON suppressions (workspace_id, id);
CREATE INDEX suppressions_list_idx ON suppressions (workspace_id, created_at DESC, id DESC);

CREATE TABLE consent_log (
    workspace_id   uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    at             timestamptz NOT NULL DEFAULT now(),
    -- subscribed / unsubscribed (a subscription), suppressed / lifted (an address).
    action         text NOT NULL CHECK (action IN ('subscribed', 'unsubscribed', 'suppressed', 'lifted')),
    -- Set for subscription changes; cleared when the profile is erased.
    profile_id     uuid,
    channel        text NOT NULL,
    purpose        text,
    -- The suppression's reason (bounce, spamreport, unsubscribe, manual).
    reason         text,
    suppression_id uuid,
    address_hash   bytea,
    source         text NOT NULL DEFAULT '',
    -- Who, when the source has several (the API key of an API call):
    -- the transaction's parcours.consent_actor setting.
    actor          text NOT NULL DEFAULT '',
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX consent_log_profile_idx ON consent_log (workspace_id, profile_id, at DESC) WHERE profile_id IS NOT NULL;
CREATE INDEX consent_log_suppression_idx ON consent_log (workspace_id, suppression_id) WHERE suppression_id IS NOT NULL;

-- +goose StatementBegin
CREATE FUNCTION log_subscription_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO consent_log (workspace_id, at, action, profile_id, channel, purpose, source, actor)
        VALUES (NEW.workspace_id, NEW.updated_at, NEW.status, NEW.profile_id, NEW.channel, NEW.purpose, NEW.source,
                coalesce(current_setting('parcours.consent_actor', true), ''));
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER subscriptions_log AFTER INSERT OR UPDATE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION log_subscription_change();

-- A lift's source is the transaction's parcours.consent_source setting
-- (set_config(..., true) by the code that deletes); parcours.consent_actor
-- names who, for both.
-- +goose StatementBegin
CREATE FUNCTION log_suppression_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO consent_log (workspace_id, at, action, channel, reason, suppression_id, address_hash, source, actor)
        VALUES (NEW.workspace_id, NEW.created_at, 'suppressed', NEW.channel, NEW.reason, NEW.id, NEW.address_hash, NEW.source,
                coalesce(current_setting('parcours.consent_actor', true), ''));
    ELSE
        INSERT INTO consent_log (workspace_id, action, channel, reason, suppression_id, address_hash, source, actor)
        VALUES (OLD.workspace_id, 'lifted', OLD.channel, OLD.reason, OLD.id, OLD.address_hash,
                coalesce(nullif(current_setting('parcours.consent_source', true), ''), 'unknown'),
                coalesce(current_setting('parcours.consent_actor', true), ''));
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER suppressions_log AFTER INSERT OR DELETE ON suppressions
    FOR EACH ROW EXECUTE FUNCTION log_suppression_change();

-- One row per workspace: {"frequency_caps": [...], "quiet_hours": {...},
-- "default_timezone": "..."} as validated by pkg/channel (Policy).
CREATE TABLE delivery_policies (
    workspace_id uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    policy       jsonb NOT NULL DEFAULT '{}',
    updated_at   timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE deliveries ADD COLUMN deferred_until timestamptz;

-- +goose Down
ALTER TABLE deliveries DROP COLUMN deferred_until;
DROP TABLE delivery_policies;
DROP TRIGGER suppressions_log ON suppressions;
DROP FUNCTION log_suppression_change();
DROP TRIGGER subscriptions_log ON subscriptions;
DROP FUNCTION log_subscription_change();
DROP TABLE consent_log;
DROP INDEX suppressions_list_idx;
DROP INDEX suppressions_id_idx;
ALTER TABLE suppressions DROP COLUMN source, DROP COLUMN id;

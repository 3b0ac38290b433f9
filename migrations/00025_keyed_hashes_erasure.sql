-- Erasure leaves nothing of the person (issue 16, M2):
--   * address and identifier hashes are keyed: HMAC-SHA256 under a key of
--     the workspace derived from PARCOURS_SECRET_KEY (pkg/addrhash), no
--     longer the plain SHA-256 anyone who knows the address can recompute.
--     SQL cannot compute them (it has no secret), and the plaintext is in
--     none of these rows, so the plain hashes made before are dropped here,
--     not converted (there has been no release):
--       - suppressions and suppressed_identities: deleted, without a
--         "lifted" row in the consent log (they matched nothing any more);
--       - deliveries, delivery_events, consent_log: address_hash cleared
--         (a one-click unsubscribe from a message sent before still
--         unsubscribes the profile; a bounce still suppresses the address
--         SendGrid names);
--       - broadcast_addresses of finished occurrences: deleted (they only
--         keep one message per address within an occurrence);
--   * delivery_events keep an allow-list of the provider's fields
--     (pkg/channel sgRawFields, twilioRawFields), click URLs without their
--     query and fragment, and reasons with their addresses masked: the rows
--     stored before are cut down the same way here;
--   * segment_events may hold an "erased" notice for segment webhooks
--     (pkg/segment QueueErasure), kept until every webhook took it;
--   * indexes for what an erasure and the retention sweep (pkg/retention)
--     look up: the delivery events and deliveries of an address, the
--     quarantine and provider events by age (PARCOURS_QUARANTINE_RETENTION,
--     PARCOURS_PROVIDER_EVENT_RETENTION), and erased notices.

-- +goose Up
ALTER TABLE suppressions DISABLE TRIGGER suppressions_log;
DELETE FROM suppressions;
ALTER TABLE suppressions ENABLE TRIGGER suppressions_log;
DELETE FROM suppressed_identities;
UPDATE deliveries SET address_hash = NULL WHERE address_hash IS NOT NULL;
UPDATE delivery_events SET address_hash = NULL WHERE address_hash IS NOT NULL;
UPDATE consent_log SET address_hash = NULL WHERE address_hash IS NOT NULL;
DELETE FROM broadcast_addresses a USING broadcast_occurrences o
WHERE o.workspace_id = a.workspace_id AND o.broadcast_id = a.broadcast_id AND o.occurrence = a.occurrence AND o.finished_at IS NOT NULL;

UPDATE delivery_events SET
    raw = coalesce((SELECT jsonb_object_agg(k, v) FROM jsonb_each(raw) AS f(k, v) WHERE k = ANY (ARRAY[
        'event', 'timestamp', 'sg_event_id', 'sg_message_id', 'type', 'status', 'bounce_classification', 'category', 'attempt',
        'asm_group_id', 'sg_machine_open', 'tls', 'url_offset', 'marketing_campaign_id', 'parcours_delivery_id', 'parcours_workspace_id',
        'provider', 'MessageSid', 'SmsSid', 'MessageStatus', 'SmsStatus', 'ErrorCode', 'AccountSid', 'MessagingServiceSid', 'ApiVersion', 'RawDlrDoneDate'])), '{}'),
    url = CASE WHEN url ~ '^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]' THEN regexp_replace(url, '^([a-zA-Z][a-zA-Z0-9+.-]*://)([^/?#@]*@)?([^?#]*).*$', '\1\3') END,
    reason = regexp_replace(reason, '[^\s<>()\[\]{}"'',;:/?&=#]+@[^\s<>()\[\]{}"'',;:/?&=#]+', '<address>', 'g');

ALTER TABLE segment_events DROP CONSTRAINT segment_events_kind_check,
    ADD CONSTRAINT segment_events_kind_check CHECK (kind IN ('entered', 'exited', 'erased'));

CREATE INDEX delivery_events_address_idx ON delivery_events (workspace_id, address_hash) WHERE address_hash IS NOT NULL;
CREATE INDEX deliveries_address_idx ON deliveries (workspace_id, address_hash) WHERE address_hash IS NOT NULL;
CREATE INDEX delivery_events_received_idx ON delivery_events (received_at);
CREATE INDEX rejected_records_received_idx ON rejected_records (received_at);
CREATE INDEX segment_events_erased_idx ON segment_events (workspace_id, id) WHERE kind = 'erased';

-- +goose Down
DROP INDEX segment_events_erased_idx;
DROP INDEX rejected_records_received_idx;
DROP INDEX delivery_events_received_idx;
DROP INDEX deliveries_address_idx;
DROP INDEX delivery_events_address_idx;
DELETE FROM segment_events WHERE kind = 'erased';
ALTER TABLE segment_events DROP CONSTRAINT segment_events_kind_check,
    ADD CONSTRAINT segment_events_kind_check CHECK (kind IN ('entered', 'exited'));
-- The keyed hashes stay: the plain ones cannot be made again.

-- SMS through Twilio: the channel becomes a value of every table that names
-- channels; deliveries keep the segment count of an SMS and the provider's
-- error code; a recipient who replied STOP is suppressed with reason
-- opt_out (the carrier refuses every message to them, whatever the class).

-- +goose Up
ALTER TABLE channel_settings DROP CONSTRAINT channel_settings_channel_check,
    ADD CONSTRAINT channel_settings_channel_check CHECK (channel IN ('email', 'webhook', 'sms'));
ALTER TABLE templates DROP CONSTRAINT templates_channel_check,
    ADD CONSTRAINT templates_channel_check CHECK (channel IN ('email', 'webhook', 'sms'));
ALTER TABLE deliveries DROP CONSTRAINT deliveries_channel_check,
    ADD CONSTRAINT deliveries_channel_check CHECK (channel IN ('email', 'webhook', 'sms'));
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_channel_check,
    ADD CONSTRAINT subscriptions_channel_check CHECK (channel IN ('email', 'webhook', 'sms'));
ALTER TABLE suppressions DROP CONSTRAINT suppressions_channel_check,
    ADD CONSTRAINT suppressions_channel_check CHECK (channel IN ('email', 'webhook', 'sms')),
    DROP CONSTRAINT suppressions_reason_check,
    ADD CONSTRAINT suppressions_reason_check CHECK (reason IN ('bounce', 'spamreport', 'unsubscribe', 'manual', 'opt_out'));

ALTER TABLE deliveries
    -- Segments an SMS body takes (GSM-7: 160 characters, 153 per part when
    -- concatenated; UCS-2: 70, 67 per part): what Twilio bills.
    ADD COLUMN segments   int CHECK (segments >= 0),
    -- The provider's error code of a refusal or a failed delivery (Twilio's
    -- 21211, 30003, ...).
    ADD COLUMN error_code text;

-- Twilio's status callbacks find their delivery by message SID.
CREATE INDEX deliveries_sms_sid_idx ON deliveries (workspace_id, provider_message_id) WHERE channel = 'sms';

-- +goose Down
DROP INDEX deliveries_sms_sid_idx;
ALTER TABLE deliveries DROP COLUMN error_code, DROP COLUMN segments;
DELETE FROM channel_settings WHERE channel = 'sms';
DELETE FROM templates WHERE channel = 'sms';
DELETE FROM deliveries WHERE channel = 'sms';
DELETE FROM subscriptions WHERE channel = 'sms';
DELETE FROM suppressions WHERE channel = 'sms' OR reason = 'opt_out';
ALTER TABLE suppressions DROP CONSTRAINT suppressions_reason_check,
    ADD CONSTRAINT suppressions_reason_check CHECK (reason IN ('bounce', 'spamreport', 'unsubscribe', 'manual')),
    DROP CONSTRAINT suppressions_channel_check,
    ADD CONSTRAINT suppressions_channel_check CHECK (channel IN ('email', 'webhook'));
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_channel_check,
    ADD CONSTRAINT subscriptions_channel_check CHECK (channel IN ('email', 'webhook'));
ALTER TABLE deliveries DROP CONSTRAINT deliveries_channel_check,
    ADD CONSTRAINT deliveries_channel_check CHECK (channel IN ('email', 'webhook'));
ALTER TABLE templates DROP CONSTRAINT templates_channel_check,
    ADD CONSTRAINT templates_channel_check CHECK (channel IN ('email', 'webhook'));
ALTER TABLE channel_settings DROP CONSTRAINT channel_settings_channel_check,
    ADD CONSTRAINT channel_settings_channel_check CHECK (channel IN ('email', 'webhook'));

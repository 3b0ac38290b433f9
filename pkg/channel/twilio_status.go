package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/parcours/parcours/pkg/events"
)

// Profile event names recorded from Twilio's status callbacks.
const (
	EventSMSDelivered = "SMS Delivered"
	EventSMSFailed    = "SMS Failed"
)

// TwilioStatus is one verified status callback.
type TwilioStatus struct {
	MessageSID string
	// Status is Twilio's MessageStatus: queued, sending, sent, delivered,
	// undelivered, failed (and accepted, scheduled, read, canceled).
	Status    string
	ErrorCode string
	// DeliveryID is the delivery query parameter of the callback URL
	// (prepareSMS puts it there); "" when absent.
	DeliveryID string
	// Params are the posted parameters; delivery_events keeps the
	// twilioRawFields of them only.
	Params url.Values
}

// twilioRawFields are the parameters of a status callback that
// delivery_events.raw keeps: which message, which status, which error.
// Everything else is left out — To, From, Body and ChannelToAddress (the
// number and the text), ToCity, ToState, ToZip, ToCountry and their From
// twins (where the person is), and any parameter Twilio adds later — so
// that the events kept for the campaign figures say nothing of the person.
var twilioRawFields = map[string]bool{
	"MessageSid": true, "SmsSid": true, "MessageStatus": true, "SmsStatus": true, "ErrorCode": true,
	"AccountSid": true, "MessagingServiceSid": true, "ApiVersion": true, "RawDlrDoneDate": true,
}

// ParseTwilioStatus reads a status callback's parameters.
func ParseTwilioStatus(params url.Values, deliveryID string) (TwilioStatus, error) {
	st := TwilioStatus{MessageSID: params.Get("MessageSid"), Status: params.Get("MessageStatus"),
		ErrorCode: params.Get("ErrorCode"), DeliveryID: deliveryID, Params: params}
	if st.MessageSID == "" {
		st.MessageSID = params.Get("SmsSid")
	}
	if st.Status == "" {
		st.Status = params.Get("SmsStatus")
	}
	var errs FieldErrors
	if st.MessageSID == "" || len(st.MessageSID) > 64 {
		errs = append(errs, FieldError{"MessageSid", "is required: the SID of the message the status is about"})
	}
	if st.Status == "" || len(st.Status) > 32 {
		errs = append(errs, FieldError{"MessageStatus", "is required: queued, sent, delivered, undelivered, failed, ..."})
	}
	if len(st.ErrorCode) > 16 {
		errs = append(errs, FieldError{"ErrorCode", "must be a Twilio error code"})
	}
	if len(errs) > 0 {
		return st, errs
	}
	return st, nil
}

// failed reports a status that means the message did not reach the phone.
func (st TwilioStatus) failed() bool { return st.Status == "failed" || st.Status == "undelivered" }

// TwilioResult reports what a status callback did.
type TwilioResult struct {
	// Stored is false for a callback stored before (the same SID and
	// status), which changes nothing.
	Stored bool
	// DeliveryID is the delivery the callback is about, "" when none of
	// this workspace.
	DeliveryID string
	// ProfileEvents are the profile events to record (first-time or not:
	// they are deduplicated by message id when recorded).
	ProfileEvents []ProfileEvent
}

// RecordTwilioStatus stores a verified status callback once (by message
// SID and status), correlated to its delivery by SID (else by the delivery
// id of the callback URL). A status seen for the first time also
//   - delivered: sets the delivery's delivered time;
//   - failed or undelivered: records the delivery failed, with Twilio's
//     error code (sent_at stays: Twilio took it); 21610 also suppresses the
//     number and opts the profile out of marketing SMS;
//   - any status: settles a delivery left unknown (or claimed in flight)
//     as sent: Twilio had the message.
//
// The caller records the returned ProfileEvents (ingest.IngestInternal).
func (l *Ledger) RecordTwilioStatus(ctx context.Context, workspaceID string, st TwilioStatus) (TwilioResult, error) {
	now := time.Now().UTC()
	var res TwilioResult
	raw := map[string]any{"provider": "twilio"}
	for k, v := range st.Params {
		if twilioRawFields[k] && len(v) > 0 {
			raw[k] = cutText(v[0], 200)
		}
	}
	rawJSON, err := json.Marshal(raw)
	if err != nil {
		return res, fmt.Errorf("encode twilio status: %w", err)
	}
	key := "tw:" + st.MessageSID + ":" + st.Status
	err = pgx.BeginFunc(ctx, l.Pool, func(tx pgx.Tx) error {
		res = TwilioResult{}
		d, err := findSMSDelivery(ctx, tx, workspaceID, st)
		if err != nil {
			return err
		}
		var deliveryID any
		if d != nil {
			deliveryID, res.DeliveryID = d.id, d.id
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO delivery_events (workspace_id, delivery_id, dedupe_key, event, reason, at, address_hash, raw)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (workspace_id, dedupe_key) DO NOTHING`,
			workspaceID, deliveryID, key, st.Status, nullIfEmpty(st.ErrorCode), now, addressHashOf(d), rawJSON)
		if err != nil {
			return fmt.Errorf("store twilio %s status: %w", st.Status, err)
		}
		res.Stored = tag.RowsAffected() == 1
		if d == nil {
			return nil
		}
		if res.Stored {
			if err := applyTwilioStatus(ctx, tx, workspaceID, st, d, now); err != nil {
				return err
			}
		}
		if pe, ok := st.profileEvent(d, key, now); ok {
			res.ProfileEvents = append(res.ProfileEvents, pe)
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("record twilio status of %s: %w", st.MessageSID, err)
	}
	return res, nil
}

func addressHashOf(d *eventDelivery) []byte {
	if d == nil {
		return nil
	}
	return d.addressHash
}

// findSMSDelivery finds the SMS delivery of a callback: by SID, else by
// the callback URL's delivery id when that delivery has no SID yet (the
// ledger did not record Twilio's answer). nil: none of this workspace.
func findSMSDelivery(ctx context.Context, tx pgx.Tx, workspaceID string, st TwilioStatus) (*eventDelivery, error) {
	q := `SELECT d.id::text, coalesce(d.profile_id::text, ''), coalesce(t.slug, ''), coalesce(d.journey_id, ''), coalesce(d.node_id, ''), d.address_hash
		FROM deliveries d LEFT JOIN templates t ON t.workspace_id = d.workspace_id AND t.id = d.template_id
		WHERE d.workspace_id = $1 AND d.channel = 'sms' AND `
	d := &eventDelivery{}
	scan := func(row pgx.Row) error {
		return row.Scan(&d.id, &d.profileID, &d.template, &d.journeyID, &d.nodeID, &d.addressHash)
	}
	err := scan(tx.QueryRow(ctx, q+`d.provider_message_id = $2 LIMIT 1`, workspaceID, st.MessageSID))
	if errors.Is(err, pgx.ErrNoRows) && st.DeliveryID != "" {
		if _, perr := uuid.Parse(st.DeliveryID); perr == nil {
			err = scan(tx.QueryRow(ctx, q+`d.id = $2::uuid AND d.provider_message_id = ''`, workspaceID, st.DeliveryID))
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find delivery of twilio message %s: %w", st.MessageSID, err)
	}
	return d, nil
}

// applyTwilioStatus makes a first-time status's effects on the delivery,
// the suppressions and consent.
func applyTwilioStatus(ctx context.Context, tx pgx.Tx, workspaceID string, st TwilioStatus, d *eventDelivery, at time.Time) error {
	// Any status means Twilio had the message: a delivery the ledger could
	// not settle (docs/delivery.md) was sent.
	if _, err := tx.Exec(ctx, `
		UPDATE deliveries SET status = 'sent', in_flight = false, sent_at = coalesce(sent_at, $3), updated_at = now(),
			provider_message_id = CASE WHEN provider_message_id = '' THEN $4 ELSE provider_message_id END,
			reason = 'settled as sent by a Twilio status callback (' || $5 || ')'
		WHERE workspace_id = $1 AND id = $2 AND (status = 'unknown' OR (status = 'claimed' AND in_flight))`,
		workspaceID, d.id, at, st.MessageSID, st.Status); err != nil {
		return fmt.Errorf("settle delivery %s: %w", d.id, err)
	}
	switch {
	case st.Status == "delivered":
		if _, err := tx.Exec(ctx, `UPDATE deliveries SET delivered_at = LEAST(coalesce(delivered_at, $3), $3), updated_at = now() WHERE workspace_id = $1 AND id = $2`,
			workspaceID, d.id, at); err != nil {
			return fmt.Errorf("update delivery %s after delivered: %w", d.id, err)
		}
	case st.failed():
		reason := "twilio reported the message " + st.Status
		if st.ErrorCode != "" {
			reason += " (error " + st.ErrorCode + ", https://www.twilio.com/docs/api/errors/" + url.PathEscape(st.ErrorCode) + ")"
		}
		// A late failure never overrides a delivery receipt.
		if _, err := tx.Exec(ctx, `
			UPDATE deliveries SET status = 'failed', reason = $3, error_code = $4, updated_at = now()
			WHERE workspace_id = $1 AND id = $2 AND status = 'sent' AND delivered_at IS NULL`,
			workspaceID, d.id, reason, nullIfEmpty(st.ErrorCode)); err != nil {
			return fmt.Errorf("update delivery %s after %s: %w", d.id, st.Status, err)
		}
		if st.ErrorCode == TwilioErrUnsubscribed && d.addressHash != nil {
			if _, err := tx.Exec(ctx, `INSERT INTO suppressions (workspace_id, channel, address_hash, reason, source) VALUES ($1, 'sms', $2, $3, 'twilio') ON CONFLICT DO NOTHING`,
				workspaceID, d.addressHash, SuppressOptOut); err != nil {
				return fmt.Errorf("suppress number after %s: %w", st.ErrorCode, err)
			}
			if d.profileID != "" {
				if _, err := tx.Exec(ctx, `
					INSERT INTO subscriptions (workspace_id, profile_id, channel, purpose, status, source) VALUES ($1, $2, 'sms', 'marketing', 'unsubscribed', 'twilio')
					ON CONFLICT (workspace_id, profile_id, channel, purpose) DO UPDATE
					SET status = EXCLUDED.status, source = EXCLUDED.source, updated_at = now()`, workspaceID, d.profileID); err != nil {
					return fmt.Errorf("unsubscribe profile %s: %w", d.profileID, err)
				}
			}
		}
	}
	return nil
}

// profileEvent is the profile event a status records: SMS Delivered, or
// SMS Failed for failed and undelivered.
func (st TwilioStatus) profileEvent(d *eventDelivery, key string, now time.Time) (ProfileEvent, bool) {
	name := ""
	switch {
	case st.Status == "delivered":
		name = EventSMSDelivered
	case st.failed():
		name = EventSMSFailed
	}
	if name == "" || d.profileID == "" {
		return ProfileEvent{}, false
	}
	props := map[string]any{"delivery_id": d.id, "template": d.template, "status": st.Status}
	if d.journeyID != "" {
		props["journey_id"], props["node_id"] = d.journeyID, d.nodeID
	}
	if st.ErrorCode != "" {
		props["error_code"] = st.ErrorCode
	}
	msgID := "twilio/" + key
	raw, _ := json.Marshal(map[string]any{"type": events.TypeTrack, "event": name, "messageId": msgID, "timestamp": now, "properties": props})
	return ProfileEvent{ProfileID: d.profileID, Message: events.Message{
		Type: events.TypeTrack, MessageID: msgID, Event: name, Properties: props,
		Traits: map[string]any{}, Context: map[string]any{}, Timestamp: now, ReceivedAt: now, Raw: raw, Index: -1,
	}}, true
}

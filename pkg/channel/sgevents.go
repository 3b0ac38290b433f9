package channel

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"

	"github.com/parcours/parcours/pkg/events"
)

// EventWebhookWindow is how far the timestamp of a signed Event Webhook post
// may be from now, past or future. SendGrid signs the timestamp with the
// body; without a window a captured post could be replayed for ever (the
// helper checks the signature only). Ten minutes covers clock skew and
// SendGrid's delivery delay of a fresh post; SendGrid's retries of a failed
// post are signed again.
const EventWebhookWindow = 10 * time.Minute

// Profile event names recorded from delivery events.
const (
	EventEmailDelivered    = "Email Delivered"
	EventEmailOpened       = "Email Opened"
	EventEmailClicked      = "Email Clicked"
	EventEmailBounced      = "Email Bounced"
	EventEmailSpam         = "Email Marked as Spam"
	EventEmailUnsubscribed = "Email Unsubscribed"
)

// profileEventNames maps SendGrid events to the profile events they record;
// the others (processed, deferred, dropped) stay on the delivery only.
var profileEventNames = map[string]string{
	"delivered":         EventEmailDelivered,
	"open":              EventEmailOpened,
	"click":             EventEmailClicked,
	"bounce":            EventEmailBounced,
	"spamreport":        EventEmailSpam,
	"unsubscribe":       EventEmailUnsubscribed,
	"group_unsubscribe": EventEmailUnsubscribed,
}

// ParseEventWebhookKey checks a verification key as SendGrid shows it
// (base64 of the DER public key) and returns it.
func ParseEventWebhookKey(b64 string) (*ecdsa.PublicKey, error) {
	b64 = strings.TrimSpace(b64)
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("must be the base64 verification key SendGrid shows (Mail Settings, Signed Event Webhook)")
	}
	// The helper panics on a key that is not ECDSA: check the type first.
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("is not a public key (base64 DER, as SendGrid shows it)")
	}
	if _, ok := pub.(*ecdsa.PublicKey); !ok {
		return nil, errors.New("must be an ECDSA public key")
	}
	key, err := eventwebhook.ConvertPublicKeyBase64ToECDSA(b64)
	if err != nil {
		return nil, fmt.Errorf("read verification key: %w", err)
	}
	return key, nil
}

// EventWebhookKey returns the workspace's verification key for SendGrid's
// signed Event Webhook, ErrNotConfigured when there is none.
func (s *Store) EventWebhookKey(ctx context.Context, workspaceID string) (*ecdsa.PublicKey, error) {
	var c emailConfig
	if _, _, _, err := s.load(ctx, workspaceID, ChannelEmail, &c); err != nil {
		return nil, err
	}
	if c.EventWebhookPublicKey == "" {
		return nil, ErrNotConfigured
	}
	return ParseEventWebhookKey(c.EventWebhookPublicKey)
}

// SignatureError says why a signed Event Webhook post was refused; Field
// names the header at fault.
type SignatureError struct {
	Field  string
	Reason string
}

func (e *SignatureError) Error() string { return e.Field + ": " + e.Reason }

// VerifyEventWebhook checks a post of SendGrid's signed Event Webhook: the
// ECDSA signature over timestamp+body (sendgrid-go's eventwebhook helper),
// and the timestamp within EventWebhookWindow of now. key nil (no key
// configured) refuses everything.
func VerifyEventWebhook(key *ecdsa.PublicKey, body []byte, signature, timestamp string, now time.Time) error {
	switch {
	case signature == "":
		return &SignatureError{eventwebhook.VerificationHTTPHeader, "is missing: only signed posts are accepted"}
	case timestamp == "":
		return &SignatureError{eventwebhook.TimestampHTTPHeader, "is missing: only signed posts are accepted"}
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return &SignatureError{eventwebhook.TimestampHTTPHeader, "must be a Unix time in seconds"}
	}
	if d := now.Sub(time.Unix(ts, 0)); d > EventWebhookWindow || d < -EventWebhookWindow {
		return &SignatureError{eventwebhook.TimestampHTTPHeader, fmt.Sprintf("is %s away from now, more than the %s allowed (a replay, or a clock to fix)", d.Round(time.Second).Abs(), EventWebhookWindow)}
	}
	if key == nil {
		return &SignatureError{eventwebhook.VerificationHTTPHeader, "does not verify: this workspace has no event webhook verification key (PUT /v1/channels/email event_webhook_public_key)"}
	}
	ok, err := eventwebhook.VerifySignature(key, body, signature, timestamp)
	if err != nil || !ok {
		return &SignatureError{eventwebhook.VerificationHTTPHeader, "does not verify with this workspace's event webhook verification key over the timestamp and the body as sent"}
	}
	return nil
}

// ProfileEvent is a profile event a delivery event records (an internal
// event, source "parcours"). Its message id is derived from the delivery
// event, so recording it again changes nothing.
type ProfileEvent struct {
	ProfileID string
	Message   events.Message
}

// EventsResult reports what a batch of delivery events did.
type EventsResult struct {
	// Received counts the events of the batch; Stored those seen for the
	// first time; Duplicates those stored before; Ignored those without an
	// event name.
	Received, Stored, Duplicates, Ignored int
	// ProfileEvents are the profile events of every event of the batch that
	// names a delivery to a profile, first-time or not: they are
	// deduplicated by message id when recorded, and a batch posted again
	// after a failure must still record them.
	ProfileEvents []ProfileEvent
}

// sgEvent is the part of a SendGrid event Parcours reads.
type sgEvent struct {
	event, email, sgEventID, sgMessageID, reason, bounceType string
	// url is the clicked link as SendGrid sent it (for the profile's
	// Email Clicked event); storedURL is what delivery_events keeps of it
	// (sgStoredURL).
	url, storedURL          string
	deliveryID, workspaceID string
	machineOpen             bool
	at                      time.Time
	hasTimestamp            bool
	// addressHash is the keyed hash of email (Store.AddressHash), nil
	// when the event names no address.
	addressHash []byte
	raw         []byte
}

func str(m map[string]any, k string) string {
	switch v := m[k].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

// sgRawFields are the fields of a SendGrid event that delivery_events.raw
// keeps: what happened to which message, and nothing about the person.
// Everything else is left out — email and smtp-id (the address), ip and
// useragent (the reader's), url (kept without its query in the url
// column), reason and response (the receiving server's words, which quote
// the address; kept in the reason column with addresses masked), unique
// arguments other than Parcours' own, and any field SendGrid adds later
// — so that erasing a person, who is no longer linked to the delivery,
// leaves nothing of them in the events kept for the campaign figures.
var sgRawFields = map[string]bool{
	"event": true, "timestamp": true, "sg_event_id": true, "sg_message_id": true,
	"type": true, "status": true, "bounce_classification": true, "category": true, "attempt": true,
	"asm_group_id": true, "sg_machine_open": true, "tls": true, "url_offset": true,
	"marketing_campaign_id": true, "parcours_delivery_id": true, "parcours_workspace_id": true,
}

// maxEventReason bounds the reason kept of one event (a bounce's SMTP
// answer is a line or two; anything longer is not worth keeping).
const maxEventReason = 500

// emailLike matches what looks like an email address in free text.
var emailLike = regexp.MustCompile(`[^\s<>()\[\]{}"',;:/?&=#]+@[^\s<>()\[\]{}"',;:/?&=#]+`)

// maskAddresses replaces, in text a provider wrote (a bounce's SMTP
// answer), every email address with "<address>", and the address's local
// part when it is quoted alone (three characters or more).
func maskAddresses(text, email string) string {
	if email != "" {
		text = regexp.MustCompile(`(?i)`+regexp.QuoteMeta(email)).ReplaceAllString(text, "<address>")
	}
	text = emailLike.ReplaceAllString(text, "<address>")
	if local, _, ok := strings.Cut(email, "@"); ok && len(local) >= 3 {
		text = regexp.MustCompile(`(?i)`+regexp.QuoteMeta(local)).ReplaceAllString(text, "<address>")
	}
	return text
}

// sgStoredURL is what delivery_events keeps of a clicked link: its scheme,
// host and path, without the query, fragment or credentials, where links
// carry who clicked (?email=, tokens, ids); an address in the path is
// masked. "" for a link that does not parse as an absolute URL.
func sgStoredURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	kept := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: maskAddresses(u.Path, "")}
	return kept.String()
}

// cutText cuts s to at most n bytes, on a character boundary.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// parseSGEvent reads one event; addressHash hashes its address. The raw
// copy kept holds the sgRawFields only.
func parseSGEvent(raw json.RawMessage, now time.Time, addressHash func(string) []byte) (sgEvent, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return sgEvent{}, fmt.Errorf("decode event: %w", err)
	}
	e := sgEvent{
		event: str(m, "event"), email: strings.TrimSpace(str(m, "email")), sgEventID: str(m, "sg_event_id"),
		sgMessageID: str(m, "sg_message_id"), url: str(m, "url"), bounceType: str(m, "type"),
		deliveryID: str(m, "parcours_delivery_id"), workspaceID: str(m, "parcours_workspace_id"),
		machineOpen: str(m, "sg_machine_open") == "true", at: now,
	}
	e.storedURL = sgStoredURL(e.url)
	if e.email != "" {
		e.addressHash = addressHash(e.email)
	}
	e.reason = str(m, "reason")
	if e.reason == "" {
		e.reason = str(m, "response")
	}
	e.reason = cutText(maskAddresses(e.reason, e.email), maxEventReason)
	if n, ok := m["timestamp"].(json.Number); ok {
		if f, err := n.Float64(); err == nil && f > 0 && f < 1<<40 {
			e.at, e.hasTimestamp = time.Unix(int64(f), 0).UTC(), true
		}
	}
	for k := range m {
		if !sgRawFields[k] {
			delete(m, k)
		}
	}
	var err error
	if e.raw, err = json.Marshal(m); err != nil {
		return e, fmt.Errorf("encode event: %w", err)
	}
	return e, nil
}

// dedupeKey is "sg:<sg_event_id>", else a hash of what makes the event
// itself, the address by its keyed hash (SendGrid sends sg_event_id on
// every event type today; older payloads and some integrations lack it).
func (e sgEvent) dedupeKey() string {
	if e.sgEventID != "" {
		return "sg:" + e.sgEventID
	}
	ts := ""
	if e.hasTimestamp {
		ts = strconv.FormatInt(e.at.Unix(), 10)
	}
	h := sha256.Sum256([]byte(strings.Join([]string{e.event, e.sgMessageID, ts, hex.EncodeToString(e.addressHash), e.url}, "\x00")))
	return "h:" + hex.EncodeToString(h[:])
}

// eventDelivery is the ledger row an event belongs to.
type eventDelivery struct {
	id, profileID, template, journeyID, nodeID string
	addressHash                                []byte
}

// deliveryColumn is the first-occurrence column each event sets.
func (e sgEvent) deliveryColumn() string {
	switch e.event {
	case "delivered":
		return "delivered_at"
	case "open":
		if e.machineOpen {
			return "machine_opened_at"
		}
		return "opened_at"
	case "click":
		return "clicked_at"
	case "bounce":
		return "bounced_at"
	case "dropped":
		return "dropped_at"
	case "spamreport":
		return "spam_reported_at"
	case "unsubscribe", "group_unsubscribe":
		return "unsubscribed_at"
	}
	return ""
}

// RecordSendGridEvents stores a verified Event Webhook batch for a
// workspace, in one transaction: each event once (by sg_event_id, else a
// hash of the event), correlated to its delivery through the
// parcours_delivery_id custom argument. An event seen for the first time
// also
//   - sets the delivery's first delivered/opened/clicked/... time;
//   - settles a delivery left unknown (or claimed while a worker died mid
//     send) as sent: SendGrid had the message;
//   - suppresses the address after a bounce (not a block) or a spam report;
//   - opts the profile out of marketing email after an unsubscribe.
//
// The caller records the returned ProfileEvents (ingest.IngestInternal).
func (l *Ledger) RecordSendGridEvents(ctx context.Context, workspaceID string, body []byte) (EventsResult, error) {
	var res EventsResult
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return res, &FieldError{"body", "must be a JSON array of SendGrid events"}
	}
	now := time.Now().UTC()
	parsed := make([]sgEvent, 0, len(raws))
	hash := func(email string) []byte { return l.Settings.AddressHash(workspaceID, email) }
	for i, raw := range raws {
		e, err := parseSGEvent(raw, now, hash)
		if err != nil {
			return res, &FieldError{fmt.Sprintf("body[%d]", i), "must be a JSON object"}
		}
		parsed = append(parsed, e)
	}
	res.Received = len(parsed)
	err := pgx.BeginFunc(ctx, l.Pool, func(tx pgx.Tx) error {
		res = EventsResult{Received: len(parsed)}
		cache := map[string]*eventDelivery{}
		for _, e := range parsed {
			if e.event == "" {
				res.Ignored++
				continue
			}
			d, err := findEventDelivery(ctx, tx, workspaceID, e, cache)
			if err != nil {
				return err
			}
			key := e.dedupeKey()
			fresh, err := insertDeliveryEvent(ctx, tx, workspaceID, e, d, key)
			if err != nil {
				return err
			}
			if fresh {
				res.Stored++
				if err := applyDeliveryEvent(ctx, tx, workspaceID, e, d); err != nil {
					return err
				}
			} else {
				res.Duplicates++
			}
			if pe, ok := e.profileEvent(d, key, now); ok {
				res.ProfileEvents = append(res.ProfileEvents, pe)
			}
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("record %d sendgrid events: %w", len(parsed), err)
	}
	return res, nil
}

// findEventDelivery finds the delivery by the parcours_delivery_id custom
// argument, else by SendGrid's message id (the X-Message-Id the ledger
// kept is the part of sg_message_id before the first dot). nil: none of
// this workspace.
func findEventDelivery(ctx context.Context, tx pgx.Tx, workspaceID string, e sgEvent, cache map[string]*eventDelivery) (*eventDelivery, error) {
	if e.workspaceID != "" && e.workspaceID != workspaceID {
		return nil, nil // another workspace's message posted to this URL
	}
	where, arg := "", ""
	switch {
	case e.deliveryID != "":
		if _, err := uuid.Parse(e.deliveryID); err != nil {
			return nil, nil
		}
		where, arg = "d.id = $2::uuid", e.deliveryID
	case e.sgMessageID != "":
		where, arg = "d.provider_message_id = $2 AND d.channel = 'email'", strings.SplitN(e.sgMessageID, ".", 2)[0]
	default:
		return nil, nil
	}
	if d, ok := cache[where+arg]; ok {
		return d, nil
	}
	d := &eventDelivery{}
	err := tx.QueryRow(ctx, `
		SELECT d.id::text, coalesce(d.profile_id::text, ''), coalesce(t.slug, ''), coalesce(d.journey_id, ''), coalesce(d.node_id, ''), d.address_hash
		FROM deliveries d LEFT JOIN templates t ON t.workspace_id = d.workspace_id AND t.id = d.template_id
		WHERE d.workspace_id = $1 AND `+where+` LIMIT 1`, workspaceID, arg).
		Scan(&d.id, &d.profileID, &d.template, &d.journeyID, &d.nodeID, &d.addressHash)
	if errors.Is(err, pgx.ErrNoRows) {
		d = nil
	} else if err != nil {
		return nil, fmt.Errorf("find delivery of a sendgrid event: %w", err)
	}
	cache[where+arg] = d
	return d, nil
}

func insertDeliveryEvent(ctx context.Context, tx pgx.Tx, workspaceID string, e sgEvent, d *eventDelivery, key string) (bool, error) {
	var deliveryID any
	if d != nil {
		deliveryID = d.id
	}
	tag, err := tx.Exec(ctx, `
		INSERT INTO delivery_events (workspace_id, delivery_id, sg_event_id, sg_message_id, dedupe_key, event, machine_open, url, reason, at, address_hash, raw)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (workspace_id, dedupe_key) DO NOTHING`,
		workspaceID, deliveryID, nullIfEmpty(e.sgEventID), nullIfEmpty(e.sgMessageID), key, truncate(e.event, 64),
		e.machineOpen, nullIfEmpty(e.storedURL), nullIfEmpty(e.reason), e.at, e.addressHash, e.raw)
	if err != nil {
		return false, fmt.Errorf("store sendgrid %s event: %w", e.event, err)
	}
	return tag.RowsAffected() == 1, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// applyDeliveryEvent makes a first-time event's effects on the delivery,
// the suppressions and consent.
func applyDeliveryEvent(ctx context.Context, tx pgx.Tx, workspaceID string, e sgEvent, d *eventDelivery) error {
	if d != nil {
		batch := &pgx.Batch{}
		if col := e.deliveryColumn(); col != "" {
			batch.Queue(`UPDATE deliveries SET `+col+` = LEAST(coalesce(`+col+`, $3), $3), updated_at = now() WHERE workspace_id = $1 AND id = $2`,
				workspaceID, d.id, e.at)
		}
		// Any event about the message means SendGrid had it: a delivery the
		// ledger could not settle (docs/delivery.md) was sent.
		batch.Queue(`
			UPDATE deliveries SET status = 'sent', in_flight = false, sent_at = coalesce(sent_at, $3), updated_at = now(),
				provider_message_id = CASE WHEN provider_message_id = '' THEN $4 ELSE provider_message_id END,
				reason = 'settled as sent by the SendGrid event webhook (' || $5 || ')'
			WHERE workspace_id = $1 AND id = $2 AND (status = 'unknown' OR (status = 'claimed' AND in_flight))`,
			workspaceID, d.id, e.at, strings.SplitN(e.sgMessageID, ".", 2)[0], e.event)
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return fmt.Errorf("update delivery %s after %s: %w", d.id, e.event, err)
		}
	}
	hash := e.addressHash
	if hash == nil && d != nil {
		hash = d.addressHash
	}
	var reason string
	switch {
	case e.event == "bounce" && e.bounceType != "blocked":
		// A block is a temporary refusal (SendGrid keeps it on its blocks
		// list, not its bounces): the address itself is fine.
		reason = "bounce"
	case e.event == "spamreport":
		reason = "spamreport"
	case e.event == "unsubscribe" || e.event == "group_unsubscribe":
		reason = "unsubscribe"
		if d != nil && d.profileID != "" {
			if _, err := tx.Exec(ctx, `
				INSERT INTO subscriptions (workspace_id, profile_id, channel, purpose, status, source) VALUES ($1, $2, 'email', 'marketing', 'unsubscribed', 'sendgrid')
				ON CONFLICT (workspace_id, profile_id, channel, purpose) DO UPDATE
				SET status = EXCLUDED.status, source = EXCLUDED.source, updated_at = now()`, workspaceID, d.profileID); err != nil {
				return fmt.Errorf("unsubscribe profile %s: %w", d.profileID, err)
			}
		}
	}
	if reason != "" && hash != nil {
		if _, err := tx.Exec(ctx, `INSERT INTO suppressions (workspace_id, channel, address_hash, reason, source) VALUES ($1, 'email', $2, $3, 'sendgrid') ON CONFLICT DO NOTHING`,
			workspaceID, hash, reason); err != nil {
			return fmt.Errorf("suppress address after %s: %w", e.event, err)
		}
	}
	return nil
}

// profileEvent is the profile event an event records, if it names a
// delivery to a profile and is one profiles care about.
func (e sgEvent) profileEvent(d *eventDelivery, key string, now time.Time) (ProfileEvent, bool) {
	name, ok := profileEventNames[e.event]
	if !ok || d == nil || d.profileID == "" {
		return ProfileEvent{}, false
	}
	props := map[string]any{"delivery_id": d.id, "template": d.template}
	if d.journeyID != "" {
		props["journey_id"], props["node_id"] = d.journeyID, d.nodeID
	}
	switch e.event {
	case "open":
		props["machine_open"] = e.machineOpen
	case "click":
		props["url"] = e.url
	case "bounce":
		props["bounce_type"] = e.bounceType
	}
	msgID := "sendgrid/" + key
	raw, _ := json.Marshal(map[string]any{"type": events.TypeTrack, "event": name, "messageId": msgID, "timestamp": e.at, "properties": props})
	return ProfileEvent{ProfileID: d.profileID, Message: events.Message{
		Type: events.TypeTrack, MessageID: msgID, Event: name, Properties: props,
		Traits: map[string]any{}, Context: map[string]any{}, Timestamp: e.at, ReceivedAt: now, Raw: raw, Index: -1,
	}}, true
}

// Package events parses and validates records in the Segment HTTP API format
// (identify, track, page, screen, group, alias, batch), so that the official
// Segment libraries work unchanged against Parcours.
//
// Parsing is pure: the receive time is an input, and nothing here touches a
// database.
package events

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits of the Segment HTTP API, which Parcours keeps.
const (
	MaxEventBytes = 32 * 1024
	MaxBatchBytes = 500 * 1024
	// maxFutureSkew is how far in the future a corrected timestamp may be
	// before it is clamped to the receive time.
	maxFutureSkew = time.Minute
)

// Types of message.
const (
	TypeIdentify = "identify"
	TypeTrack    = "track"
	TypePage     = "page"
	TypeScreen   = "screen"
	TypeGroup    = "group"
	TypeAlias    = "alias"
)

// Message is one validated record.
type Message struct {
	Type              string
	MessageID         string
	AnonymousID       string
	UserID            string
	Event             string // track
	Name              string // page, screen
	GroupID           string // group
	PreviousID        string // alias
	Properties        map[string]any
	Traits            map[string]any
	Context           map[string]any
	Integrations      map[string]any
	Timestamp         time.Time // corrected for client clock skew
	OriginalTimestamp time.Time // zero when the client sent none
	SentAt            time.Time // zero when the client sent none
	ReceivedAt        time.Time
	// WriteKey found in the body, if any.
	WriteKey string
	// Raw is the record exactly as received.
	Raw json.RawMessage
	// Index is the record's position in its batch, -1 for a single call.
	Index int
}

// NameOrEvent is the label of the message on a timeline: the event name of a
// track, the page or screen name, else the type.
func (m *Message) NameOrEvent() string {
	switch {
	case m.Event != "":
		return m.Event
	case m.Name != "":
		return m.Name
	}
	return m.Type
}

// ContextTraits are the traits a non-identify call carries in context.traits.
func (m *Message) ContextTraits() map[string]any {
	t, _ := m.Context["traits"].(map[string]any)
	return t
}

// Error says what is wrong with a record: which item of a batch, which
// field, why. Status is the HTTP status the API should answer.
type Error struct {
	Index  int // -1 for a single call or the batch envelope
	Field  string
	Reason string
	Status int
}

func (e *Error) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("batch[%d].%s: %s", e.Index, e.Field, e.Reason)
	}
	return e.Field + ": " + e.Reason
}

// wire is the JSON shape of a record. Ids are raw so that numeric ids, which
// some libraries send, are accepted.
type wire struct {
	Type              string          `json:"type"`
	MessageID         json.RawMessage `json:"messageId"`
	AnonymousID       json.RawMessage `json:"anonymousId"`
	UserID            json.RawMessage `json:"userId"`
	Event             string          `json:"event"`
	Name              string          `json:"name"`
	Category          string          `json:"category"`
	GroupID           json.RawMessage `json:"groupId"`
	PreviousID        json.RawMessage `json:"previousId"`
	Properties        map[string]any  `json:"properties"`
	Traits            map[string]any  `json:"traits"`
	Context           map[string]any  `json:"context"`
	Integrations      map[string]any  `json:"integrations"`
	Timestamp         string          `json:"timestamp"`
	OriginalTimestamp string          `json:"originalTimestamp"`
	SentAt            string          `json:"sentAt"`
	WriteKey          string          `json:"writeKey"`
}

// envelope is what a batch shares with its items.
type envelope struct {
	Context      map[string]any
	Integrations map[string]any
	SentAt       string
}

// ParseSingle parses the body of /v1/{identify,track,...}. typ is the call's
// type, from the path; a body "type" that disagrees is an error.
func ParseSingle(body []byte, typ string, receivedAt time.Time) (Message, error) {
	if len(body) > MaxEventBytes {
		return Message{}, &Error{Index: -1, Field: "body", Reason: fmt.Sprintf("a record may be at most %d KB; this one is %d bytes", MaxEventBytes/1024, len(body)), Status: 413}
	}
	return parseItem(body, typ, envelope{}, receivedAt, -1)
}

// Rejected is a batch item that failed validation, kept with its reason.
type Rejected struct {
	Err *Error
	Raw json.RawMessage
}

// ParseBatch parses the body of /v1/batch. Valid items are returned in
// order; invalid ones are returned apart with their reason, so that one bad
// record does not cost the others. err is set only when the envelope itself
// is unusable.
func ParseBatch(body []byte, receivedAt time.Time) (msgs []Message, rejected []Rejected, writeKey string, err error) {
	if len(body) > MaxBatchBytes {
		return nil, nil, "", &Error{Index: -1, Field: "batch", Reason: fmt.Sprintf("a batch may be at most %d KB; this one is %d bytes: send smaller batches", MaxBatchBytes/1024, len(body)), Status: 413}
	}
	var b struct {
		Batch        []json.RawMessage `json:"batch"`
		Context      map[string]any    `json:"context"`
		Integrations map[string]any    `json:"integrations"`
		SentAt       string            `json:"sentAt"`
		WriteKey     string            `json:"writeKey"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, nil, "", &Error{Index: -1, Field: "batch", Reason: "the body is not a JSON object with a batch list: " + err.Error(), Status: 400}
	}
	if len(b.Batch) == 0 {
		return nil, nil, b.WriteKey, &Error{Index: -1, Field: "batch", Reason: "is missing or empty: send a list of records", Status: 400}
	}
	env := envelope{Context: b.Context, Integrations: b.Integrations, SentAt: b.SentAt}
	msgs = make([]Message, 0, len(b.Batch))
	for i, raw := range b.Batch {
		if len(raw) > MaxEventBytes {
			rejected = append(rejected, Rejected{Raw: raw, Err: &Error{Index: i, Field: "(record)", Reason: fmt.Sprintf("a record may be at most %d KB; this one is %d bytes", MaxEventBytes/1024, len(raw)), Status: 413}})
			continue
		}
		m, err := parseItem(raw, "", env, receivedAt, i)
		if err != nil {
			rejected = append(rejected, Rejected{Raw: raw, Err: err.(*Error)})
			continue
		}
		msgs = append(msgs, m)
	}
	return msgs, rejected, b.WriteKey, nil
}

// ParseRecord parses one stored record again (a quarantine replay): typ is
// the call type of a single call, "" for a batch item that names its own.
func ParseRecord(raw []byte, typ string, receivedAt time.Time) (Message, error) {
	return parseItem(raw, typ, envelope{}, receivedAt, -1)
}

func parseItem(raw []byte, typ string, env envelope, receivedAt time.Time, index int) (Message, error) {
	bad := func(field, reason string) error {
		return &Error{Index: index, Field: field, Reason: reason, Status: 400}
	}
	var w wire
	// Numbers decode as float64, what rules and computed traits compare
	// against; Raw keeps the exact digits as sent.
	if err := json.Unmarshal(raw, &w); err != nil {
		return Message{}, bad("(record)", "is not a valid JSON object: "+err.Error())
	}
	if typ != "" && w.Type != "" && w.Type != typ {
		return Message{}, bad("type", fmt.Sprintf("is %q but this endpoint takes %q records", w.Type, typ))
	}
	if typ == "" {
		typ = w.Type
	}
	switch typ {
	case TypeIdentify, TypeTrack, TypePage, TypeScreen, TypeGroup, TypeAlias:
	case "":
		return Message{}, bad("type", "is missing: each batch record needs one of identify, track, page, screen, group, alias")
	default:
		return Message{}, bad("type", fmt.Sprintf("%q is not one of identify, track, page, screen, group, alias", typ))
	}
	m := Message{
		Type:         typ,
		Event:        strings.TrimSpace(w.Event),
		Name:         strings.TrimSpace(w.Name),
		Properties:   orEmpty(w.Properties),
		Traits:       orEmpty(w.Traits),
		Context:      mergeMaps(env.Context, w.Context),
		Integrations: mergeMaps(env.Integrations, w.Integrations),
		WriteKey:     w.WriteKey,
		ReceivedAt:   receivedAt.UTC().Truncate(time.Microsecond), // PostgreSQL's precision
		Raw:          json.RawMessage(raw),
		Index:        index,
	}
	var err error
	ids := []struct {
		field string
		raw   json.RawMessage
		dst   *string
	}{
		{"messageId", w.MessageID, &m.MessageID},
		{"anonymousId", w.AnonymousID, &m.AnonymousID},
		{"userId", w.UserID, &m.UserID},
		{"groupId", w.GroupID, &m.GroupID},
		{"previousId", w.PreviousID, &m.PreviousID},
	}
	for _, id := range ids {
		if *id.dst, err = idString(id.raw); err != nil {
			return Message{}, bad(id.field, err.Error())
		}
	}
	if m.Type == TypePage && m.Name == "" {
		if c := strings.TrimSpace(w.Category); c != "" {
			m.Name = c
		}
	}
	switch {
	case m.Type == TypeAlias && (m.UserID == "" || m.PreviousID == ""):
		return Message{}, bad("previousId", "an alias needs both userId and previousId")
	case m.Type != TypeAlias && m.UserID == "" && m.AnonymousID == "":
		return Message{}, bad("userId", "is missing: every record needs a userId or an anonymousId")
	case m.Type == TypeTrack && m.Event == "":
		return Message{}, bad("event", "is missing: a track call needs the name of the event, e.g. \"Order Completed\"")
	case m.Type == TypeGroup && m.GroupID == "":
		return Message{}, bad("groupId", "is missing: a group call needs a groupId")
	}
	if m.MessageID == "" {
		// Segment's own API accepts records without a messageId; they cannot
		// be deduplicated, so each gets a fresh one.
		m.MessageID = "parcours-" + randomHex(16)
	}
	if len(m.MessageID) > 200 {
		return Message{}, bad("messageId", "may be at most 200 characters")
	}

	if m.OriginalTimestamp, err = parseTime(firstNonEmpty(w.OriginalTimestamp, w.Timestamp)); err != nil {
		return Message{}, bad("timestamp", err.Error())
	}
	if m.SentAt, err = parseTime(firstNonEmpty(w.SentAt, env.SentAt)); err != nil {
		return Message{}, bad("sentAt", err.Error())
	}
	m.Timestamp = CorrectTimestamp(m.OriginalTimestamp, m.SentAt, m.ReceivedAt)
	return m, nil
}

// CorrectTimestamp returns when a record happened on the server's clock:
// receivedAt − (sentAt − originalTimestamp), which removes the client's clock
// skew (Segment's rule). Without sentAt the client's timestamp is used as is;
// without any timestamp, receivedAt. A result in the future is clamped to
// receivedAt.
func CorrectTimestamp(original, sentAt, receivedAt time.Time) time.Time {
	ts := receivedAt
	switch {
	case !original.IsZero() && !sentAt.IsZero():
		ts = receivedAt.Add(-sentAt.Sub(original))
	case !original.IsZero():
		ts = original
	}
	if ts.After(receivedAt.Add(maxFutureSkew)) {
		ts = receivedAt
	}
	return ts.UTC().Truncate(time.Microsecond)
}

func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 date-time such as 2026-11-29T08:30:00Z", s)
}

// idString accepts a JSON string or number as an identifier.
func idString(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return strings.TrimSpace(s), nil
	}
	if _, err := strconv.ParseFloat(string(raw), 64); err == nil {
		return string(raw), nil
	}
	return "", fmt.Errorf("must be a string or a number, not %s", raw)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// mergeMaps returns base overlaid with over, one level deep (Segment's batch
// rule: an item's own context keys win over the batch's).
func mergeMaps(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

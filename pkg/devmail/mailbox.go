package devmail

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"

	"github.com/parcours/parcours/pkg/channel"
)

// APIKey is the SendGrid key the mailbox accepts and Configure stores: not
// a secret, the mailbox only ever runs inside `parcours dev`.
const APIKey = "SG.parcours-dev-mailbox"

// Path is where the API serves the mailbox: a channel's base URL is
// <API URL>/dev/sendgrid, and the SendGrid client posts to
// <base URL>/v3/mail/send.
const Path = "/dev/sendgrid"

// DefaultMax is how many messages a mailbox keeps (the oldest go first).
const DefaultMax = 500

// Message is a message the mailbox accepted.
type Message struct {
	// ID is the X-Message-Id the mailbox answered.
	ID         string
	ReceivedAt time.Time
	From       Address
	To         Address
	Subject    string
	HTML, Text string
	// CustomArgs are its personalization's: parcours_delivery_id,
	// parcours_workspace_id, parcours_journey_id (ids only).
	CustomArgs map[string]string
	Headers    map[string]string
	// Events are the delivery events posted back for it, in order
	// (delivered, open, click).
	Events []string
}

// WorkspaceID is the workspace that sent the message ("" if unknown).
func (m Message) WorkspaceID() string { return m.CustomArgs["parcours_workspace_id"] }

// Mailbox is the fake SendGrid. It implements http.Handler for POST
// .../v3/mail/send and keeps the last Max messages in memory. When
// configured (Configure), it also posts SendGrid's signed Event Webhook
// back to the API — "delivered" for every message, "open" and "click" when
// asked (Simulate) — so delivery reports and timelines work in dev as they
// do with SendGrid.
type Mailbox struct {
	max    int
	key    *ecdsa.PrivateKey
	client *http.Client
	logger *slog.Logger
	now    func() time.Time
	// DeliveredAfter is how long after accepting a message its "delivered"
	// event is posted (SendGrid's come seconds later). Default 1s.
	DeliveredAfter time.Duration

	mu        sync.Mutex
	msgs      []Message // oldest first
	eventsURL string    // the API's base URL; "" posts no events
}

// New returns a mailbox keeping the last max messages (DefaultMax if max <= 0).
func New(max int, logger *slog.Logger) (*Mailbox, error) {
	if max <= 0 {
		max = DefaultMax
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate the dev mailbox's event webhook key: %w", err)
	}
	// Events go to this very process; 10 s is far more than a local post needs.
	return &Mailbox{max: max, key: key, client: &http.Client{Timeout: 10 * time.Second}, logger: logger, now: time.Now, DeliveredAfter: time.Second}, nil
}

// Capacity is how many messages the mailbox keeps.
func (m *Mailbox) Capacity() int { return m.max }

// PublicKey is the event webhook verification key, as SendGrid shows one
// (base64 of the DER public key).
func (m *Mailbox) PublicKey() string {
	der, _ := x509.MarshalPKIXPublicKey(&m.key.PublicKey)
	return base64.StdEncoding.EncodeToString(der)
}

// ServeHTTP answers POST .../v3/mail/send as SendGrid does: 401 without the
// key, 400 with SendGrid's error body for a malformed message, else 202
// with X-Message-Id.
func (m *Mailbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/v3/mail/send") {
		WriteError(w, http.StatusNotFound, "not found", "")
		return
	}
	if e := Authorized(r, APIKey); e != nil {
		e.Write(w)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 30<<20)) // SendGrid's limit is 30 MB
	if err != nil {
		WriteError(w, http.StatusBadRequest, "unreadable body", "")
		return
	}
	mail, werr := ParseMail(raw)
	if werr != nil {
		werr.Write(w)
		return
	}
	// One X-Message-Id per request, as SendGrid; each recipient's copy is
	// <X-Message-Id>.<n>, as SendGrid's sg_message_id extends it.
	reqID := randomID()
	var got []Message
	for i, e := range mail.Messages() {
		got = append(got, Message{
			ID: reqID + "." + strconv.Itoa(i), ReceivedAt: m.now().UTC(),
			From: e.From, To: e.To, Subject: e.Subject, HTML: e.HTML, Text: e.Text,
			CustomArgs: e.CustomArgs, Headers: e.Headers,
		})
	}
	m.mu.Lock()
	m.msgs = append(m.msgs, got...)
	if len(m.msgs) > m.max {
		m.msgs = append([]Message(nil), m.msgs[len(m.msgs)-m.max:]...)
	}
	post := m.eventsURL != ""
	m.mu.Unlock()
	w.Header().Set("X-Message-Id", reqID)
	w.WriteHeader(http.StatusAccepted)
	if post {
		go func() {
			time.Sleep(m.DeliveredAfter)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			for _, msg := range got {
				if err := m.Simulate(ctx, msg.ID, "delivered"); err != nil {
					m.logger.Warn("dev mailbox: post the delivered event", "err", err)
				}
			}
		}()
	}
}

// List returns the messages of a workspace (those that name no workspace
// too), newest first.
func (m *Mailbox) List(workspaceID string) []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Message, 0, len(m.msgs))
	for i := len(m.msgs) - 1; i >= 0; i-- {
		if ws := m.msgs[i].WorkspaceID(); ws == "" || ws == workspaceID {
			out = append(out, m.msgs[i])
		}
	}
	return out
}

// Get returns a message of a workspace by id.
func (m *Mailbox) Get(workspaceID, id string) (Message, bool) {
	for _, msg := range m.List(workspaceID) {
		if msg.ID == id {
			return msg, true
		}
	}
	return Message{}, false
}

// Events a mailbox can post for a message.
var simulated = map[string]bool{"delivered": true, "open": true, "click": true}

// Simulate posts one SendGrid event about a message (delivered, open or
// click) to the API's Event Webhook, signed with the mailbox's key, as
// SendGrid would when the person's mail server took it, or the person
// opened it or clicked its first link.
func (m *Mailbox) Simulate(ctx context.Context, id, event string) error {
	if !simulated[event] {
		return fmt.Errorf("the dev mailbox simulates delivered, open and click, not %q", event)
	}
	m.mu.Lock()
	base := m.eventsURL
	var msg *Message
	for i := range m.msgs {
		if m.msgs[i].ID == id {
			msg = &m.msgs[i]
		}
	}
	if msg == nil {
		m.mu.Unlock()
		return errors.New("no such message in the dev mailbox")
	}
	ev := map[string]any{
		"email": msg.To.Email, "timestamp": m.now().Unix(), "event": event,
		"sg_event_id": randomID(), "sg_message_id": msg.ID,
	}
	for k, v := range msg.CustomArgs {
		ev[k] = v
	}
	if event == "click" {
		ev["url"] = firstLink(msg.HTML)
	}
	ws := msg.WorkspaceID()
	m.mu.Unlock()
	if base == "" || ws == "" {
		return errors.New("the dev mailbox does not know where to post events (Configure was not called, or the message names no workspace)")
	}
	body, err := json.Marshal([]any{ev})
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(m.now().Unix(), 10)
	h := sha256.Sum256(append([]byte(ts), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, m.key, h[:])
	if err != nil {
		return fmt.Errorf("sign event: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/webhooks/sendgrid/"+ws, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(eventwebhook.VerificationHTTPHeader, base64.StdEncoding.EncodeToString(sig))
	req.Header.Set(eventwebhook.TimestampHTTPHeader, ts)
	resp, err := m.client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s event: %w", event, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		return fmt.Errorf("post %s event: the API answered %d: %s", event, resp.StatusCode, b)
	}
	m.mu.Lock()
	for i := range m.msgs {
		if m.msgs[i].ID == id {
			m.msgs[i].Events = append(m.msgs[i].Events, event)
		}
	}
	m.mu.Unlock()
	return nil
}

func randomID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// firstLink is the first http(s) link of an HTML body, for a simulated click.
func firstLink(html string) string {
	for _, q := range []string{`href="`, `href='`} {
		if i := strings.Index(html, q); i >= 0 {
			rest := html[i+len(q):]
			if j := strings.IndexAny(rest, `"'`); j >= 0 && strings.HasPrefix(rest, "http") {
				return rest[:j]
			}
		}
	}
	return "https://example.com/"
}

// Configure points a workspace's email channel at this mailbox, served by
// the API at apiURL (the API's base URL as this process reaches it): when
// the workspace has no email channel, or has one on a dev mailbox (of an
// earlier start, maybe on another port). A channel configured for a real
// provider is left alone. The channel's event webhook key becomes the
// mailbox's, so the events it posts back verify. It reports whether the
// channel now points at the mailbox.
func (m *Mailbox) Configure(ctx context.Context, settings *channel.Store, workspaceID, apiURL string) (bool, error) {
	apiURL = strings.TrimRight(apiURL, "/")
	from, name := "hello@parcours.local", "Parcours (dev)"
	cur, err := settings.Email(ctx, workspaceID)
	switch {
	case errors.Is(err, channel.ErrNotConfigured):
	case err != nil:
		return false, err
	case !strings.HasSuffix(strings.TrimRight(cur.BaseURL, "/"), Path):
		return false, nil // a real provider: not ours to change
	default:
		from, name = cur.FromEmail, cur.FromName
	}
	pub := m.PublicKey()
	if _, err := settings.PutEmailSettings(ctx, workspaceID, channel.EmailInput{
		APIKey: APIKey, FromEmail: from, FromName: name, BaseURL: apiURL + Path, EventWebhookPublicKey: &pub,
	}); err != nil {
		return false, fmt.Errorf("point the email channel at the dev mailbox: %w", err)
	}
	m.mu.Lock()
	m.eventsURL = apiURL
	m.mu.Unlock()
	return true, nil
}

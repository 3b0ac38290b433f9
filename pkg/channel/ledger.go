package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parcours/parcours/pkg/identity"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/template"
)

// Delivery statuses: see docs/delivery.md.
const (
	StatusClaimed = "claimed"
	StatusSent    = "sent"
	StatusFailed  = "failed"
	StatusSkipped = "skipped"
	StatusUnknown = "unknown"
)

// SendRequest asks for one message. It carries ids only: it is an activity
// argument, and Temporal history cannot be erased.
type SendRequest struct {
	// BusinessKey names the step exactly once per workspace, e.g.
	// journey/<id>/v<version>/<profile>/<entry>/<node>.
	BusinessKey  string
	WorkspaceID  string
	ProfileID    string
	TemplateSlug string
	Channel      string // email, sms or webhook
	Class        string // marketing or transactional
	JourneyID    string
	NodeID       string
	// ToEmail sends to this address instead of the profile's: API test sends
	// only. Workflows never set it (it would put an address in history).
	ToEmail string
	// EventID is the record that started the journey run: templates read
	// it as `event` (the cart's items in a rescue email).
	EventID int64
	// URL, for a journey's webhook node: post the profile to this URL
	// (signed with the workspace's webhook secret) instead of rendering a
	// template for the webhook channel.
	URL string
	// OnPolicy is what a marketing send to a profile does when the
	// workspace's frequency caps or quiet hours hold it back (policy.go):
	// PolicyDefer leaves the delivery claimed with DeferredUntil set, for
	// the caller to send again then; anything else records it skipped
	// with the reason (frequency_cap, quiet_hours).
	OnPolicy string
	// Now is the caller's clock (a workflow's time) for the policy check;
	// the later of it and the wall clock is used. Zero: the wall clock.
	Now time.Time
}

// Delivery is one row of the ledger.
type Delivery struct {
	ID                string     `json:"id"`
	BusinessKey       string     `json:"business_key"`
	TemplateID        string     `json:"template_id,omitempty"`
	ProfileID         string     `json:"profile_id,omitempty"`
	Channel           string     `json:"channel"`
	Status            string     `json:"status"`
	Reason            string     `json:"reason,omitempty"`
	ProviderMessageID string     `json:"provider_message_id,omitempty"`
	Attempts          int        `json:"attempts"`
	Class             string     `json:"class"`
	JourneyID         string     `json:"journey_id,omitempty"`
	NodeID            string     `json:"node_id,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
	SentAt            *time.Time `json:"sent_at,omitempty"`
	// First occurrences reported by the provider's event webhook.
	DeliveredAt     *time.Time `json:"delivered_at,omitempty"`
	OpenedAt        *time.Time `json:"opened_at,omitempty"`
	MachineOpenedAt *time.Time `json:"machine_opened_at,omitempty"`
	ClickedAt       *time.Time `json:"clicked_at,omitempty"`
	BouncedAt       *time.Time `json:"bounced_at,omitempty"`
	DroppedAt       *time.Time `json:"dropped_at,omitempty"`
	SpamReportedAt  *time.Time `json:"spam_reported_at,omitempty"`
	UnsubscribedAt  *time.Time `json:"unsubscribed_at,omitempty"`
	// DeferredUntil is when a send held back by a delivery policy (Reason
	// frequency_cap or quiet_hours) is tried again; set while claimed.
	DeferredUntil *time.Time `json:"deferred_until,omitempty"`
	// Segments is the number of parts an SMS took (what Twilio bills).
	Segments int `json:"segments,omitempty"`
	// ErrorCode is the provider's code of a refusal or failed delivery
	// (Twilio's 21211, 30003, ...).
	ErrorCode string `json:"error_code,omitempty"`
}

// Ledger sends messages at most once per business key (see docs/delivery.md
// for the one window a crash leaves and how each class handles it).
type Ledger struct {
	Pool      *pgxpool.Pool
	Settings  *Store
	Templates *template.Store
	Profiles  *profile.Store
	SendGrid  *SendGrid
	Webhook   *Webhook
	// Twilio sends SMS; nil refuses sms sends (permanent failure).
	Twilio *Twilio
	// PublicURL is the API's public base URL, for unsubscribe links.
	PublicURL string
	Logger    *slog.Logger
}

const deliveryCols = `id::text, business_key, coalesce(template_id::text, ''), coalesce(profile_id::text, ''), channel, status, reason,
	provider_message_id, attempts, class, coalesce(journey_id, ''), coalesce(node_id, ''), created_at, sent_at,
	delivered_at, opened_at, machine_opened_at, clicked_at, bounced_at, dropped_at, spam_reported_at, unsubscribed_at, deferred_until,
	coalesce(segments, 0), coalesce(error_code, '')`

func scanDelivery(row pgx.Row) (Delivery, error) {
	var d Delivery
	err := row.Scan(&d.ID, &d.BusinessKey, &d.TemplateID, &d.ProfileID, &d.Channel, &d.Status, &d.Reason,
		&d.ProviderMessageID, &d.Attempts, &d.Class, &d.JourneyID, &d.NodeID, &d.CreatedAt, &d.SentAt,
		&d.DeliveredAt, &d.OpenedAt, &d.MachineOpenedAt, &d.ClickedAt, &d.BouncedAt, &d.DroppedAt, &d.SpamReportedAt, &d.UnsubscribedAt,
		&d.DeferredUntil, &d.Segments, &d.ErrorCode)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, ErrNotFound
	}
	return d, err
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (r SendRequest) validate() error {
	switch {
	case r.BusinessKey == "" || len(r.BusinessKey) > 500:
		return &FieldError{"business_key", "must be 1-500 characters"}
	case r.Channel != ChannelEmail && r.Channel != ChannelWebhook && r.Channel != ChannelSMS:
		return &FieldError{"channel", "must be email, sms or webhook"}
	case r.Class != Marketing && r.Class != Transactional:
		return &FieldError{"class", "must be marketing or transactional"}
	case r.TemplateSlug == "" && r.URL == "":
		return &FieldError{"template", "is required"}
	case r.ProfileID == "" && r.ToEmail == "":
		return &FieldError{"profile_id", "is required"}
	}
	return nil
}

// Send sends one message, once. A delivery already decided (sent, failed,
// skipped, unknown) is returned as it is without calling the provider. A
// permanent failure returns the failed delivery and a *SendError with
// Permanent set; a retryable one returns a *SendError and leaves the row
// claimed for the next attempt.
func (l *Ledger) Send(ctx context.Context, req SendRequest) (Delivery, error) {
	if err := req.validate(); err != nil {
		return Delivery{}, err
	}
	d, proceed, err := l.claim(ctx, req)
	if err != nil || !proceed {
		return d, err
	}
	msg, addr, err := l.prepare(ctx, req, &d)
	if err != nil {
		var skip *skipError
		var se *SendError
		switch {
		case errors.As(err, &skip):
			return l.finish(ctx, req.WorkspaceID, d, StatusSkipped, skip.reason, "")
		case errors.As(err, &se) && se.Permanent:
			d, ferr := l.finish(ctx, req.WorkspaceID, d, StatusFailed, se.Reason, "")
			if ferr != nil {
				return d, ferr
			}
			return d, se
		}
		return d, err
	}
	// The delivery policy (frequency caps, quiet hours), then a
	// compare-and-set: only the attempt that owns the claim calls the provider.
	d, held, err := l.admit(ctx, req, d, addr)
	if err != nil || held {
		return d, err
	}
	res, sendErr := msg(ctx)
	if sendErr == nil {
		return l.finish(ctx, req.WorkspaceID, d, StatusSent, "", res.ProviderMessageID)
	}
	var se *SendError
	if !errors.As(sendErr, &se) {
		se = &SendError{Reason: sendErr.Error()}
	}
	if se.Permanent {
		d, err := l.finish(ctx, req.WorkspaceID, d, StatusFailed, se.Reason, "")
		if err != nil {
			return d, err
		}
		return d, se
	}
	// Retryable. If the provider certainly did not take it, release the
	// claim so the next attempt sends whatever the class; otherwise the row
	// stays in flight and the next attempt applies the class's rule.
	if _, err := l.Pool.Exec(ctx, `UPDATE deliveries SET in_flight = NOT $3, reason = $4, updated_at = now() WHERE workspace_id = $1 AND id = $2`,
		req.WorkspaceID, d.ID, se.NotSent, se.Reason); err != nil {
		return d, fmt.Errorf("record retryable failure of delivery %s: %w (after %w)", d.ID, err, se)
	}
	d.Reason = se.Reason
	return d, se
}

// claim inserts the ledger row, or decides what to do with an existing one.
func (l *Ledger) claim(ctx context.Context, req SendRequest) (Delivery, bool, error) {
	var d Delivery
	proceed := false
	err := pgx.BeginFunc(ctx, l.Pool, func(tx pgx.Tx) error {
		var err error
		d, err = scanDelivery(tx.QueryRow(ctx, `
			INSERT INTO deliveries (workspace_id, business_key, profile_id, channel, status, class, journey_id, node_id)
			VALUES ($1, $2, $3, $4, 'claimed', $5, $6, $7)
			ON CONFLICT (workspace_id, business_key) DO NOTHING RETURNING `+deliveryCols,
			req.WorkspaceID, req.BusinessKey, nullIfEmpty(req.ProfileID), req.Channel, req.Class, nullIfEmpty(req.JourneyID), nullIfEmpty(req.NodeID)))
		if err == nil {
			proceed = true
			return nil
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		var inFlight bool
		d, err = scanDelivery(tx.QueryRow(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE workspace_id = $1 AND business_key = $2 FOR UPDATE`,
			req.WorkspaceID, req.BusinessKey))
		if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT in_flight FROM deliveries WHERE workspace_id = $1 AND id = $2`, req.WorkspaceID, d.ID).Scan(&inFlight); err != nil {
			return err
		}
		if d.Status != StatusClaimed {
			return nil // decided: the outcome stands
		}
		if inFlight && d.Class == Marketing {
			// A previous attempt may have handed it to the provider: at most once.
			d, err = scanDelivery(tx.QueryRow(ctx, `
				UPDATE deliveries SET status = 'unknown', in_flight = false, updated_at = now(),
				reason = 'a previous attempt stopped after calling the provider; not sent again (marketing: at most once)'
				WHERE workspace_id = $1 AND id = $2 RETURNING `+deliveryCols, req.WorkspaceID, d.ID))
			return err
		}
		// Released by a retryable failure, or transactional (at least once): take over.
		d, err = scanDelivery(tx.QueryRow(ctx, `
			UPDATE deliveries SET attempts = attempts + 1, in_flight = false, updated_at = now()
			WHERE workspace_id = $1 AND id = $2 RETURNING `+deliveryCols, req.WorkspaceID, d.ID))
		proceed = err == nil
		return err
	})
	if err != nil {
		return d, false, fmt.Errorf("claim delivery %s: %w", req.BusinessKey, err)
	}
	return d, proceed, nil
}

func (l *Ledger) finish(ctx context.Context, workspaceID string, d Delivery, status, reason, providerID string) (Delivery, error) {
	out, err := scanDelivery(l.Pool.QueryRow(ctx, `
		UPDATE deliveries SET status = $3, reason = $4, provider_message_id = $5, in_flight = false, deferred_until = NULL, updated_at = now(),
		sent_at = CASE WHEN $3 = 'sent' THEN now() END, template_id = coalesce($6::uuid, template_id)
		WHERE workspace_id = $1 AND id = $2 RETURNING `+deliveryCols,
		workspaceID, d.ID, status, reason, providerID, nullIfEmpty(d.TemplateID)))
	if err != nil {
		// The provider may have taken it; the row stays claimed and in flight,
		// and the next attempt applies the class's rule.
		return d, fmt.Errorf("record delivery %s as %s: %w", d.ID, status, err)
	}
	return out, nil
}

// skipError is a send that must not happen (consent, suppression, no address).
type skipError struct{ reason string }

func (e *skipError) Error() string { return "skipped: " + e.reason }

func permanent(format string, a ...any) *SendError {
	return &SendError{Permanent: true, NotSent: true, Reason: fmt.Sprintf(format, a...)}
}

// prepare loads everything, checks consent, renders, and returns the
// provider call to make and the address it goes to.
func (l *Ledger) prepare(ctx context.Context, req SendRequest, d *Delivery) (func(context.Context) (Result, error), string, error) {
	if req.URL != "" {
		return l.prepareNodeWebhook(ctx, req, d)
	}
	tpl, err := l.Templates.BySlug(ctx, req.WorkspaceID, req.TemplateSlug)
	if errors.Is(err, template.ErrNotFound) {
		return nil, "", permanent("template %q not found", req.TemplateSlug)
	}
	if err != nil {
		return nil, "", err
	}
	d.TemplateID = tpl.ID
	if tpl.Channel != req.Channel {
		return nil, "", permanent("template %q is for %s, not %s", tpl.Slug, tpl.Channel, req.Channel)
	}
	lk := l.linksFor(req, d.ID)
	data := template.Data{Journey: map[string]any{}, UnsubscribeURL: lk.unsubscribe, PreferencesURL: lk.preferences}
	if req.JourneyID != "" {
		data.Journey = map[string]any{"id": req.JourneyID, "node": req.NodeID}
	}
	if req.EventID != 0 {
		if data.Event, err = l.eventData(ctx, req.WorkspaceID, req.EventID); err != nil {
			return nil, "", err
		}
	}
	var view *profile.View
	if req.ProfileID != "" {
		view, err = l.Profiles.Get(ctx, req.WorkspaceID, req.ProfileID)
		if errors.Is(err, profile.ErrNotFound) {
			return nil, "", &skipError{"profile not found (erased?)"}
		}
		if err != nil {
			return nil, "", err
		}
		if data.Profile, err = profileData(view); err != nil {
			return nil, "", err
		}
	}
	addr := req.ToEmail
	if req.Channel == ChannelEmail && addr == "" {
		addr = emailOf(view)
		if addr == "" {
			return nil, "", &skipError{"the profile has no email address"}
		}
	}
	if req.Channel == ChannelSMS {
		if addr, err = smsAddress(view); err != nil {
			return nil, "", err
		}
	}
	if view != nil {
		var status string
		err := l.Pool.QueryRow(ctx, `SELECT status FROM subscriptions WHERE workspace_id = $1 AND profile_id = $2 AND channel = $3 AND purpose = $4`,
			req.WorkspaceID, view.ID, req.Channel, req.Class).Scan(&status)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, "", fmt.Errorf("load consent of %s: %w", view.ID, err)
		}
		if status == "unsubscribed" {
			return nil, "", &skipError{fmt.Sprintf("unsubscribed from %s %s", req.Class, req.Channel)}
		}
	}
	if addr != "" {
		var reason string
		// An unsubscribe suppression stops marketing only; bounces, spam
		// reports and manual suppressions stop everything.
		err := l.Pool.QueryRow(ctx, `
			SELECT reason FROM suppressions WHERE workspace_id = $1 AND channel = $2 AND address_hash = $3
			AND ($4 = 'marketing' OR reason <> 'unsubscribe') ORDER BY reason LIMIT 1`,
			req.WorkspaceID, req.Channel, l.Settings.AddressHash(req.WorkspaceID, addr), req.Class).Scan(&reason)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, "", fmt.Errorf("check suppressions: %w", err)
		}
		if reason != "" {
			return nil, "", &skipError{"address suppressed (" + reason + ")"}
		}
	}
	if tpl.Kind != "" && tpl.Kind != template.KindMessage {
		return nil, "", permanent("template %q is a %s, not a message: send a message that renders it", tpl.Slug, tpl.Kind)
	}
	compiled, err := l.Templates.Compile(ctx, req.WorkspaceID, tpl)
	if err != nil {
		return nil, "", permanent("template %q does not compile: %v", tpl.Slug, err)
	}
	out, err := compiled.Render(ctx, data)
	if err != nil {
		return nil, "", permanent("render template %q: %v", tpl.Slug, err)
	}

	switch req.Channel {
	case ChannelEmail:
		settings, key, err := l.Settings.emailWithKey(ctx, req.WorkspaceID)
		if errors.Is(err, ErrNotConfigured) {
			return nil, "", permanent("the email channel is not configured (PUT /v1/channels/email)")
		}
		if err != nil {
			return nil, "", err
		}
		m := Email{
			FromEmail: settings.FromEmail, FromName: settings.FromName, To: addr,
			Subject: out.Subject, HTML: withPreheader(out.HTML, out.Preheader), Text: out.Text,
			CustomArgs: map[string]string{"parcours_delivery_id": d.ID, "parcours_workspace_id": req.WorkspaceID},
		}
		if req.JourneyID != "" {
			m.CustomArgs["parcours_journey_id"] = req.JourneyID
		}
		m.UnsubscribeURL = lk.unsubscribe
		return func(ctx context.Context) (Result, error) {
			return l.SendGrid.Send(ctx, key, settings.BaseURL, m)
		}, addr, nil
	case ChannelSMS:
		return l.prepareSMS(ctx, req, d, addr, out)
	default: // webhook
		settings, secret, err := l.Settings.webhookWithSecret(ctx, req.WorkspaceID)
		if errors.Is(err, ErrNotConfigured) {
			return nil, "", permanent("the webhook channel is not configured (PUT /v1/channels/webhook)")
		}
		if err != nil {
			return nil, "", err
		}
		body, err := json.Marshal(map[string]any{
			"type": "message", "delivery_id": d.ID, "workspace_id": req.WorkspaceID, "profile_id": req.ProfileID,
			"journey_id": req.JourneyID, "node_id": req.NodeID, "template": tpl.Slug, "class": req.Class,
			"subject": out.Subject, "text": out.Text,
		})
		if err != nil {
			return nil, "", fmt.Errorf("encode webhook body: %w", err)
		}
		return func(ctx context.Context) (Result, error) {
			return l.Webhook.Post(ctx, settings.URL, secret, d.ID, body)
		}, settings.URL, nil
	}
}

// withPreheader puts the preheader, hidden, at the top of the HTML: what
// inbox previews show after the subject.
func withPreheader(body, preheader string) string {
	if preheader == "" || body == "" {
		return body
	}
	return `<div style="display:none;max-height:0;overflow:hidden">` + html.EscapeString(preheader) + "</div>\n" + body
}

// profileData is the profile as templates see it: plain JSON values.
func profileData(v *profile.View) (map[string]any, error) {
	raw, err := json.Marshal(v.Profile)
	if err != nil {
		return nil, fmt.Errorf("encode profile %s: %w", v.ID, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decode profile %s: %w", v.ID, err)
	}
	delete(m, "trait_sources")
	return m, nil
}

// emailOf is the profile's email: its email identity (normalised), else
// the email trait.
func emailOf(v *profile.View) string {
	if v == nil {
		return ""
	}
	for _, id := range v.Identities {
		if id.Type == identity.Email {
			return id.Value
		}
	}
	if s, ok := v.Traits["email"].(string); ok {
		return strings.TrimSpace(s)
	}
	return ""
}

// Preview renders a template for a profile without sending anything.
func (l *Ledger) Preview(ctx context.Context, workspaceID string, tpl template.Template, profileID string) (template.Output, error) {
	data := template.Data{}
	if profileID != "" {
		v, err := l.Profiles.Get(ctx, workspaceID, profileID)
		if err != nil {
			return template.Output{}, err
		}
		if data.Profile, err = profileData(v); err != nil {
			return template.Output{}, err
		}
	}
	c, err := l.Templates.Compile(ctx, workspaceID, tpl)
	if err != nil {
		return template.Output{}, err
	}
	return c.Render(ctx, data)
}

// Get loads a delivery by id.
func (l *Ledger) Get(ctx context.Context, workspaceID, id string) (Delivery, error) {
	d, err := scanDelivery(l.Pool.QueryRow(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE workspace_id = $1 AND id = $2`, workspaceID, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return d, fmt.Errorf("load delivery %s: %w", id, err)
	}
	return d, err
}

// List returns the latest deliveries, of one profile when profileID is set.
func (l *Ledger) List(ctx context.Context, workspaceID, profileID string, limit int) ([]Delivery, error) {
	rows, err := l.Pool.Query(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE workspace_id = $1 AND ($2::uuid IS NULL OR profile_id = $2)
		ORDER BY created_at DESC, id LIMIT $3`, workspaceID, nullIfEmpty(profileID), limit)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	if out == nil {
		out = []Delivery{}
	}
	return out, nil
}

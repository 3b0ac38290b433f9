package channel

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parcours/parcours/pkg/identity"
	"github.com/parcours/parcours/pkg/profile"
)

// ConsentChannels are the channels consent is kept for, in display order.
var ConsentChannels = []string{ChannelEmail, "sms", ChannelWebhook}

// Consent sources: who changed a subscription or a suppression.
const (
	SourceAPI             = "api"
	SourcePreferencesPage = "preferences_page"
	SourceUnsubscribeLink = "unsubscribe_link"
	// SourceDefault marks a subscription nobody set: the opt-out model's
	// "subscribed".
	SourceDefault = "default"
)

// Subscription statuses.
const (
	Subscribed   = "subscribed"
	Unsubscribed = "unsubscribed"
)

// ConsentChange is one entry of the consent audit log (consent_log, written
// by database triggers): a subscription set, or an address suppressed or
// lifted, with who did it and when.
type ConsentChange struct {
	ID            int64     `json:"id"`
	At            time.Time `json:"at"`
	Action        string    `json:"action"` // subscribed, unsubscribed, suppressed, lifted
	ProfileID     string    `json:"profile_id,omitempty"`
	Channel       string    `json:"channel"`
	Purpose       string    `json:"purpose,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	SuppressionID string    `json:"suppression_id,omitempty"`
	Source        string    `json:"source"`
	// Actor is who, when the source has several: "key:<id>" for the API.
	Actor string `json:"actor,omitempty"`
}

const consentCols = `id, at, action, coalesce(profile_id::text, ''), channel, coalesce(purpose, ''), coalesce(reason, ''), coalesce(suppression_id::text, ''), source, actor`

func collectChanges(rows pgx.Rows) ([]ConsentChange, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ConsentChange, error) {
		var c ConsentChange
		err := r.Scan(&c.ID, &c.At, &c.Action, &c.ProfileID, &c.Channel, &c.Purpose, &c.Reason, &c.SuppressionID, &c.Source, &c.Actor)
		return c, err
	})
	if out == nil {
		out = []ConsentChange{}
	}
	return out, err
}

// profileAddress is where a channel reaches the profile: its email or phone
// ("" when it has none, and for webhooks, which reach a system).
func profileAddress(v *profile.View, channel string) string {
	switch channel {
	case ChannelEmail:
		return emailOf(v)
	case "sms":
		for _, id := range v.Identities {
			if id.Type == identity.Phone {
				return id.Value
			}
		}
		if s, ok := v.Traits["phone"].(string); ok {
			return identity.NormalizePhone(s)
		}
	}
	return ""
}

// ProfileConsent is a profile's consent: every channel and purpose, with the
// suppressions of its addresses and the audit log.
type ProfileConsent struct {
	ProfileID     string         `json:"profile_id"`
	Subscriptions []Subscription `json:"data"`
	// Suppressions of the profile's current addresses: they stop sends
	// whatever the subscriptions say (an unsubscribe one, marketing only).
	Suppressions []Suppression `json:"suppressions"`
	// History is the latest changes, newest first.
	History []ConsentChange `json:"history"`
}

// Consent returns the profile's consent: a subscription per channel and
// purpose (no record means subscribed, source "default"), the suppressions
// of its addresses, and the latest 100 changes of either.
func (s *Store) Consent(ctx context.Context, workspaceID string, v *profile.View) (ProfileConsent, error) {
	out := ProfileConsent{ProfileID: v.ID, Subscriptions: []Subscription{}, Suppressions: []Suppression{}}
	rows, err := s.pool.Query(ctx, `SELECT channel, purpose, status, source, updated_at FROM subscriptions WHERE workspace_id = $1 AND profile_id = $2`,
		workspaceID, v.ID)
	if err != nil {
		return out, fmt.Errorf("load subscriptions of %s: %w", v.ID, err)
	}
	set, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Subscription, error) {
		sub := Subscription{ProfileID: v.ID}
		err := r.Scan(&sub.Channel, &sub.Purpose, &sub.Status, &sub.Source, &sub.UpdatedAt)
		return sub, err
	})
	if err != nil {
		return out, fmt.Errorf("load subscriptions of %s: %w", v.ID, err)
	}
	for _, ch := range ConsentChannels {
		for _, purpose := range []string{Marketing, Transactional} {
			sub := Subscription{ProfileID: v.ID, Channel: ch, Purpose: purpose, Status: Subscribed, Source: SourceDefault}
			for _, x := range set {
				if x.Channel == ch && x.Purpose == purpose {
					sub = x
				}
			}
			out.Subscriptions = append(out.Subscriptions, sub)
		}
	}
	var channels []string
	var hashes [][]byte
	for _, ch := range ConsentChannels {
		if addr := profileAddress(v, ch); addr != "" {
			channels, hashes = append(channels, ch), append(hashes, s.AddressHash(workspaceID, addr))
		}
	}
	rows, err = s.pool.Query(ctx, `
		SELECT `+suppressionCols+` FROM suppressions s JOIN unnest($2::text[], $3::bytea[]) AS a(channel, hash)
		ON s.channel = a.channel AND s.address_hash = a.hash WHERE s.workspace_id = $1 ORDER BY s.created_at DESC`,
		workspaceID, channels, hashes)
	if err != nil {
		return out, fmt.Errorf("load suppressions of %s: %w", v.ID, err)
	}
	if out.Suppressions, err = collectSuppressions(rows); err != nil {
		return out, fmt.Errorf("load suppressions of %s: %w", v.ID, err)
	}
	rows, err = s.pool.Query(ctx, `
		SELECT `+consentCols+` FROM consent_log l
		WHERE l.workspace_id = $1 AND (l.profile_id = $2 OR EXISTS (
			SELECT 1 FROM unnest($3::text[], $4::bytea[]) AS a(channel, hash) WHERE l.channel = a.channel AND l.address_hash = a.hash))
		ORDER BY l.at DESC, l.id DESC LIMIT 100`, workspaceID, v.ID, channels, hashes)
	if err != nil {
		return out, fmt.Errorf("load consent history of %s: %w", v.ID, err)
	}
	if out.History, err = collectChanges(rows); err != nil {
		return out, fmt.Errorf("load consent history of %s: %w", v.ID, err)
	}
	return out, nil
}

// ChangeSubscriptions records consent changes in one transaction and returns
// them as saved and those that changed a status (what the profile's
// timeline shows). Each change is kept in the consent log with its source,
// actor (who, e.g. key:<id>) and time.
func (s *Store) ChangeSubscriptions(ctx context.Context, workspaceID, actor string, subs []Subscription) ([]Subscription, []Subscription, error) {
	for _, sub := range subs {
		switch {
		case !slices.Contains(ConsentChannels, sub.Channel):
			return nil, nil, &FieldError{"channel", "must be email, sms or webhook"}
		case sub.Purpose != Marketing && sub.Purpose != Transactional:
			return nil, nil, &FieldError{"purpose", "must be marketing or transactional"}
		case sub.Status != Subscribed && sub.Status != Unsubscribed:
			return nil, nil, &FieldError{"status", "must be subscribed or unsubscribed"}
		}
	}
	var saved, changed []Subscription
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := setAudit(ctx, tx, "", actor); err != nil {
			return err
		}
		var err error
		saved, changed, err = changeSubscriptions(ctx, tx, workspaceID, subs)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return saved, changed, nil
}

// setAudit names, for the consent log's triggers, the source of a lift and
// the actor of every change the transaction makes.
func setAudit(ctx context.Context, tx pgx.Tx, source, actor string) error {
	if _, err := tx.Exec(ctx, `SELECT set_config('parcours.consent_source', $1, true), set_config('parcours.consent_actor', $2, true)`, source, actor); err != nil {
		return fmt.Errorf("set consent audit: %w", err)
	}
	return nil
}

func changeSubscriptions(ctx context.Context, tx pgx.Tx, workspaceID string, subs []Subscription) (saved, changed []Subscription, err error) {
	for _, sub := range subs {
		var old *string
		err := tx.QueryRow(ctx, `SELECT status FROM subscriptions WHERE workspace_id = $1 AND profile_id = $2 AND channel = $3 AND purpose = $4 FOR UPDATE`,
			workspaceID, sub.ProfileID, sub.Channel, sub.Purpose).Scan(&old)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, nil, fmt.Errorf("load subscription of %s: %w", sub.ProfileID, err)
		}
		err = tx.QueryRow(ctx, `
			INSERT INTO subscriptions (workspace_id, profile_id, channel, purpose, status, source) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (workspace_id, profile_id, channel, purpose) DO UPDATE
			SET status = EXCLUDED.status, source = EXCLUDED.source, updated_at = now()
			RETURNING updated_at`,
			workspaceID, sub.ProfileID, sub.Channel, sub.Purpose, sub.Status, sub.Source).Scan(&sub.UpdatedAt)
		if err != nil {
			return nil, nil, fmt.Errorf("save subscription of %s: %w", sub.ProfileID, err)
		}
		saved = append(saved, sub)
		if (old == nil && sub.Status == Unsubscribed) || (old != nil && *old != sub.Status) {
			changed = append(changed, sub)
		}
	}
	return saved, changed, nil
}

// Suppression is an address never to send to (or, reason unsubscribe,
// never to send marketing to). The address itself is kept only as a hash.
type Suppression struct {
	ID        string    `json:"id"`
	Channel   string    `json:"channel"`
	Reason    string    `json:"reason"`
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"created_at"`
	// LiftedAt and LiftedBy are set on the answer to a lift.
	LiftedAt *time.Time `json:"lifted_at,omitempty"`
	LiftedBy string     `json:"lifted_by,omitempty"`
}

const suppressionCols = `s.id::text, s.channel, s.reason, s.source, s.created_at`

func collectSuppressions(rows pgx.Rows) ([]Suppression, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Suppression, error) {
		var x Suppression
		err := r.Scan(&x.ID, &x.Channel, &x.Reason, &x.Source, &x.CreatedAt)
		return x, err
	})
	if out == nil {
		out = []Suppression{}
	}
	return out, err
}

// SuppressionReasons are the reasons a suppression may have (opt_out: an
// SMS recipient replied STOP).
var SuppressionReasons = []string{"bounce", "spamreport", "unsubscribe", "manual", "opt_out"}

// NormalizeAddress checks an address for a channel and returns it as the
// ledger hashes it. The error names the field "address".
func NormalizeAddress(channel, address string) (string, error) {
	address = strings.TrimSpace(address)
	switch channel {
	case ChannelEmail:
		if a, err := mail.ParseAddress(address); err != nil || a.Address != address {
			return "", &FieldError{"address", "must be a bare email address such as ana@example.com"}
		}
		return strings.ToLower(address), nil
	case "sms":
		p := identity.NormalizePhone(address)
		if !strings.HasPrefix(p, "+") {
			return "", &FieldError{"address", "must be a phone number in international format such as +33612345678"}
		}
		return p, nil
	case ChannelWebhook:
		if err := checkURL(address); err != nil {
			return "", &FieldError{"address", "must be the http(s) URL of the webhook"}
		}
		return address, nil
	}
	return "", &FieldError{"channel", "must be email, sms or webhook"}
}

// SuppressionFilter narrows a list of suppressions.
type SuppressionFilter struct {
	Channel string
	Reason  string
	// Address finds the suppressions of one address (hashed to search).
	Address string
}

// ErrBadCursor is returned for a cursor this API did not give out.
var ErrBadCursor = errors.New("invalid cursor")

type suppressionCursor struct {
	At time.Time `json:"t"`
	ID string    `json:"i"`
}

// Suppressions lists suppressions, newest first, limit at a time; next is
// the cursor of the following page ("" at the end).
func (s *Store) Suppressions(ctx context.Context, workspaceID string, f SuppressionFilter, cursor string, limit int) ([]Suppression, string, error) {
	before := suppressionCursor{At: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), ID: "ffffffff-ffff-ffff-ffff-ffffffffffff"}
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || json.Unmarshal(raw, &before) != nil || len(before.ID) != 36 {
			return nil, "", ErrBadCursor
		}
	}
	var hash []byte
	if f.Address != "" {
		addr, err := NormalizeAddress(f.Channel, f.Address)
		if err != nil {
			return nil, "", err
		}
		hash = s.AddressHash(workspaceID, addr)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT `+suppressionCols+` FROM suppressions s
		WHERE s.workspace_id = $1 AND ($2 = '' OR s.channel = $2) AND ($3 = '' OR s.reason = $3)
		  AND ($4::bytea IS NULL OR s.address_hash = $4) AND (s.created_at, s.id) < ($5, $6::uuid)
		ORDER BY s.created_at DESC, s.id DESC LIMIT $7`,
		workspaceID, f.Channel, f.Reason, hash, before.At, before.ID, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list suppressions: %w", err)
	}
	out, err := collectSuppressions(rows)
	if err != nil {
		return nil, "", fmt.Errorf("list suppressions: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[len(out)-1]
		raw, _ := json.Marshal(suppressionCursor{At: last.CreatedAt, ID: last.ID})
		next = base64.RawURLEncoding.EncodeToString(raw)
	}
	return out, next, nil
}

// AddSuppression suppresses an address (reason manual unless given).
// created is false when it was already suppressed for that reason (the
// existing one is returned).
func (s *Store) AddSuppression(ctx context.Context, workspaceID, channel, address, reason, source, actor string) (Suppression, bool, error) {
	if !slices.Contains(ConsentChannels, channel) {
		return Suppression{}, false, &FieldError{"channel", "must be email, sms or webhook"}
	}
	if reason == "" {
		reason = "manual"
	}
	if !slices.Contains(SuppressionReasons, reason) {
		return Suppression{}, false, &FieldError{"reason", "must be manual, bounce, spamreport, unsubscribe or opt_out"}
	}
	addr, err := NormalizeAddress(channel, address)
	if err != nil {
		return Suppression{}, false, err
	}
	hash := s.AddressHash(workspaceID, addr)
	var out Suppression
	created := true
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := setAudit(ctx, tx, source, actor); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			INSERT INTO suppressions AS s (workspace_id, channel, address_hash, reason, source) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT DO NOTHING RETURNING `+suppressionCols, workspaceID, channel, hash, reason, source)
		if err != nil {
			return err
		}
		got, err := collectSuppressions(rows)
		if err != nil {
			return err
		}
		if len(got) == 1 {
			out = got[0]
			return nil
		}
		created = false
		rows, err = tx.Query(ctx, `SELECT `+suppressionCols+` FROM suppressions s WHERE s.workspace_id = $1 AND s.channel = $2 AND s.address_hash = $3 AND s.reason = $4`,
			workspaceID, channel, hash, reason)
		if err != nil {
			return err
		}
		if got, err = collectSuppressions(rows); err != nil || len(got) == 0 {
			return errors.Join(err, errors.New("the suppression vanished"))
		}
		out = got[0]
		return nil
	})
	if err != nil {
		return out, false, fmt.Errorf("suppress address: %w", err)
	}
	return out, created, nil
}

// LiftSuppression removes a suppression; the consent log keeps it, lifted
// by source and actor. ErrNotFound when there is no such suppression.
func (s *Store) LiftSuppression(ctx context.Context, workspaceID, id, source, actor string) (Suppression, error) {
	var out Suppression
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := setAudit(ctx, tx, source, actor); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `DELETE FROM suppressions s WHERE s.workspace_id = $1 AND s.id = $2 RETURNING `+suppressionCols, workspaceID, id)
		if err != nil {
			return err
		}
		got, err := collectSuppressions(rows)
		if err != nil {
			return err
		}
		if len(got) == 0 {
			return ErrNotFound
		}
		out = got[0]
		var at time.Time
		if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&at); err != nil {
			return err
		}
		out.LiftedAt, out.LiftedBy = &at, source
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return out, err
	}
	if err != nil {
		return out, fmt.Errorf("lift suppression %s: %w", id, err)
	}
	return out, nil
}

// AddressHistory is the consent log of an address on a channel, newest
// first: when it was suppressed and lifted, and by whom.
func (s *Store) AddressHistory(ctx context.Context, workspaceID, channel, address string) ([]ConsentChange, error) {
	addr, err := NormalizeAddress(channel, address)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+consentCols+` FROM consent_log WHERE workspace_id = $1 AND channel = $2 AND address_hash = $3
		ORDER BY at DESC, id DESC LIMIT 100`, workspaceID, channel, s.AddressHash(workspaceID, addr))
	if err != nil {
		return nil, fmt.Errorf("load address history: %w", err)
	}
	out, err := collectChanges(rows)
	if err != nil {
		return nil, fmt.Errorf("load address history: %w", err)
	}
	return out, nil
}

package channel

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parcours/parcours/pkg/profile"
)

// PreferencesToken identifies whose preferences a preference link opens:
// the workspace, the profile, and the channel the link came through.
type PreferencesToken struct {
	WorkspaceID string
	ProfileID   string
	Channel     string
	// Expires, when set, ends the link's validity. Links in messages do not
	// expire: they must work as long as the message can be read.
	Expires time.Time
}

// SignPreferences returns a preference link token: the ids and expiry, then
// an HMAC-SHA256 of them under the link key. Its "p1" prefix keeps it apart
// from unsubscribe tokens.
func (b *Box) SignPreferences(t PreferencesToken) string {
	exp := "0"
	if !t.Expires.IsZero() {
		exp = strconv.FormatInt(t.Expires.Unix(), 10)
	}
	payload := strings.Join([]string{"p1", t.WorkspaceID, t.ProfileID, t.Channel, exp}, "|")
	mac := hmacSHA256(b.linkKey, []byte(payload))
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(mac)
}

// VerifyPreferences checks a token's signature and expiry at now.
func (b *Box) VerifyPreferences(token string, now time.Time) (PreferencesToken, error) {
	p64, m64, ok := strings.Cut(token, ".")
	if !ok {
		return PreferencesToken{}, ErrBadToken
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	mac, err2 := base64.RawURLEncoding.DecodeString(m64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, hmacSHA256(b.linkKey, payload)) {
		return PreferencesToken{}, ErrBadToken
	}
	f := strings.Split(string(payload), "|")
	if len(f) != 5 || f[0] != "p1" || f[2] == "" {
		return PreferencesToken{}, ErrBadToken
	}
	exp, err := strconv.ParseInt(f[4], 10, 64)
	if err != nil {
		return PreferencesToken{}, ErrBadToken
	}
	t := PreferencesToken{WorkspaceID: f[1], ProfileID: f[2], Channel: f[3]}
	if exp != 0 {
		if t.Expires = time.Unix(exp, 0); !now.Before(t.Expires) {
			return t, ErrBadToken
		}
	}
	return t, nil
}

// Preference is one line of the preference page: marketing on a channel
// that reaches the profile.
type Preference struct {
	Channel    string `json:"channel"`
	Subscribed bool   `json:"subscribed"`
}

// Preferences lists the marketing subscriptions a person manages on the
// preference page: the channels that reach the profile (email, sms) and
// that the workspace sends on (or the link came through), the token's
// channel first.
func (s *Store) Preferences(ctx context.Context, workspaceID string, v *profile.View, first string) ([]Preference, error) {
	c, err := s.Consent(ctx, workspaceID, v)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT channel FROM channel_settings WHERE workspace_id = $1`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("load channels: %w", err)
	}
	configured, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("load channels: %w", err)
	}
	var out []Preference
	for _, ch := range ConsentChannels {
		if profileAddress(v, ch) == "" || (ch != first && !slices.Contains(configured, ch)) {
			continue
		}
		p := Preference{Channel: ch, Subscribed: true}
		for _, sub := range c.Subscriptions {
			if sub.Channel == ch && sub.Purpose == Marketing {
				p.Subscribed = sub.Status == Subscribed
			}
		}
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(a, b Preference) int {
		switch {
		case a.Channel == first && b.Channel != first:
			return -1
		case b.Channel == first && a.Channel != first:
			return 1
		}
		return 0
	})
	return out, nil
}

// SavePreferences applies the preference page: marketing on each channel
// of prefs is set as the person chose, source preferences_page. Opting
// back in also lifts the unsubscribe suppression of the profile's address
// on that channel (the person asked for it; bounces and spam reports stay).
// It returns the subscriptions whose status changed.
func (s *Store) SavePreferences(ctx context.Context, workspaceID string, v *profile.View, prefs []Preference) ([]Subscription, error) {
	subs := make([]Subscription, 0, len(prefs))
	for _, p := range prefs {
		status := Unsubscribed
		if p.Subscribed {
			status = Subscribed
		}
		subs = append(subs, Subscription{ProfileID: v.ID, Channel: p.Channel, Purpose: Marketing, Status: status, Source: SourcePreferencesPage})
	}
	var changed []Subscription
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := setAudit(ctx, tx, SourcePreferencesPage, ""); err != nil {
			return err
		}
		var err error
		if _, changed, err = changeSubscriptions(ctx, tx, workspaceID, subs); err != nil {
			return err
		}
		for _, p := range prefs {
			addr := profileAddress(v, p.Channel)
			if !p.Subscribed || addr == "" {
				continue
			}
			if _, err := tx.Exec(ctx, `DELETE FROM suppressions WHERE workspace_id = $1 AND channel = $2 AND address_hash = $3 AND reason = 'unsubscribe'`,
				workspaceID, p.Channel, s.AddressHash(workspaceID, addr)); err != nil {
				return fmt.Errorf("lift unsubscribe suppression: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("save preferences of %s: %w", v.ID, err)
	}
	return changed, nil
}

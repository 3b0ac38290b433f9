package channel

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parcours/parcours/pkg/identity"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/template"
)

// ChannelSMS is the SMS channel (Twilio).
const ChannelSMS = "sms"

// SuppressOptOut is the suppression reason of a number that replied STOP:
// Twilio refuses every message to it, whatever the class, until it replies
// START.
const SuppressOptOut = "opt_out"

// TwilioCallbackPath is the path of Twilio's status callbacks, followed by
// the workspace id.
const TwilioCallbackPath = "/v1/webhooks/twilio/"

var (
	accountSIDRe = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	serviceSIDRe = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	authTokenRe  = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
	e164Re       = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
)

// FieldErrors are several wrong input fields, reported at once.
type FieldErrors []FieldError

func (e FieldErrors) Error() string {
	parts := make([]string, len(e))
	for i, f := range e {
		parts[i] = f.Error()
	}
	return strings.Join(parts, "; ")
}

// SMSSettings is a workspace's SMS channel, without its auth token.
type SMSSettings struct {
	AccountSID          string `json:"account_sid"`
	FromNumber          string `json:"from_number,omitempty"`
	MessagingServiceSID string `json:"messaging_service_sid,omitempty"`
	BaseURL             string `json:"base_url,omitempty"`
	// StatusCallbackBaseURL is Parcours' public URL as Twilio reaches it;
	// "" means the server's PARCOURS_PUBLIC_URL.
	StatusCallbackBaseURL string    `json:"status_callback_base_url,omitempty"`
	AuthTokenSet          bool      `json:"auth_token_set"`
	UpdatedAt             time.Time `json:"updated_at"`
}

type smsConfig struct {
	AccountSID            string `json:"account_sid"`
	FromNumber            string `json:"from_number,omitempty"`
	MessagingServiceSID   string `json:"messaging_service_sid,omitempty"`
	BaseURL               string `json:"base_url,omitempty"`
	StatusCallbackBaseURL string `json:"status_callback_base_url,omitempty"`
}

func (c smsConfig) settings(set bool, at time.Time) SMSSettings {
	return SMSSettings{AccountSID: c.AccountSID, FromNumber: c.FromNumber, MessagingServiceSID: c.MessagingServiceSID,
		BaseURL: c.BaseURL, StatusCallbackBaseURL: c.StatusCallbackBaseURL, AuthTokenSet: set, UpdatedAt: at}
}

// SMSInput is a new configuration of the SMS channel.
type SMSInput struct {
	AccountSID string
	// AuthToken "" keeps the token already stored, for the same account; the
	// first configuration, and a change of account, need one.
	AuthToken             string
	FromNumber            string
	MessagingServiceSID   string
	BaseURL               string
	StatusCallbackBaseURL string
}

// PutSMS validates and saves the SMS channel. Every wrong field is
// reported, as FieldErrors.
func (s *Store) PutSMS(ctx context.Context, workspaceID string, in SMSInput) (SMSSettings, error) {
	var errs FieldErrors
	if !accountSIDRe.MatchString(in.AccountSID) {
		errs = append(errs, FieldError{"account_sid", "must be a Twilio Account SID: AC followed by 32 hexadecimal digits"})
	}
	if in.AuthToken != "" && !authTokenRe.MatchString(in.AuthToken) {
		errs = append(errs, FieldError{"auth_token", "must be the account's Auth Token: 32 hexadecimal digits"})
	}
	if in.FromNumber == "" && in.MessagingServiceSID == "" {
		errs = append(errs, FieldError{"from_number", "give a from_number or a messaging_service_sid to send from"})
	}
	if in.FromNumber != "" && !e164Re.MatchString(in.FromNumber) {
		errs = append(errs, FieldError{"from_number", "must be a phone number in E.164 form: + then the country code and number, digits only, such as +14155550100"})
	}
	if in.MessagingServiceSID != "" && !serviceSIDRe.MatchString(in.MessagingServiceSID) {
		errs = append(errs, FieldError{"messaging_service_sid", "must be a Twilio Messaging Service SID: MG followed by 32 hexadecimal digits"})
	}
	if err := s.checkProviderURL(in.BaseURL); err != nil {
		errs = append(errs, FieldError{"base_url", err.Error()})
	}
	if in.StatusCallbackBaseURL != "" {
		if err := checkURL(in.StatusCallbackBaseURL); err != nil {
			errs = append(errs, FieldError{"status_callback_base_url", err.Error()})
		} else if u, _ := url.Parse(in.StatusCallbackBaseURL); u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, FieldError{"status_callback_base_url", "must be a base URL without query or fragment, such as https://parcours.example.com"})
		}
	}
	if in.AuthToken == "" && accountSIDRe.MatchString(in.AccountSID) {
		var cur smsConfig
		_, _, set, err := s.load(ctx, workspaceID, ChannelSMS, &cur)
		switch {
		case errors.Is(err, ErrNotConfigured) || (err == nil && !set):
			errs = append(errs, FieldError{"auth_token", "is required to configure the channel (it is kept encrypted and never shown again)"})
		case err != nil:
			return SMSSettings{}, err
		case cur.AccountSID != in.AccountSID:
			errs = append(errs, FieldError{"auth_token", "is required when account_sid changes: the stored token belongs to " + cur.AccountSID})
		case normalURL(cur.BaseURL, DefaultTwilioURL) != normalURL(in.BaseURL, DefaultTwilioURL):
			// The token was entered for the stored host (see PutEmailSettings).
			errs = append(errs, FieldError{"auth_token", "enter the Auth Token again: the provider URL changed, and a stored token is never sent to a new host"})
		}
	}
	if len(errs) > 0 {
		return SMSSettings{}, errs
	}
	cfg := smsConfig{AccountSID: in.AccountSID, FromNumber: in.FromNumber, MessagingServiceSID: in.MessagingServiceSID,
		BaseURL: in.BaseURL, StatusCallbackBaseURL: strings.TrimRight(in.StatusCallbackBaseURL, "/")}
	at, set, err := s.put(ctx, workspaceID, ChannelSMS, cfg, in.AuthToken)
	if err != nil {
		return SMSSettings{}, err
	}
	return cfg.settings(set, at), nil
}

// SMS returns the SMS channel's settings, without the auth token.
func (s *Store) SMS(ctx context.Context, workspaceID string) (SMSSettings, error) {
	var c smsConfig
	_, at, set, err := s.load(ctx, workspaceID, ChannelSMS, &c)
	if err != nil {
		return SMSSettings{}, err
	}
	return c.settings(set, at), nil
}

// SMSWithToken returns the SMS settings and the decrypted auth token: for
// sending, and for verifying Twilio's signatures.
func (s *Store) SMSWithToken(ctx context.Context, workspaceID string) (SMSSettings, string, error) {
	var c smsConfig
	sealed, at, set, err := s.load(ctx, workspaceID, ChannelSMS, &c)
	if err != nil {
		return SMSSettings{}, "", err
	}
	token, err := s.open(workspaceID, ChannelSMS, sealed)
	if err != nil {
		return SMSSettings{}, "", err
	}
	return c.settings(set, at), token, nil
}

// TwilioCallbackURL is the status callback URL of a workspace as Twilio
// sees it: the channel's status_callback_base_url, else publicURL (the
// server's), then TwilioCallbackPath and the workspace id. "" when neither
// base is known: messages then go without a status callback.
func TwilioCallbackURL(settings SMSSettings, publicURL, workspaceID string) string {
	base := settings.StatusCallbackBaseURL
	if base == "" {
		base = publicURL
	}
	if base == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + TwilioCallbackPath + workspaceID
}

// phoneOf is the profile's mobile number: its phone identity, else its
// phone trait, normalised. international is false for a number without a
// country code, which Parcours will not guess.
func phoneOf(v *profile.View) (phone string, international bool) {
	if v == nil {
		return "", false
	}
	for _, id := range v.Identities {
		if id.Type == identity.Phone && strings.HasPrefix(id.Value, "+") {
			return id.Value, true
		}
	}
	for _, id := range v.Identities {
		if id.Type == identity.Phone {
			phone = id.Value
		}
	}
	if s, ok := v.Traits["phone"].(string); ok {
		if n := identity.NormalizePhone(s); strings.HasPrefix(n, "+") {
			return n, true
		} else if phone == "" {
			phone = n
		}
	}
	return phone, false
}

// smsAddress returns the number a send to the profile goes to, or a skip
// with the reason.
func smsAddress(v *profile.View) (string, error) {
	phone, intl := phoneOf(v)
	switch {
	case phone == "":
		return "", &skipError{"the profile has no phone number"}
	case !intl || !e164Re.MatchString(phone):
		return "", &skipError{"the profile's phone number is not in international E.164 form (+ and the country code)"}
	}
	return phone, nil
}

// prepareSMS builds the Twilio call of a rendered SMS template. The body
// is the template's text part; its segment count is recorded on the
// delivery. A refusal with Twilio's code is recorded on the delivery
// (error_code); 21610 (the recipient replied STOP) also suppresses the
// number and opts the profile out of marketing SMS.
func (l *Ledger) prepareSMS(ctx context.Context, req SendRequest, d *Delivery, to string, out template.Output) (func(context.Context) (Result, error), string, error) {
	if l.Twilio == nil {
		return nil, "", permanent("this server has no SMS sender")
	}
	settings, token, err := l.Settings.SMSWithToken(ctx, req.WorkspaceID)
	if errors.Is(err, ErrNotConfigured) {
		return nil, "", permanent("the sms channel is not configured (PUT /v1/channels/sms)")
	}
	if err != nil {
		return nil, "", err
	}
	if err := l.Settings.providerURLRefused(ChannelSMS, settings.BaseURL); err != nil {
		return nil, "", err
	}
	body := strings.TrimSpace(out.Text)
	if body == "" {
		return nil, "", permanent("the SMS body rendered empty (the template's text part)")
	}
	if n := utf8.RuneCountInString(body); n > MaxSMSChars {
		return nil, "", permanent("the SMS body rendered %d characters; Twilio takes at most %d", n, MaxSMSChars)
	}
	segments, _ := SMSSegments(body)
	if _, err := l.Pool.Exec(ctx, `UPDATE deliveries SET segments = $3 WHERE workspace_id = $1 AND id = $2`, req.WorkspaceID, d.ID, segments); err != nil {
		return nil, "", fmt.Errorf("record segments of delivery %s: %w", d.ID, err)
	}
	m := SMS{To: to, From: settings.FromNumber, MessagingServiceSID: settings.MessagingServiceSID, Body: body}
	if cb := TwilioCallbackURL(settings, l.PublicURL, req.WorkspaceID); cb != "" {
		// The delivery id lets a callback settle a delivery whose SID the
		// ledger could not record (docs/delivery.md); Twilio signs it with
		// the rest of the URL.
		m.StatusCallback = cb + "?delivery=" + url.QueryEscape(d.ID)
	}
	return func(ctx context.Context) (Result, error) {
		res, err := l.Twilio.Send(ctx, settings.AccountSID, token, settings.BaseURL, m)
		var se *SendError
		if !errors.As(err, &se) || !se.Permanent || se.Code == "" {
			return res, err
		}
		if _, dbErr := l.Pool.Exec(ctx, `UPDATE deliveries SET error_code = $3 WHERE workspace_id = $1 AND id = $2`, req.WorkspaceID, d.ID, se.Code); dbErr != nil {
			return res, fmt.Errorf("record twilio error of delivery %s: %w (after %w)", d.ID, dbErr, err)
		}
		if se.Code == TwilioErrUnsubscribed {
			if dbErr := l.recordSMSOptOut(ctx, req.WorkspaceID, req.ProfileID, to); dbErr != nil {
				return res, fmt.Errorf("%w (after %w)", dbErr, err)
			}
		}
		return res, err
	}, to, nil
}

// recordSMSOptOut suppresses a number that replied STOP and opts its
// profile (if any) out of marketing SMS.
func (l *Ledger) recordSMSOptOut(ctx context.Context, workspaceID, profileID, phone string) error {
	if err := l.Settings.Suppress(ctx, workspaceID, ChannelSMS, l.Settings.AddressHash(workspaceID, phone), SuppressOptOut); err != nil {
		return err
	}
	if profileID == "" {
		return nil
	}
	_, err := l.Settings.SetSubscription(ctx, workspaceID, Subscription{ProfileID: profileID, Channel: ChannelSMS, Purpose: Marketing, Status: "unsubscribed", Source: "twilio"})
	return err
}

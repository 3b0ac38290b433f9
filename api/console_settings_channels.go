package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/user"
)

// emailChannelView is the email channel as the Channels page shows it:
// never the API key, only whether one is set and how it ends.
type emailChannelView struct {
	Configured                   bool
	APIKeySet                    bool
	APIKeyHint                   string
	FromEmail, FromName, BaseURL string
	EventWebhookSet              bool
	// EventWebhookURL is the address to paste into SendGrid's Event Webhook.
	EventWebhookURL string
	UpdatedAt       time.Time
}

// smsChannelView is the SMS channel without its auth token.
type smsChannelView struct {
	Configured                                                                  bool
	AccountSID, FromNumber, MessagingServiceSID, BaseURL, StatusCallbackBaseURL string
	AuthTokenSet                                                                bool
	AuthTokenHint                                                               string
	// StatusCallbackURL is where Twilio reports what became of each message.
	StatusCallbackURL string
	UpdatedAt         time.Time
}

// webhookChannelView is the webhook channel without its signing secret.
type webhookChannelView struct {
	Configured bool
	URL        string
	SecretSet  bool
	SecretHint string
	UpdatedAt  time.Time
}

// channelsData is the Channels page's data.
type channelsData struct {
	settingsNav
	Email   emailChannelView
	SMS     smsChannelView
	Webhook webhookChannelView
	// FieldErrors by form and field: email.api_key, sms.from_number, webhook.url, ...
	FieldErrors map[string]string
	// Failed names the form that was not saved (email, sms, webhook);
	// Saved the one that was.
	Failed, Saved string
	// SecretTyped: the failed form had a secret typed in, which is not
	// shown back and must be typed again.
	SecretTyped bool
	// NoSecretKey: the server cannot store secrets (no PARCOURS_SECRET_KEY).
	NoSecretKey bool
	Error       string
}

// channelFieldLabels name the form fields in messages.
var channelFieldLabels = map[string]string{
	"api_key": "The API key", "from_email": "The sender's address", "from_name": "The sender's name",
	"base_url": "The API address", "event_webhook_public_key": "The verification key",
	"account_sid": "The Account SID", "auth_token": "The Auth Token", "from_number": "The sending number",
	"messaging_service_sid": "The Messaging Service SID", "status_callback_base_url": "The public address of Parcours",
	"url": "The URL", "signing_secret": "The signing secret",
}

// channelFieldMessage turns a store's reason ("must be ...", "is required
// ...") into a sentence about the field as the form labels it.
func channelFieldMessage(field, reason string) string {
	if field == "from_number" && strings.HasPrefix(reason, "give a from_number") {
		return "Give the number to send from, or a Messaging Service SID."
	}
	if strings.HasPrefix(reason, "enter the ") { // the secret again, after a change of base URL
		return "E" + strings.TrimPrefix(reason, "e") + "."
	}
	reason = strings.NewReplacer("account_sid", "the Account SID", "status_callback_base_url", "the public address").Replace(reason)
	if label, ok := channelFieldLabels[field]; ok && (strings.HasPrefix(reason, "must ") || strings.HasPrefix(reason, "is ")) {
		return label + " " + reason + "."
	}
	return reason
}

// channelFormErrors records a store's field errors under form's prefix and
// reports whether err was one.
func channelFormErrors(form string, err error, into map[string]string) bool {
	var fe *channel.FieldError
	var fes channel.FieldErrors
	switch {
	case errors.As(err, &fes):
		for _, f := range fes {
			if _, seen := into[form+"."+f.Field]; !seen {
				into[form+"."+f.Field] = channelFieldMessage(f.Field, f.Reason)
			}
		}
		return true
	case errors.As(err, &fe):
		into[form+"."+fe.Field] = channelFieldMessage(fe.Field, fe.Reason)
		return true
	}
	return false
}

// channelsData loads the three channels as stored.
func (s *Server) channelsData(c echo.Context, sess user.Session) (channelsData, error) {
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	d := channelsData{settingsNav: settingsNavFor(sess, "channels"), FieldErrors: map[string]string{}, NoSecretKey: s.Channels.Box() == nil}
	base := strings.TrimRight(s.publicURL(), "/")
	if base == "" {
		base = c.Scheme() + "://" + c.Request().Host
	}
	d.Email.EventWebhookURL = base + "/v1/webhooks/sendgrid/" + ws

	email, err := s.Channels.Email(ctx, ws)
	switch {
	case errors.Is(err, channel.ErrNotConfigured):
	case err != nil:
		return d, err
	default:
		d.Email = emailChannelView{Configured: true, APIKeySet: email.APIKeySet, FromEmail: email.FromEmail, FromName: email.FromName,
			BaseURL: email.BaseURL, EventWebhookSet: email.EventWebhookConfigured, EventWebhookURL: d.Email.EventWebhookURL, UpdatedAt: email.UpdatedAt}
		if d.Email.APIKeyHint, err = s.secretHint(ctx, ws, channel.ChannelEmail, email.APIKeySet); err != nil {
			return d, err
		}
	}

	sms, err := s.Channels.SMS(ctx, ws)
	switch {
	case errors.Is(err, channel.ErrNotConfigured):
		d.SMS.StatusCallbackURL = channel.TwilioCallbackURL(channel.SMSSettings{}, s.publicURL(), ws)
	case err != nil:
		return d, err
	default:
		d.SMS = smsChannelView{Configured: true, AccountSID: sms.AccountSID, FromNumber: sms.FromNumber, MessagingServiceSID: sms.MessagingServiceSID,
			BaseURL: sms.BaseURL, StatusCallbackBaseURL: sms.StatusCallbackBaseURL, AuthTokenSet: sms.AuthTokenSet,
			StatusCallbackURL: channel.TwilioCallbackURL(sms, s.publicURL(), ws), UpdatedAt: sms.UpdatedAt}
		if d.SMS.AuthTokenHint, err = s.secretHint(ctx, ws, channel.ChannelSMS, sms.AuthTokenSet); err != nil {
			return d, err
		}
	}

	hook, err := s.Channels.Webhook(ctx, ws)
	switch {
	case errors.Is(err, channel.ErrNotConfigured):
	case err != nil:
		return d, err
	default:
		d.Webhook = webhookChannelView{Configured: true, URL: hook.URL, SecretSet: hook.SigningSecretSet, UpdatedAt: hook.UpdatedAt}
		if d.Webhook.SecretHint, err = s.secretHint(ctx, ws, channel.ChannelWebhook, hook.SigningSecretSet); err != nil {
			return d, err
		}
	}
	return d, nil
}

// secretHint is the end of a stored secret. A secret this server cannot
// open (its PARCOURS_SECRET_KEY changed) shows as set, without a hint: the
// page stays usable to replace it.
func (s *Server) secretHint(ctx context.Context, ws, ch string, set bool) (string, error) {
	if !set || s.Channels.Box() == nil {
		return "", nil
	}
	hint, err := s.Channels.SecretHint(ctx, ws, ch)
	if err != nil {
		s.logger.WarnContext(ctx, "a channel secret cannot be opened with this server's key", "channel", ch, "err", err)
		return "", nil
	}
	return hint, nil
}

func (s *Server) renderChannels(c echo.Context, sess user.Session, status int, d channelsData) error {
	return s.render(c, status, "settings_channels.html", view{Title: "Settings: channels", Nav: "settings", User: &sess.User, CSRF: sess.CSRF, D: d})
}

func (s *Server) channelsPage(c echo.Context, sess user.Session) error {
	d, err := s.channelsData(c, sess)
	if err != nil {
		return err
	}
	switch c.QueryParam("saved") {
	case "email", "sms", "webhook":
		d.Saved = c.QueryParam("saved")
	}
	return s.renderChannels(c, sess, http.StatusOK, d)
}

// channelFormFailed shows the Channels page again with the form's input
// and its errors; a store error that names no field is returned.
func (s *Server) channelFormFailed(c echo.Context, sess user.Session, d channelsData, form string, secretTyped bool, err error) error {
	if !channelFormErrors(form, err, d.FieldErrors) {
		if d.NoSecretKey {
			d.Error = "This server cannot store channel secrets: it was started without PARCOURS_SECRET_KEY. Ask whoever runs it to set one."
			d.Failed = form
			return s.renderChannels(c, sess, http.StatusServiceUnavailable, d)
		}
		return err
	}
	d.Failed, d.SecretTyped = form, secretTyped
	d.Error = "Nothing was saved: fix what is marked below."
	return s.renderChannels(c, sess, http.StatusUnprocessableEntity, d)
}

func (s *Server) saveEmailChannelForm(c echo.Context, sess user.Session) error {
	d, err := s.channelsData(c, sess)
	if err != nil {
		return err
	}
	key := strings.TrimSpace(c.FormValue("api_key"))
	in := channel.EmailInput{
		APIKey: key, FromEmail: strings.TrimSpace(c.FormValue("from_email")), FromName: strings.TrimSpace(c.FormValue("from_name")),
		BaseURL: strings.TrimSpace(c.FormValue("base_url")),
	}
	// The verification key: empty keeps the stored one, the box removes it.
	if c.FormValue("remove_event_webhook_key") == "on" {
		in.EventWebhookPublicKey = new(string)
	} else if pub := strings.TrimSpace(c.FormValue("event_webhook_public_key")); pub != "" {
		in.EventWebhookPublicKey = &pub
	}
	if _, err := s.Channels.PutEmailSettings(c.Request().Context(), sess.User.WorkspaceID, in); err != nil {
		d.Email.FromEmail, d.Email.FromName, d.Email.BaseURL = in.FromEmail, in.FromName, in.BaseURL
		return s.channelFormFailed(c, sess, d, "email", key != "", err)
	}
	return c.Redirect(http.StatusSeeOther, "/settings/channels?saved=email#email-channel")
}

func (s *Server) saveSMSChannelForm(c echo.Context, sess user.Session) error {
	d, err := s.channelsData(c, sess)
	if err != nil {
		return err
	}
	in := channel.SMSInput{
		AccountSID: strings.TrimSpace(c.FormValue("account_sid")), AuthToken: strings.TrimSpace(c.FormValue("auth_token")),
		FromNumber: strings.TrimSpace(c.FormValue("from_number")), MessagingServiceSID: strings.TrimSpace(c.FormValue("messaging_service_sid")),
		BaseURL: strings.TrimSpace(c.FormValue("base_url")), StatusCallbackBaseURL: strings.TrimSpace(c.FormValue("status_callback_base_url")),
	}
	if _, err := s.Channels.PutSMS(c.Request().Context(), sess.User.WorkspaceID, in); err != nil {
		d.SMS.AccountSID, d.SMS.FromNumber, d.SMS.MessagingServiceSID = in.AccountSID, in.FromNumber, in.MessagingServiceSID
		d.SMS.BaseURL, d.SMS.StatusCallbackBaseURL = in.BaseURL, in.StatusCallbackBaseURL
		return s.channelFormFailed(c, sess, d, "sms", in.AuthToken != "", err)
	}
	return c.Redirect(http.StatusSeeOther, "/settings/channels?saved=sms#sms-channel")
}

func (s *Server) saveWebhookChannelForm(c echo.Context, sess user.Session) error {
	d, err := s.channelsData(c, sess)
	if err != nil {
		return err
	}
	hookURL, secret := strings.TrimSpace(c.FormValue("url")), c.FormValue("signing_secret")
	if _, err := s.Channels.PutWebhook(c.Request().Context(), sess.User.WorkspaceID, hookURL, secret); err != nil {
		d.Webhook.URL = hookURL
		return s.channelFormFailed(c, sess, d, "webhook", secret != "", err)
	}
	return c.Redirect(http.StatusSeeOther, "/settings/channels?saved=webhook#webhook-channel")
}

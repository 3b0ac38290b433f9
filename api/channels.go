package api

import (
	"errors"
	"html"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/template"
)

// channelProblem maps channel and template errors to problems naming the
// field (and the line of a template part).
func channelProblem(err error) error {
	var ce *template.CompileError
	var tfe *template.FieldError
	var cfe *channel.FieldError
	switch {
	case errors.As(err, &ce):
		return invalid("The template does not compile.", FieldError{Field: ce.Field, Reason: ce.Message, Line: ce.Line})
	case errors.As(err, &tfe):
		return invalid("The template cannot be saved.", FieldError{Field: tfe.Field, Reason: tfe.Reason})
	case errors.As(err, &cfe):
		return invalid("The request has an invalid field.", FieldError{Field: cfe.Field, Reason: cfe.Reason})
	case errors.Is(err, template.ErrSlugTaken):
		return invalid("Choose another slug.", FieldError{Field: "slug", Reason: "a template with this slug exists in this workspace"})
	case errors.Is(err, template.ErrNotFound):
		return problem(http.StatusNotFound, "No such template in this workspace.")
	case errors.Is(err, channel.ErrNotConfigured):
		return problem(http.StatusNotFound, "This channel is not configured yet: PUT its settings first.")
	case errors.Is(err, template.ErrTooLarge), errors.Is(err, template.ErrTimeout):
		return invalid("The template cannot be rendered.", FieldError{Field: "html", Reason: err.Error()})
	}
	return err
}

// emailChannelRequest is the body of PUT /v1/channels/email. APIKey is
// write-only: kept encrypted, never returned.
type emailChannelRequest struct {
	APIKey    string `json:"api_key"`
	FromEmail string `json:"from_email"`
	FromName  string `json:"from_name"`
	BaseURL   string `json:"base_url"`
	// EventWebhookPublicKey is the verification key of SendGrid's signed
	// Event Webhook (base64, as SendGrid shows it). Absent keeps the stored
	// one; "" removes it.
	EventWebhookPublicKey *string `json:"event_webhook_public_key"`
}

// emailChannelResponse is the email channel with the Event Webhook URL to
// paste into SendGrid.
type emailChannelResponse struct {
	channel.EmailSettings
	EventWebhookURL string `json:"event_webhook_url"`
}

func (s *Server) emailChannelResponse(c echo.Context, out channel.EmailSettings) emailChannelResponse {
	base := ""
	if s.Ledger != nil {
		base = strings.TrimRight(s.Ledger.PublicURL, "/")
	}
	if base == "" {
		base = c.Scheme() + "://" + c.Request().Host
	}
	return emailChannelResponse{EmailSettings: out, EventWebhookURL: base + "/v1/webhooks/sendgrid/" + keyFrom(c).WorkspaceID}
}

func (s *Server) putEmailChannel(c echo.Context) error {
	var req emailChannelRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	out, err := s.Channels.PutEmailSettings(c.Request().Context(), keyFrom(c).WorkspaceID, channel.EmailInput{
		APIKey: strings.TrimSpace(req.APIKey), FromEmail: strings.TrimSpace(req.FromEmail), FromName: req.FromName,
		BaseURL: strings.TrimSpace(req.BaseURL), EventWebhookPublicKey: req.EventWebhookPublicKey,
	})
	if err != nil {
		return channelProblem(err)
	}
	return c.JSON(http.StatusOK, s.emailChannelResponse(c, out))
}

func (s *Server) getEmailChannel(c echo.Context) error {
	out, err := s.Channels.Email(c.Request().Context(), keyFrom(c).WorkspaceID)
	if err != nil {
		return channelProblem(err)
	}
	return c.JSON(http.StatusOK, s.emailChannelResponse(c, out))
}

// webhookChannelRequest is the body of PUT /v1/channels/webhook.
type webhookChannelRequest struct {
	URL           string `json:"url"`
	SigningSecret string `json:"signing_secret"`
}

func (s *Server) putWebhookChannel(c echo.Context) error {
	var req webhookChannelRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	out, err := s.Channels.PutWebhook(c.Request().Context(), keyFrom(c).WorkspaceID, strings.TrimSpace(req.URL), req.SigningSecret)
	if err != nil {
		return channelProblem(err)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getWebhookChannel(c echo.Context) error {
	out, err := s.Channels.Webhook(c.Request().Context(), keyFrom(c).WorkspaceID)
	if err != nil {
		return channelProblem(err)
	}
	return c.JSON(http.StatusOK, out)
}

// templateRequest is the body of POST and PATCH /v1/templates.
type templateRequest struct {
	Slug    string  `json:"slug"`
	Name    *string `json:"name"`
	Channel string  `json:"channel"`
	// Kind: message (default), partial or layout; Layout: a message's layout slug.
	Kind      string  `json:"kind"`
	Layout    *string `json:"layout"`
	Subject   *string `json:"subject"`
	Preheader *string `json:"preheader"`
	HTML      *string `json:"html"`
	Text      *string `json:"text"`
}

func (r templateRequest) apply(t *template.Template) {
	for _, f := range []struct {
		src *string
		dst *string
	}{{r.Name, &t.Name}, {r.Subject, &t.Subject}, {r.Preheader, &t.Preheader}, {r.HTML, &t.HTML}, {r.Text, &t.Text}, {r.Layout, &t.Layout}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
}

func (s *Server) listTemplates(c echo.Context) error {
	ts, err := s.Templates.List(c.Request().Context(), keyFrom(c).WorkspaceID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": ts})
}

func (s *Server) createTemplate(c echo.Context) error {
	var req templateRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	t := template.Template{Slug: req.Slug, Channel: req.Channel, Kind: req.Kind}
	if t.Channel == "" {
		t.Channel = channel.ChannelEmail
	}
	req.apply(&t)
	out, err := s.Templates.Create(c.Request().Context(), keyFrom(c).WorkspaceID, t)
	if err != nil {
		return channelProblem(err)
	}
	return c.JSON(http.StatusCreated, out)
}

func (s *Server) getTemplate(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return channelProblem(template.ErrNotFound)
	}
	t, err := s.Templates.Get(c.Request().Context(), keyFrom(c).WorkspaceID, id)
	if err != nil {
		return channelProblem(err)
	}
	return c.JSON(http.StatusOK, t)
}

func (s *Server) updateTemplate(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return channelProblem(template.ErrNotFound)
	}
	var req templateRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	out, err := s.Templates.Update(c.Request().Context(), keyFrom(c).WorkspaceID, id, func(t *template.Template) {
		if req.Slug != "" {
			t.Slug = req.Slug
		}
		if req.Channel != "" {
			t.Channel = req.Channel
		}
		if req.Kind != "" {
			t.Kind = req.Kind
		}
		req.apply(t)
	})
	if err != nil {
		return channelProblem(err)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) deleteTemplate(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return channelProblem(template.ErrNotFound)
	}
	if err := s.Templates.Delete(c.Request().Context(), keyFrom(c).WorkspaceID, id); err != nil {
		return channelProblem(err)
	}
	return c.NoContent(http.StatusNoContent)
}

// templatePreviewRequest is the body of POST /v1/templates/:id/preview.
type templatePreviewRequest struct {
	ProfileID string `json:"profile_id"`
}

func (s *Server) previewTemplate(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return channelProblem(template.ErrNotFound)
	}
	var req templatePreviewRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.ProfileID != "" && !isUUID(req.ProfileID) {
		return invalid("No such profile.", FieldError{Field: "profile_id", Reason: "must be the id of a profile of this workspace"})
	}
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	t, err := s.Templates.Get(ctx, ws, id)
	if err != nil {
		return channelProblem(err)
	}
	out, err := s.Ledger.Preview(ctx, ws, t, req.ProfileID)
	if errors.Is(err, profile.ErrNotFound) {
		return invalid("No such profile.", FieldError{Field: "profile_id", Reason: "no profile " + req.ProfileID + " in this workspace"})
	}
	if err != nil {
		return channelProblem(err)
	}
	return c.JSON(http.StatusOK, out)
}

// testSendRequest is the body of POST /v1/templates/:id/test-send: an
// address, or a profile whose address and data fill the template.
type testSendRequest struct {
	Email     string `json:"email"`
	ProfileID string `json:"profile_id"`
}

// testSend sends a template once, through the ledger, as a transactional
// message (it is asked for by hand: marketing consent does not apply, but
// suppressions of bounced addresses do).
func (s *Server) testSend(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return channelProblem(template.ErrNotFound)
	}
	var req testSendRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	req.Email = strings.TrimSpace(req.Email)
	switch {
	case (req.Email == "") == (req.ProfileID == ""):
		return invalid("Send a test to an address or to a profile.", FieldError{Field: "email", Reason: "give either email or profile_id"})
	case req.Email != "":
		if a, err := mail.ParseAddress(req.Email); err != nil || a.Address != req.Email {
			return invalid("The address is not valid.", FieldError{Field: "email", Reason: "must be a bare email address such as ana@example.com"})
		}
	case !isUUID(req.ProfileID):
		return invalid("No such profile.", FieldError{Field: "profile_id", Reason: "must be the id of a profile of this workspace"})
	}
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	t, err := s.Templates.Get(ctx, ws, id)
	if err != nil {
		return channelProblem(err)
	}
	if t.Channel != channel.ChannelEmail {
		return invalid("Only email templates can be test-sent.", FieldError{Field: "channel", Reason: "template is for " + t.Channel})
	}
	if req.ProfileID != "" {
		if _, err := s.Profiles.Get(ctx, ws, req.ProfileID); errors.Is(err, profile.ErrNotFound) {
			return invalid("No such profile.", FieldError{Field: "profile_id", Reason: "no profile " + req.ProfileID + " in this workspace"})
		} else if err != nil {
			return err
		}
	}
	d, err := s.Ledger.Send(ctx, channel.SendRequest{
		BusinessKey: "test/" + t.Slug + "/" + c.Response().Header().Get(echo.HeaderXRequestID),
		WorkspaceID: ws, ProfileID: req.ProfileID, TemplateSlug: t.Slug,
		Channel: channel.ChannelEmail, Class: channel.Transactional, ToEmail: req.Email,
	})
	var se *channel.SendError
	switch {
	case errors.As(err, &se) && se.Permanent:
		// Recorded as failed: the delivery says why.
	case errors.As(err, &se):
		return problem(http.StatusServiceUnavailable, "The email provider did not take the message: "+se.Reason+". Try again later.")
	case err != nil:
		return channelProblem(err)
	}
	return c.JSON(http.StatusOK, d)
}

func (s *Server) listDeliveries(c echo.Context) error {
	pid := c.QueryParam("profile_id")
	if pid != "" && !isUUID(pid) {
		return invalid("Bad query parameter.", FieldError{Field: "profile_id", Reason: "must be a profile id"})
	}
	limit, err := intParam(c, "limit", 50, 1, 500)
	if err != nil {
		return err
	}
	ds, err := s.Ledger.List(c.Request().Context(), keyFrom(c).WorkspaceID, pid, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": ds})
}

// subscriptionRequest is the body of PUT /v1/profiles/:id/subscriptions/:channel.
type subscriptionRequest struct {
	Purpose string `json:"purpose"`
	Status  string `json:"status"`
}

func (s *Server) putSubscription(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return problem(http.StatusNotFound, "No profile "+id+" in this workspace.")
	}
	var req subscriptionRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	v, err := s.profileOf(c)
	if err != nil {
		return err
	}
	saved, changed, err := s.Channels.ChangeSubscriptions(ctx, ws, actorOf(c),
		[]channel.Subscription{{ProfileID: v.ID, Channel: c.Param("channel"), Purpose: req.Purpose, Status: req.Status, Source: channel.SourceAPI}})
	if err != nil {
		return channelProblem(err)
	}
	s.recordConsentEvents(ctx, ws, changed, changeID)
	return c.JSON(http.StatusOK, saved[0])
}

// unsubscribeToken verifies the token of an unsubscribe link.
func (s *Server) unsubscribeToken(c echo.Context) (channel.UnsubscribeToken, error) {
	if s.Channels == nil || s.Channels.Box() == nil {
		return channel.UnsubscribeToken{}, problem(http.StatusServiceUnavailable, "Unsubscribe links are not enabled on this server (PARCOURS_SECRET_KEY).")
	}
	t, err := s.Channels.Box().VerifyUnsubscribe(c.QueryParam("token"))
	if err != nil {
		return t, &Problem{Type: typeValidation, Title: "Invalid unsubscribe link", Status: http.StatusBadRequest,
			Detail: "This unsubscribe link is not valid; use the link of the email as it came.",
			Errors: []FieldError{{Field: "token", Reason: "is not a token this server signed"}}}
	}
	return t, nil
}

const unsubscribePage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Unsubscribe</title><style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}</style></head><body>
%s</body></html>`

// unsubscribePageGet confirms before acting: link scanners open every URL
// of an email with GET, so GET never changes anything.
func (s *Server) unsubscribePageGet(c echo.Context) error {
	if _, err := s.unsubscribeToken(c); err != nil {
		return err
	}
	action := html.EscapeString(c.Request().URL.RequestURI())
	body := `<h1>Unsubscribe</h1><p>Stop receiving marketing emails from us?</p>
<form method="post" action="` + action + `"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button></form>`
	return c.HTML(http.StatusOK, strings.Replace(unsubscribePage, "%s", body, 1))
}

// unsubscribePost records the opt-out: RFC 8058 one-click (a POST with
// List-Unsubscribe=One-Click from the mailbox provider) or the page's button.
func (s *Server) unsubscribePost(c echo.Context) error {
	t, err := s.unsubscribeToken(c)
	if err != nil {
		return err
	}
	if v := c.FormValue("List-Unsubscribe"); v != "One-Click" {
		return invalid("A one-click unsubscribe posts List-Unsubscribe=One-Click (RFC 8058).", FieldError{Field: "List-Unsubscribe", Reason: "must be One-Click"})
	}
	if err := s.Channels.Unsubscribe(c.Request().Context(), t); err != nil {
		return err
	}
	if t.ProfileID != "" {
		// On the timeline once per link, however often it is clicked.
		s.recordConsentEvents(c.Request().Context(), t.WorkspaceID, []channel.Subscription{{
			ProfileID: t.ProfileID, Channel: t.Channel, Purpose: channel.Marketing, Status: channel.Unsubscribed,
			Source: channel.SourceUnsubscribeLink, UpdatedAt: time.Now().UTC(),
		}}, func(channel.Subscription) string { return "consent/unsubscribe/" + t.DeliveryID })
	}
	return c.HTML(http.StatusOK, strings.Replace(unsubscribePage, "%s", `<h1>You are unsubscribed</h1><p>You will not receive marketing emails from us any more.</p>`, 1))
}

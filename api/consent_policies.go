package api

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/profile"
)

// EventSubscriptionChanged is the profile event a consent change records
// (API, preference page, unsubscribe link), with channel, purpose, status
// and source as properties: segments and journeys can use it.
const EventSubscriptionChanged = "Subscription Changed"

// actorOf names the API key of a request for the consent log.
func actorOf(c echo.Context) string {
	if id := keyFrom(c).ID; id != "" {
		return "key:" + id
	}
	return ""
}

// recordConsentEvents puts consent changes on the profiles' timelines, as
// delivery events are (internal events, deduped by a message id built from
// the change), and lets segments and journeys see them. The changes are
// committed already: a failure here is logged, not returned.
func (s *Server) recordConsentEvents(ctx context.Context, ws string, changed []channel.Subscription, idOf func(channel.Subscription) string) {
	if s.Ingest == nil || len(changed) == 0 {
		return
	}
	now := time.Now().UTC()
	evs := make([]ingest.InternalEvent, 0, len(changed))
	for _, sub := range changed {
		props := map[string]any{"channel": sub.Channel, "purpose": sub.Purpose, "status": sub.Status, "source": sub.Source}
		msgID := idOf(sub)
		raw, _ := json.Marshal(map[string]any{"type": events.TypeTrack, "event": EventSubscriptionChanged, "messageId": msgID, "timestamp": sub.UpdatedAt, "properties": props})
		evs = append(evs, ingest.InternalEvent{ProfileID: sub.ProfileID, Message: events.Message{
			Type: events.TypeTrack, MessageID: msgID, Event: EventSubscriptionChanged, Properties: props,
			Traits: map[string]any{}, Context: map[string]any{}, Timestamp: sub.UpdatedAt, ReceivedAt: now, Raw: raw, Index: -1,
		}})
	}
	recorded, err := s.Ingest.IngestInternal(ctx, ws, evs)
	if err != nil {
		s.logger.ErrorContext(ctx, "recording consent changes on the timeline failed", "err", err)
		return
	}
	if s.Segments != nil {
		moves, err := s.Segments.RefreshForJourneys(ctx, ws, recorded.Changes, now)
		if err != nil {
			s.logger.ErrorContext(ctx, "real-time segment update after consent changes failed", "err", err)
		}
		if err := s.triggerSegmentJourneys(ctx, ws, moves.Moves); err != nil {
			s.logger.ErrorContext(ctx, "segment-triggered journeys after consent changes failed", "err", err)
		}
	}
	if err := s.triggerJourneys(ctx, ws, recorded.Stored); err != nil {
		s.logger.ErrorContext(ctx, "journey trigger after consent changes failed", "err", err)
	}
}

// changeID is the message id of a consent change's timeline event: one
// event per change, however often the request is retried.
func changeID(sub channel.Subscription) string {
	return "consent/" + sub.ProfileID + "/" + sub.Channel + "/" + sub.Purpose + "/" + strconv.FormatInt(sub.UpdatedAt.UnixMicro(), 36)
}

// profileSubscriptions answers GET /v1/profiles/:id/subscriptions: every
// channel and purpose with its state, source and time, the suppressions of
// the profile's addresses, and the consent history.
func (s *Server) profileSubscriptions(c echo.Context) error {
	v, err := s.profileOf(c)
	if err != nil {
		return err
	}
	out, err := s.Channels.Consent(c.Request().Context(), keyFrom(c).WorkspaceID, v)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// suppressionRequest is the body of POST /v1/suppressions.
type suppressionRequest struct {
	Channel string `json:"channel"`
	Address string `json:"address"`
	Reason  string `json:"reason"`
}

func (s *Server) listSuppressions(c echo.Context) error {
	f := channel.SuppressionFilter{Channel: c.QueryParam("channel"), Reason: c.QueryParam("reason"), Address: c.QueryParam("address")}
	switch {
	case f.Channel != "" && !slices.Contains(channel.ConsentChannels, f.Channel):
		return invalid("Bad query parameter.", FieldError{Field: "channel", Reason: "must be email, sms or webhook"})
	case f.Reason != "" && !slices.Contains(channel.SuppressionReasons, f.Reason):
		return invalid("Bad query parameter.", FieldError{Field: "reason", Reason: "must be one of " + strings.Join(channel.SuppressionReasons, ", ")})
	case f.Address != "" && f.Channel == "":
		return invalid("Bad query parameter.", FieldError{Field: "channel", Reason: "is required with address (email, sms or webhook)"})
	}
	limit, err := intParam(c, "limit", 50, 1, 500)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	list, next, err := s.Channels.Suppressions(ctx, ws, f, c.QueryParam("cursor"), limit)
	if errors.Is(err, channel.ErrBadCursor) {
		return invalid("The cursor is not one this API gave out.", FieldError{Field: "cursor", Reason: "use the next_cursor of the previous page"})
	}
	if err != nil {
		return channelProblem(err)
	}
	out := map[string]any{"data": list, "next_cursor": next}
	if f.Address != "" {
		// One address: also when it was suppressed and lifted, and by whom.
		if out["history"], err = s.Channels.AddressHistory(ctx, ws, f.Channel, f.Address); err != nil {
			return channelProblem(err)
		}
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) createSuppression(c echo.Context) error {
	var req suppressionRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Channel == "" {
		req.Channel = channel.ChannelEmail
	}
	sup, created, err := s.Channels.AddSuppression(c.Request().Context(), keyFrom(c).WorkspaceID, req.Channel, req.Address, req.Reason, channel.SourceAPI, actorOf(c))
	if err != nil {
		return channelProblem(err)
	}
	if !created {
		return c.JSON(http.StatusOK, sup)
	}
	return c.JSON(http.StatusCreated, sup)
}

func (s *Server) deleteSuppression(c echo.Context) error {
	id := c.Param("id")
	notFound := problem(http.StatusNotFound, "No suppression "+id+" in this workspace.")
	if !isUUID(id) {
		return notFound
	}
	sup, err := s.Channels.LiftSuppression(c.Request().Context(), keyFrom(c).WorkspaceID, id, channel.SourceAPI, actorOf(c))
	if errors.Is(err, channel.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sup)
}

// policyRequest is the body of PUT /v1/policies/delivery.
type policyRequest struct {
	FrequencyCaps []struct {
		Channel string `json:"channel"`
		Purpose string `json:"purpose"`
		Max     int    `json:"max"`
		Per     string `json:"per"`
	} `json:"frequency_caps"`
	QuietHours *struct {
		Start    string   `json:"start"`
		End      string   `json:"end"`
		Channels []string `json:"channels"`
	} `json:"quiet_hours"`
	DefaultTimezone string `json:"default_timezone"`
}

func (s *Server) getDeliveryPolicy(c echo.Context) error {
	p, err := s.Channels.Policy(c.Request().Context(), keyFrom(c).WorkspaceID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

func (s *Server) putDeliveryPolicy(c echo.Context) error {
	var req policyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	p := channel.Policy{DefaultTimezone: strings.TrimSpace(req.DefaultTimezone), FrequencyCaps: []channel.FrequencyCap{}}
	for _, fc := range req.FrequencyCaps {
		p.FrequencyCaps = append(p.FrequencyCaps, channel.FrequencyCap{Channel: fc.Channel, Purpose: fc.Purpose, Max: fc.Max, Per: fc.Per})
	}
	if q := req.QuietHours; q != nil {
		p.QuietHours = &channel.QuietHours{Start: q.Start, End: q.End, Channels: q.Channels}
	}
	out, err := s.Channels.PutPolicy(c.Request().Context(), keyFrom(c).WorkspaceID, p)
	var pe *channel.PolicyError
	if errors.As(err, &pe) {
		fields := make([]FieldError, len(pe.Errors))
		for i, f := range pe.Errors {
			fields[i] = FieldError{Field: f.Field, Reason: f.Reason}
		}
		return invalid("The delivery policy is not valid; nothing was saved.", fields...)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// preferencesPage is the hosted preference page: plain, accessible HTML
// (labels, a fieldset and legend, a status message), no script, no sign-in.
// The signed token in the form is what authenticates the POST, so a
// cross-site form cannot forge it.
var preferencesPage = template.Must(template.New("preferences").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Your message preferences</title>
<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;line-height:1.5}
fieldset{border:1px solid #888;padding:1rem}label{margin-left:.5rem}.row{padding:.35rem 0}
input[type=checkbox]{width:1.25rem;height:1.25rem;vertical-align:middle}
button{font-size:1rem;padding:.6rem 1.2rem;margin-top:1rem}[role=status]{background:#e8f5e9;padding:.75rem;border-left:4px solid #2e7d32}</style>
</head><body><main>
<h1>Your message preferences</h1>
{{if .Saved}}<p role="status">Your preferences are saved.</p>{{end}}
{{if .Prefs}}<form method="post" action="/v1/preferences">
<input type="hidden" name="token" value="{{.Token}}">
<fieldset><legend>Marketing messages: news, offers and reminders</legend>
{{range .Prefs}}<input type="hidden" name="shown" value="{{.Channel}}">
<div class="row"><input type="checkbox" id="marketing_{{.Channel}}" name="marketing_{{.Channel}}" value="on"{{if .Subscribed}} checked{{end}}><label for="marketing_{{.Channel}}">{{.Label}}</label></div>
{{end}}</fieldset>
<p>Untick a box to stop those messages. Messages about your orders and your account (receipts, password resets) are not affected.</p>
<button type="submit">Save my preferences</button>
</form>{{else}}<p>We have no way to send you marketing messages.</p>{{end}}
</main></body></html>`))

var channelLabels = map[string]string{"email": "By email", "sms": "By text message (SMS)", "webhook": "Through our partners"}

type preferenceLine struct {
	channel.Preference
	Label string
}

// preferencesToken verifies the token of a preference link and loads its profile.
func (s *Server) preferencesToken(c echo.Context, raw string) (channel.PreferencesToken, *profile.View, error) {
	if s.Channels == nil || s.Channels.Box() == nil {
		return channel.PreferencesToken{}, nil, problem(http.StatusServiceUnavailable, "Preference links are not enabled on this server (PARCOURS_SECRET_KEY).")
	}
	t, err := s.Channels.Box().VerifyPreferences(raw, time.Now())
	if err != nil {
		return t, nil, &Problem{Type: typeValidation, Title: "Invalid preference link", Status: http.StatusBadRequest,
			Detail: "This preference link is not valid; use the link of the message as it came.",
			Errors: []FieldError{{Field: "token", Reason: "is not a token this server signed, or it has expired"}}}
	}
	v, err := s.Profiles.Get(c.Request().Context(), t.WorkspaceID, t.ProfileID)
	if errors.Is(err, profile.ErrNotFound) {
		return t, nil, problem(http.StatusNotFound, "This preference link is no longer valid: we hold no data about you any more.")
	}
	return t, v, err
}

func (s *Server) renderPreferences(c echo.Context, token string, prefs []channel.Preference, saved bool) error {
	lines := make([]preferenceLine, len(prefs))
	for i, p := range prefs {
		lines[i] = preferenceLine{p, channelLabels[p.Channel]}
	}
	var b strings.Builder
	if err := preferencesPage.Execute(&b, map[string]any{"Token": token, "Prefs": lines, "Saved": saved}); err != nil {
		return err
	}
	// The page holds a token that changes consent: not for caches or referrers.
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Referrer-Policy", "no-referrer")
	return c.HTML(http.StatusOK, b.String())
}

// preferencesGet shows the preference page. It changes nothing (link
// scanners open every URL of a message).
func (s *Server) preferencesGet(c echo.Context) error {
	raw := c.QueryParam("token")
	t, v, err := s.preferencesToken(c, raw)
	if err != nil {
		return err
	}
	prefs, err := s.Channels.Preferences(c.Request().Context(), t.WorkspaceID, v, t.Channel)
	if err != nil {
		return err
	}
	return s.renderPreferences(c, raw, prefs, false)
}

// preferencesPost saves the preference page: for each channel the page
// showed, a ticked box subscribes to marketing and an unticked one
// unsubscribes.
func (s *Server) preferencesPost(c echo.Context) error {
	raw := c.FormValue("token")
	t, v, err := s.preferencesToken(c, raw)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	form, err := c.FormParams()
	if err != nil {
		return problem(http.StatusBadRequest, "The form could not be read: "+err.Error())
	}
	current, err := s.Channels.Preferences(ctx, t.WorkspaceID, v, t.Channel)
	if err != nil {
		return err
	}
	var chosen []channel.Preference
	for _, p := range current {
		if !slices.Contains(form["shown"], p.Channel) {
			continue // not on the page the person saw
		}
		chosen = append(chosen, channel.Preference{Channel: p.Channel, Subscribed: form.Get("marketing_"+p.Channel) == "on"})
	}
	changed, err := s.Channels.SavePreferences(ctx, t.WorkspaceID, v, chosen)
	if err != nil {
		return err
	}
	s.recordConsentEvents(ctx, t.WorkspaceID, changed, changeID)
	prefs, err := s.Channels.Preferences(ctx, t.WorkspaceID, v, t.Channel)
	if err != nil {
		return err
	}
	return s.renderPreferences(c, raw, prefs, true)
}

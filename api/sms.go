package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/ingest"
)

// smsChannelRequest is the body of PUT /v1/channels/sms. AuthToken is
// write-only: kept encrypted, never returned.
type smsChannelRequest struct {
	AccountSID          string `json:"account_sid"`
	AuthToken           string `json:"auth_token"`
	FromNumber          string `json:"from_number"`
	MessagingServiceSID string `json:"messaging_service_sid"`
	BaseURL             string `json:"base_url"`
	// StatusCallbackBaseURL is Parcours' public URL as Twilio reaches it;
	// "" means PARCOURS_PUBLIC_URL.
	StatusCallbackBaseURL string `json:"status_callback_base_url"`
}

// smsChannelResponse is the SMS channel with the status callback URL
// messages carry (and Twilio's signatures are checked against).
type smsChannelResponse struct {
	channel.SMSSettings
	StatusCallbackURL string `json:"status_callback_url"`
}

func (s *Server) publicURL() string {
	if s.Ledger == nil {
		return ""
	}
	return s.Ledger.PublicURL
}

func (s *Server) putSMSChannel(c echo.Context) error {
	var req smsChannelRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ws := keyFrom(c).WorkspaceID
	out, err := s.Channels.PutSMS(c.Request().Context(), ws, channel.SMSInput{
		AccountSID: strings.TrimSpace(req.AccountSID), AuthToken: strings.TrimSpace(req.AuthToken),
		FromNumber: strings.TrimSpace(req.FromNumber), MessagingServiceSID: strings.TrimSpace(req.MessagingServiceSID),
		BaseURL: strings.TrimSpace(req.BaseURL), StatusCallbackBaseURL: strings.TrimSpace(req.StatusCallbackBaseURL),
	})
	var fes channel.FieldErrors
	if errors.As(err, &fes) {
		fields := make([]FieldError, len(fes))
		for i, f := range fes {
			fields[i] = FieldError{Field: f.Field, Reason: f.Reason}
		}
		return invalid("The SMS channel settings have invalid fields.", fields...)
	}
	if err != nil {
		return channelProblem(err)
	}
	return c.JSON(http.StatusOK, smsChannelResponse{SMSSettings: out, StatusCallbackURL: channel.TwilioCallbackURL(out, s.publicURL(), ws)})
}

func (s *Server) getSMSChannel(c echo.Context) error {
	ws := keyFrom(c).WorkspaceID
	out, err := s.Channels.SMS(c.Request().Context(), ws)
	if err != nil {
		return channelProblem(err)
	}
	return c.JSON(http.StatusOK, smsChannelResponse{SMSSettings: out, StatusCallbackURL: channel.TwilioCallbackURL(out, s.publicURL(), ws)})
}

// twilioStatusResponse says what a status callback did (Twilio reads the
// status only).
type twilioStatusResponse struct {
	Stored        bool   `json:"stored"`
	DeliveryID    string `json:"delivery_id,omitempty"`
	ProfileEvents int    `json:"profile_events"`
}

// twilioStatus receives Twilio's status callbacks for the workspace in the
// path. Only posts whose X-Twilio-Signature verifies with the workspace's
// auth token over the public callback URL (the channel's
// status_callback_base_url, else PARCOURS_PUBLIC_URL: a proxy changes the
// host this server sees) and the posted parameters are read; any other
// answers 401 and stores nothing. A 2xx answer means the status is stored
// (once per SID and status) and recorded on its profile; Twilio's retry
// of a failed post changes nothing already done.
func (s *Server) twilioStatus(c echo.Context) error {
	if s.Channels == nil || s.Ledger == nil || s.Ingest == nil {
		return problem(http.StatusServiceUnavailable, "Delivery events are not enabled on this server.")
	}
	ctx := c.Request().Context()
	ws := c.Param("workspace")
	sig := c.Request().Header.Get(channel.TwilioSignatureHeader)
	body, err := readRawBody(c)
	if err != nil {
		return err
	}
	refuse := func(reason string) error {
		p := unauthorized("The post is not a signed Twilio status callback for this workspace; nothing was stored.")
		p.Errors = []FieldError{{Field: channel.TwilioSignatureHeader, Reason: reason}}
		return p
	}
	if sig == "" {
		return refuse("is missing: only signed posts are accepted")
	}
	if !isUUID(ws) {
		return refuse("does not verify: no such workspace")
	}
	settings, token, err := s.Channels.SMSWithToken(ctx, ws)
	if errors.Is(err, channel.ErrNotConfigured) {
		return refuse("does not verify: this workspace has no SMS channel (PUT /v1/channels/sms)")
	}
	if err != nil {
		return err
	}
	callback := channel.TwilioCallbackURL(settings, s.publicURL(), ws)
	if callback == "" {
		return refuse("cannot be checked: the public URL Twilio posts to is not known (status_callback_base_url or PARCOURS_PUBLIC_URL)")
	}
	if q := c.Request().URL.RawQuery; q != "" {
		callback += "?" + q
	}
	params, err := url.ParseQuery(string(body))
	if err != nil || !channel.VerifyTwilioSignature(token, callback, params, sig) {
		return refuse("does not verify with this workspace's auth token over " + callback + " and the posted parameters")
	}
	st, err := channel.ParseTwilioStatus(params, c.QueryParam("delivery"))
	var fes channel.FieldErrors
	if errors.As(err, &fes) {
		p := invalid("The post is not a Twilio status callback; nothing was stored.")
		p.Status, p.Title = http.StatusBadRequest, "Bad status callback"
		for _, f := range fes {
			p.Errors = append(p.Errors, FieldError{Field: f.Field, Reason: f.Reason})
		}
		return p
	}
	res, err := s.Ledger.RecordTwilioStatus(ctx, ws, st)
	if err != nil {
		return err
	}
	accepted, err := s.recordDeliveryProfileEvents(ctx, ws, res.ProfileEvents)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, twilioStatusResponse{Stored: res.Stored, DeliveryID: res.DeliveryID, ProfileEvents: accepted})
}

// recordDeliveryProfileEvents records the profile events of delivery
// events (Email Opened, SMS Delivered, ...) and lets segments and journeys
// see them, as after ingestion. The events are committed first; should the
// segment or journey update fail, the scheduled sweep catches up, so that
// is logged, not returned.
func (s *Server) recordDeliveryProfileEvents(ctx context.Context, ws string, pes []channel.ProfileEvent) (int, error) {
	internal := make([]ingest.InternalEvent, len(pes))
	for i, pe := range pes {
		internal[i] = ingest.InternalEvent{ProfileID: pe.ProfileID, Message: pe.Message}
	}
	recorded, err := s.Ingest.IngestInternal(ctx, ws, internal)
	if err != nil {
		return 0, err
	}
	if s.Segments != nil {
		moves, err := s.Segments.RefreshForJourneys(ctx, ws, recorded.Changes, time.Now().UTC())
		if err != nil {
			s.logger.ErrorContext(ctx, "real-time segment update after delivery events failed", "err", err)
		}
		if err := s.triggerSegmentJourneys(ctx, ws, moves.Moves); err != nil {
			s.logger.ErrorContext(ctx, "segment-triggered journeys after delivery events failed", "err", err)
		}
	}
	if err := s.triggerJourneys(ctx, ws, recorded.Stored); err != nil {
		s.logger.ErrorContext(ctx, "journey trigger after delivery events failed", "err", err)
	}
	return recorded.Accepted, nil
}

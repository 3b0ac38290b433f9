package api

import (
	"crypto/ecdsa"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"

	"github.com/parcours/parcours/pkg/channel"
)

// sendgridEventsResponse says what a batch did (SendGrid reads the status only).
type sendgridEventsResponse struct {
	Received      int `json:"received"`
	Stored        int `json:"stored"`
	Duplicates    int `json:"duplicates"`
	Ignored       int `json:"ignored"`
	ProfileEvents int `json:"profile_events"`
}

// sendgridEvents receives SendGrid's signed Event Webhook for the workspace
// in the path, whose email channel holds the verification key. Only posts
// signed with that key, over the body exactly as sent, with a timestamp
// within channel.EventWebhookWindow, are read; any other answers 401 and
// stores nothing. A 2xx answer means every event is stored (once) and
// recorded on its profile; on a 5xx SendGrid posts the batch again, which
// changes nothing already done.
func (s *Server) sendgridEvents(c echo.Context) error {
	if s.Channels == nil || s.Ledger == nil || s.Ingest == nil {
		return problem(http.StatusServiceUnavailable, "Delivery events are not enabled on this server.")
	}
	ctx := c.Request().Context()
	ws := c.Param("workspace")
	sig := c.Request().Header.Get(eventwebhook.VerificationHTTPHeader)
	ts := c.Request().Header.Get(eventwebhook.TimestampHTTPHeader)
	body, err := readRawBody(c)
	if err != nil {
		return err
	}
	var key *ecdsa.PublicKey
	if sig != "" && ts != "" && isUUID(ws) {
		key, err = s.Channels.EventWebhookKey(ctx, ws)
		if err != nil && !errors.Is(err, channel.ErrNotConfigured) {
			return err
		}
	}
	if err := channel.VerifyEventWebhook(key, body, sig, ts, time.Now()); err != nil {
		var se *channel.SignatureError
		if errors.As(err, &se) {
			p := unauthorized("The post is not a signed SendGrid Event Webhook post for this workspace; nothing was stored.")
			p.Errors = []FieldError{{Field: se.Field, Reason: se.Reason}}
			return p
		}
		return err
	}
	res, err := s.Ledger.RecordSendGridEvents(ctx, ws, body)
	var fe *channel.FieldError
	if errors.As(err, &fe) {
		p := invalid("The body is not a batch of SendGrid events; nothing was stored.", FieldError{Field: fe.Field, Reason: fe.Reason})
		p.Status, p.Title = http.StatusBadRequest, "Bad event batch"
		return p
	}
	if err != nil {
		return err
	}
	accepted, err := s.recordDeliveryProfileEvents(ctx, ws, res.ProfileEvents)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sendgridEventsResponse{
		Received: res.Received, Stored: res.Stored, Duplicates: res.Duplicates, Ignored: res.Ignored, ProfileEvents: accepted,
	})
}

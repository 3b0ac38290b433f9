package api

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/devmail"
	"github.com/parcours/parcours/pkg/user"
)

// The dev mailbox: in `parcours dev`, the email channel points at a fake
// SendGrid served here (pkg/devmail), and the console shows what it
// received. Elsewhere these routes answer 404.

var errNoDevMailbox = problem(http.StatusNotFound, "The dev mailbox exists only in `parcours dev`: there, emails are caught here instead of being sent.")

// devSendGrid is the fake SendGrid's mail/send endpoint. It answers in
// SendGrid's wire format (the SendGrid client reads it), not problem+json.
func (s *Server) devSendGrid(c echo.Context) error {
	if s.DevMailbox == nil {
		return errNoDevMailbox
	}
	s.DevMailbox.ServeHTTP(c.Response(), c.Request())
	return nil
}

// mailRow is a message as the mailbox lists it.
type mailRow struct {
	ID, To, From, Subject string
	At                    time.Time
	// Journey is the name of the journey that sent it ("" for a test send).
	Journey   string
	JourneyID string
	// ProfileID is the profile it went to, when the ledger knows.
	ProfileID string
	Status    string
	Events    []string
}

// mailboxData is the mailbox page's data.
type mailboxData struct {
	Messages []mailRow
	// Capacity is how many messages the mailbox keeps.
	Capacity int
}

// mailRowOf describes a message with the journey and profile the ledger
// knows for it.
func (s *Server) mailRowOf(ctx context.Context, ws string, m devmail.Message, journeys map[string]string) mailRow {
	r := mailRow{ID: m.ID, To: m.To.Email, Subject: m.Subject, At: m.ReceivedAt, Events: m.Events, Status: "received"}
	r.From = m.From.Email
	if m.From.Name != "" {
		r.From = m.From.Name + " <" + m.From.Email + ">"
	}
	if jid := m.CustomArgs["parcours_journey_id"]; jid != "" && isUUID(jid) && s.Journeys != nil {
		name, ok := journeys[jid]
		if !ok {
			if j, err := s.Journeys.Get(ctx, ws, jid); err == nil {
				name = j.Name
			}
			journeys[jid] = name
		}
		r.Journey, r.JourneyID = name, jid
	}
	if did := m.CustomArgs["parcours_delivery_id"]; did != "" && isUUID(did) && s.Ledger != nil {
		if d, err := s.Ledger.Get(ctx, ws, did); err == nil {
			r.ProfileID = d.ProfileID
			r.Status = deliveryStatus(d)
		}
	}
	return r
}

func (s *Server) mailboxPage(c echo.Context, sess user.Session) error {
	if s.DevMailbox == nil {
		return errNoDevMailbox
	}
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	d := mailboxData{Capacity: s.DevMailbox.Capacity()}
	journeys := map[string]string{}
	for _, m := range s.DevMailbox.List(ws) {
		d.Messages = append(d.Messages, s.mailRowOf(ctx, ws, m, journeys))
	}
	return s.render(c, http.StatusOK, "mailbox.html", view{Title: "Mailbox", Nav: "mailbox", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// mailData is one message's page.
type mailData struct {
	mailRow
	HTML, Text string
	Headers    map[string]string
	CanAct     bool
	Notice     string
}

func (s *Server) mailboxMessagePage(c echo.Context, sess user.Session) error {
	if s.DevMailbox == nil {
		return errNoDevMailbox
	}
	ws := sess.User.WorkspaceID
	m, ok := s.DevMailbox.Get(ws, c.Param("id"))
	if !ok {
		return problem(http.StatusNotFound, "This message is not in the dev mailbox (it keeps the latest messages only, and forgets them when `parcours dev` restarts).")
	}
	d := mailData{mailRow: s.mailRowOf(c.Request().Context(), ws, m, map[string]string{}), HTML: m.HTML, Text: m.Text, Headers: m.Headers,
		CanAct: sess.User.Role.Allows(user.RoleMarketer)}
	switch c.QueryParam("simulated") {
	case "open":
		d.Notice = "Recorded as opened by the recipient, as SendGrid's event webhook would report it."
	case "click":
		d.Notice = "Recorded as clicked by the recipient, as SendGrid's event webhook would report it."
	}
	title := m.Subject
	if title == "" {
		title = "(no subject)"
	}
	return s.render(c, http.StatusOK, "mailbox_message.html", view{Title: title, Nav: "mailbox", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// mailboxSimulate posts an open or a click of a message back through the
// Event Webhook, as SendGrid would, so that journeys waiting for opens and
// the reports can be tried in dev.
func (s *Server) mailboxSimulate(c echo.Context, sess user.Session) error {
	if s.DevMailbox == nil {
		return errNoDevMailbox
	}
	id := c.Param("id")
	if _, ok := s.DevMailbox.Get(sess.User.WorkspaceID, id); !ok {
		return problem(http.StatusNotFound, "This message is not in the dev mailbox.")
	}
	ev := c.FormValue("event")
	if ev != "open" && ev != "click" {
		return problem(http.StatusUnprocessableEntity, "Choose what the recipient does: open or click.")
	}
	if err := s.DevMailbox.Simulate(c.Request().Context(), id, ev); err != nil {
		return problem(http.StatusBadGateway, "The event could not be recorded: "+err.Error())
	}
	return c.Redirect(http.StatusSeeOther, "/mailbox/"+url.PathEscape(id)+"?simulated="+ev)
}

// deliveryStatus says where a delivery stands, in words: the furthest
// event the provider reported, else the ledger's status.
func deliveryStatus(d channel.Delivery) string {
	switch {
	case d.ClickedAt != nil:
		return "clicked"
	case d.OpenedAt != nil:
		return "opened"
	case d.BouncedAt != nil:
		return "bounced"
	case d.DeliveredAt != nil:
		return "delivered"
	}
	switch d.Status {
	case "claimed":
		return "sending"
	case "unknown":
		return "maybe sent"
	}
	return d.Status
}

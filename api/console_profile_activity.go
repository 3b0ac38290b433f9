package api

import (
	"context"
	"sort"
	"time"

	"github.com/parcours/parcours/pkg/channel"
)

// The 360 page's journeys, deliveries and consent, and the timeline entries
// they add: a journey entered, an email sent or not sent. Those are read
// from the journey runs and the delivery ledger, where they are recorded,
// and laid into the timeline of the profile's records by time.

// profileRunRow is one of the profile's journey runs.
type profileRunRow struct {
	JourneyID, Journey string
	EnteredAt          time.Time
	// Where is the step the run is at, or how it ended.
	Where   string
	Running bool
	URL     string
}

// deliveryRow is one message sent (or not) to the profile.
type deliveryRow struct {
	Template, Journey, JourneyID, Channel string
	Status, Reason                        string
	At                                    time.Time
	DeliveredAt, OpenedAt, ClickedAt      *time.Time
}

// consentRow is the profile's consent for a channel and purpose.
type consentRow struct {
	Channel, Purpose, Status, Source string
	UpdatedAt                        time.Time
}

// profileActivity fills the 360 page's journeys, deliveries and consent,
// and adds their moments to the timeline.
func (s *Server) profileActivity(ctx context.Context, ws, profileID string, d *profileData) error {
	if s.Journeys != nil {
		runs, err := s.Journeys.ProfileRuns(ctx, ws, profileID, 50)
		if err != nil {
			return err
		}
		words, err := s.journeyWords(ctx, ws)
		if err != nil {
			return err
		}
		steps := map[string]map[string]string{} // journey → node → words
		for _, r := range runs {
			if _, ok := steps[r.JourneyID]; !ok {
				steps[r.JourneyID] = map[string]string{}
				if def, err := s.Journeys.Version(ctx, ws, r.JourneyID, r.Version); err == nil {
					for _, n := range def.Nodes {
						st := words.step(n)
						steps[r.JourneyID][n.ID] = st.Kind + " — " + st.Text
					}
				}
			}
			row := profileRunRow{JourneyID: r.JourneyID, Journey: r.JourneyName, EnteredAt: r.EnteredAt, URL: s.runURL(r.WorkflowID, r.RunID)}
			switch {
			case r.EndReason != nil:
				row.Where = "Ended: " + endReason(*r.EndReason)
			case r.Node != nil:
				row.Where, row.Running = "At: "+orDash(steps[r.JourneyID][*r.Node]), true
			default:
				row.Where, row.Running = "Starting", true
			}
			d.Journeys = append(d.Journeys, row)
			d.Events = append(d.Events, eventRow{At: r.EnteredAt, What: "Entered the journey “" + r.JourneyName + "”", Source: "journey", Detail: row.Where, Kind: "journey"})
		}
	}
	if s.Ledger != nil {
		ds, err := s.Ledger.List(ctx, ws, profileID, 50)
		if err != nil {
			return err
		}
		names := map[string]string{}
		if s.Templates != nil {
			ts, err := s.Templates.List(ctx, ws)
			if err != nil {
				return err
			}
			for _, t := range ts {
				names[t.ID] = t.Name
			}
		}
		journeys := map[string]string{}
		for _, r := range d.Journeys {
			journeys[r.JourneyID] = r.Journey
		}
		for _, del := range ds {
			row := deliveryRow{Template: orDash(names[del.TemplateID]), Journey: journeys[del.JourneyID], JourneyID: del.JourneyID, Channel: del.Channel,
				Status: deliveryStatus(del), Reason: del.Reason, At: del.CreatedAt,
				DeliveredAt: del.DeliveredAt, OpenedAt: del.OpenedAt, ClickedAt: del.ClickedAt}
			if del.SentAt != nil {
				row.At = *del.SentAt
			}
			if del.JourneyID != "" && row.Journey == "" {
				if j, err := s.Journeys.Get(ctx, ws, del.JourneyID); err == nil {
					row.Journey = j.Name
				}
			}
			d.Deliveries = append(d.Deliveries, row)
			what := channelNoun(del.Channel) + " sent: " + row.Template
			if del.Status != "sent" {
				what = channelNoun(del.Channel) + " not sent: " + row.Template
			}
			detail := row.Status
			if row.Reason != "" {
				detail += " · " + row.Reason
			}
			src := "test send"
			if row.Journey != "" {
				src = "journey “" + row.Journey + "”"
			}
			d.Events = append(d.Events, eventRow{At: row.At, What: what, Source: src, Detail: detail, Kind: "delivery"})
		}
	}
	if s.Channels != nil {
		subs, err := s.Channels.Subscriptions(ctx, ws, profileID)
		if err != nil {
			return err
		}
		for _, sub := range subs {
			d.Consents = append(d.Consents, consentRow{Channel: channelNoun(sub.Channel), Purpose: sub.Purpose, Status: sub.Status, Source: humanLabel(sub.Source), UpdatedAt: sub.UpdatedAt})
		}
	}
	sort.SliceStable(d.Events, func(i, j int) bool { return d.Events[i].At.After(d.Events[j].At) })
	return nil
}

// channelNoun names a channel for people.
func channelNoun(ch string) string {
	switch ch {
	case channel.ChannelEmail:
		return "Email"
	case channel.ChannelWebhook:
		return "Webhook"
	case "sms":
		return "Text message"
	}
	return humanLabel(ch)
}

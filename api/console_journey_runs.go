package api

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/report"
	"github.com/parcours/parcours/pkg/user"
)

// The runs at a step (/journeys/:id/runs?node=wait_order): who is there
// now, since when they are in the journey, and each run in the Temporal UI
// — the console side of GET /v1/journeys/:id/runs?node=. Without a node,
// the journey's latest runs.

// nodeRunRow is one run waiting at (or passing) the step.
type nodeRunRow struct {
	ProfileID, Profile string
	EnteredAt          time.Time
	Version            int
	Where              string
	URL                string
}

type journeyRunsData struct {
	ID, Name string
	// Node is the step asked for ("" for the latest runs); Step says it in words.
	Node, Kind, Step string
	Runs             []nodeRunRow
	JourneyRunsURL   string
	CanEdit          bool
}

func (s *Server) journeyRunsPage(c echo.Context, sess user.Session) error {
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	j, err := s.loadJourney(c, ws, c.Param("id"))
	if err != nil {
		return err
	}
	w, err := s.journeyWords(ctx, ws)
	if err != nil {
		return err
	}
	def := j.Draft
	if j.PublishedVersion != nil {
		if def, err = s.Journeys.Version(ctx, ws, j.ID, *j.PublishedVersion); err != nil {
			return err
		}
	}
	words := func(id string) (string, string) {
		for _, n := range slices.Concat(def.Nodes, j.Draft.Nodes) {
			if n.ID == id {
				st := w.step(n)
				return st.Kind, st.Text
			}
		}
		return "Step", id
	}
	d := journeyRunsData{ID: j.ID, Name: j.Name, Node: c.QueryParam("node"), JourneyRunsURL: s.journeyRunsURL(j.ID),
		CanEdit: sess.User.Role.Allows(user.RoleMarketer)}
	var runs []journey.Run
	if d.Node != "" {
		d.Kind, d.Step = words(d.Node)
		runs, err = s.Journeys.RunsAt(ctx, ws, j.ID, d.Node)
	} else {
		runs, err = s.Journeys.Runs(ctx, ws, j.ID, 200)
	}
	if err != nil {
		return err
	}
	labels := map[string]string{}
	for _, r := range runs {
		row := nodeRunRow{ProfileID: r.ProfileID, EnteredAt: r.EnteredAt, Version: r.Version, URL: s.runURL(r.WorkflowID, r.RunID)}
		if row.Profile, err = s.cachedLabel(ctx, labels, ws, r.ProfileID); err != nil {
			return err
		}
		switch {
		case r.EndReason != nil:
			row.Where = "Ended: " + endReason(*r.EndReason)
		case r.Node != nil:
			kind, text := words(*r.Node)
			row.Where = kind + " — " + text
		default:
			row.Where = "Starting"
		}
		d.Runs = append(d.Runs, row)
	}
	title := "Runs of " + j.Name
	if d.Node != "" {
		title = strconv.Itoa(len(d.Runs)) + " at " + d.Node + " · " + j.Name
	}
	return s.render(c, http.StatusOK, "journey_runs.html", view{Title: title, Nav: "journeys", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// journeyFunnel lists the journey's steps in diagram order with the runs
// that went through each, and for message steps what their messages did
// since the journey was created (pkg/report's per-node figures, as GET
// /v1/reports/journeys/:id answers them). It also answers the journey's
// conversions.
func (s *Server) journeyFunnel(ctx context.Context, ws string, j journey.Journey, def journey.Definition, steps map[string]diagramStep, entered int) ([]funnelRow, int, error) {
	var ids []string
	for _, n := range def.Nodes {
		ids = append(ids, n.ID)
	}
	byNode := map[string]report.Counts{}
	converted := 0
	if s.Pool != nil {
		r, err := report.NewStore(s.Pool).Journey(ctx, ws, j.ID, j.Name, ids,
			report.Window{From: j.CreatedAt.Add(-time.Minute), To: time.Now().Add(time.Minute), Zone: time.UTC})
		if err != nil {
			return nil, 0, err
		}
		for _, row := range r.Nodes {
			byNode[row.Key] = row.Counts
		}
		converted = r.Total.Converted
	}
	types := map[string]string{}
	for _, n := range def.Nodes {
		types[n.ID] = n.Type
	}
	var out []funnelRow
	for _, layer := range def.Layout().Layers {
		for _, id := range layer {
			st, c := steps[id], byNode[id]
			row := funnelRow{diagramStep: st, Share: pct(st.Passed, entered), Converted: c.Converted, RunsURL: st.Link,
				Message: types[id] == journey.NodeSend, Sent: c.Sent, Opened: c.Opened, Clicked: c.Clicked,
				OpenShare: pct(c.Opened, c.Sent), ClickShare: pct(c.Clicked, c.Sent)}
			out = append(out, row)
		}
	}
	return out, converted, nil
}

package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/user"
)

// journeyRow is a journey as lists show it, with its recent runs.
type journeyRow struct {
	ID, Name, Status string
	// StatusKey is draft, live or paused (for styling).
	StatusKey string
	// Version is the published version ("" when never published).
	Version string
	// RunsURL lists the journey's runs in the Temporal UI ("" without a UI).
	RunsURL string
	Runs    []runRow
	// Entered counts the journey's runs; Running those in progress.
	Entered, Running int
}

// runRow is one run of a journey.
type runRow struct {
	ProfileID, Profile string
	EnteredAt          time.Time
	// Where is the step the run is at, or how it ended.
	Where string
	Ended bool
	URL   string
}

var journeyStatusLabels = map[string]string{"draft": "Draft", "live": "Live", "paused": "Paused"}

// journeyRows lists the workspace's journeys; with runs > 0, each with its
// latest runs.
func (s *Server) journeyRows(c echo.Context, workspaceID string, runs int) ([]journeyRow, error) {
	ctx := c.Request().Context()
	js, err := s.Journeys.List(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{}
	out := make([]journeyRow, len(js))
	for i, j := range js {
		row := journeyRow{ID: j.ID, Name: j.Name, Status: journeyStatusLabels[j.Status], StatusKey: j.Status, RunsURL: s.journeyRunsURL(j.ID)}
		if row.Status == "" {
			row.Status = j.Status
		}
		if j.PublishedVersion != nil {
			row.Version = "version " + strconv.Itoa(*j.PublishedVersion)
		}
		st, err := s.Journeys.Stats(ctx, workspaceID, j.ID)
		if err != nil {
			return nil, err
		}
		row.Entered = st.Entered
		for _, n := range st.AtNode {
			row.Running += n
		}
		if runs > 0 {
			rs, err := s.Journeys.Runs(ctx, workspaceID, j.ID, runs)
			if err != nil {
				return nil, err
			}
			for _, r := range rs {
				rr := runRow{ProfileID: r.ProfileID, EnteredAt: r.EnteredAt, URL: s.runURL(r.WorkflowID, r.RunID), Ended: r.EndedAt != nil}
				if rr.Profile, err = s.cachedLabel(ctx, labels, workspaceID, r.ProfileID); err != nil {
					return nil, err
				}
				switch {
				case r.EndReason != nil:
					rr.Where = "ended: " + *r.EndReason
				case r.Node != nil:
					rr.Where = "at " + *r.Node
				default:
					rr.Where = "starting"
				}
				row.Runs = append(row.Runs, rr)
			}
		}
		out[i] = row
	}
	return out, nil
}

func (s *Server) cachedLabel(ctx context.Context, cache map[string]string, workspaceID, profileID string) (string, error) {
	if l, ok := cache[profileID]; ok {
		return l, nil
	}
	card, err := s.profileCard(ctx, workspaceID, profileID)
	if err != nil {
		return "", err
	}
	cache[profileID] = card.Label
	return card.Label, nil
}

// journeyRunsURL is the Temporal UI's list of a journey's runs, found by
// the ParcoursJourney search attribute.
func (s *Server) journeyRunsURL(journeyID string) string {
	if s.TemporalUIURL == "" {
		return ""
	}
	q := url.Values{"query": {`ParcoursJourney = "` + journeyID + `"`}}
	return s.TemporalUIURL + "/namespaces/" + url.PathEscape(s.Namespace) + "/workflows?" + q.Encode()
}

type journeysData struct {
	Journeys []journeyRow
	CanEdit  bool
}

func (s *Server) journeysPage(c echo.Context, sess user.Session) error {
	rows, err := s.journeyRows(c, sess.User.WorkspaceID, 0)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "journeys.html", view{Title: "Journeys", Nav: "journeys", User: &sess.User, CSRF: sess.CSRF,
		D: journeysData{Journeys: rows, CanEdit: sess.User.Role.Allows(user.RoleMarketer)}})
}

package api

import (
	"context"
	"errors"
	"html/template"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/user"
)

// A saved segment's page shows, under its editor, who is in it (a page of
// members at a time, each linked to the profile), how its size went over
// time (a chart from the size history, with the numbers in a table), and an
// Export CSV link that downloads every member with the console session.

// membersPerPage is how many members the segment page lists at once: a
// screenful, and one profile read each.
const membersPerPage = 25

// memberRow is one member as the segment page lists it.
type memberRow struct {
	ProfileID, Label string
	// State is the profile's state in words; StateClass styles its badge.
	State, StateClass string
	Since             time.Time
	// Erased: the profile was erased after it entered; there is no page.
	Erased bool
}

// membersPage is one page of a segment's members, in the order of the
// members API (by profile id), so that pages are stable while people enter
// and leave.
type membersPage struct {
	Rows []memberRow
	// Next is the cursor of the next page, "" on the last one.
	Next string
	// Paged says this is not the first page.
	Paged   bool
	PerPage int
}

// sizeRow is one point of the size history as the table lists it; Now
// marks the segment's current size.
type sizeRow struct {
	At   time.Time
	Size int
	Now  bool
}

// segmentDetails fills what the page shows of a saved segment: last change,
// members, size history.
func (s *Server) segmentDetails(c echo.Context, sess user.Session, d *segmentData) error {
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	d.CanExport = sess.User.Role.Allows(user.RoleMarketer)
	var err error
	if d.LastChange, err = s.Segments.LastChange(ctx, ws, d.ID); err != nil {
		return err
	}
	// A cursor that is not one the page gave out (a hand-edited link) shows
	// the first page rather than an error.
	after := c.QueryParam("members_after")
	if !isUUID(after) {
		after = ""
	}
	if d.Members, err = s.memberRows(ctx, ws, d.ID, after); err != nil {
		return err
	}
	points, err := s.Segments.Sizes(ctx, ws, d.ID)
	if err != nil {
		return err
	}
	d.SizeChart, d.Sizes = sizeHistory(d.Name, points, d.Size, time.Now())
	return nil
}

// memberRows loads a page of members with the name, email or identifier
// that a marketer recognises them by.
func (s *Server) memberRows(ctx context.Context, ws, segmentID, after string) (membersPage, error) {
	page := membersPage{Paged: after != "", PerPage: membersPerPage}
	ms, next, err := s.Segments.Members(ctx, ws, segmentID, after, membersPerPage)
	if err != nil {
		return page, err
	}
	page.Next = next
	for _, m := range ms {
		row := memberRow{ProfileID: m.ProfileID, Since: m.EnteredAt}
		v, err := s.Profiles.Get(ctx, ws, m.ProfileID)
		switch {
		case errors.Is(err, profile.ErrNotFound):
			row.Label, row.Erased = "A profile erased since", true
		case err != nil:
			return page, err
		default:
			row.Label, row.State, row.StateClass = profileLabel(v), stateLabel(v.State), v.State
		}
		page.Rows = append(page.Rows, row)
	}
	return page, nil
}

// sizeHistory draws the size history and lists it newest first. The
// history is recorded at each recompute; between them, people enter and
// leave in real time, so the current size ends the line.
func sizeHistory(name string, points []segment.SizePoint, current int, now time.Time) (chart template.HTML, rows []sizeRow) {
	series := chartSeries{Name: "Members"}
	for _, p := range points {
		series.Points = append(series.Points, chartPoint{At: p.At.UTC(), Value: float64(p.Size)})
		rows = append(rows, sizeRow{At: p.At.UTC(), Size: p.Size})
	}
	now = now.UTC()
	series.Points = append(series.Points, chartPoint{At: now, Value: float64(current)})
	rows = append(rows, sizeRow{At: now, Size: current, Now: true})
	for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
		rows[i], rows[j] = rows[j], rows[i]
	}
	return lineChart("Size of “"+name+"” over time", []chartSeries{series},
		chartOptions{ID: "size-chart-svg", Height: 220, Desc: "Members of the segment at each recompute, and now."}), rows
}

// exportSegmentPage downloads the segment's members as CSV with the console
// session: the same file as GET /v1/segments/{id}/export. It holds personal
// data, so it is never cached, and who took it is logged (ids only).
func (s *Server) exportSegmentPage(c echo.Context, sess user.Session) error {
	ws := sess.User.WorkspaceID
	sg, err := s.loadSegment(c, ws, c.Param("id"))
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	s.logger.InfoContext(c.Request().Context(), "segment exported from the console", "workspace_id", ws, "segment_id", sg.ID, "user_id", sess.User.ID)
	return s.writeMembersCSV(c, ws, sg)
}

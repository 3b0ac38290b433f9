package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/parcours/parcours/pkg/csvsafe"
	"github.com/parcours/parcours/pkg/rules"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/workflows"
)

// segmentRequest is the body of POST and PATCH /v1/segments.
type segmentRequest struct {
	Slug string  `json:"slug"`
	Name *string `json:"name"`
	Rule *string `json:"rule"`
}

// segmentProblem maps segment errors to problems that point at the field,
// and at the line and column of a rule.
func segmentProblem(err error) error {
	var re *rules.Error
	var fe *segment.FieldError
	switch {
	case errors.As(err, &re):
		return invalid("The rule does not compile.", FieldError{Field: "rule", Reason: re.Message, Line: re.Line, Column: re.Column})
	case errors.As(err, &fe):
		return invalid("The segment cannot be saved.", FieldError{Field: fe.Field, Reason: fe.Reason})
	case errors.Is(err, segment.ErrSlugTaken):
		return invalid("Choose another slug.", FieldError{Field: "slug", Reason: "a segment with this slug exists in this workspace"})
	case errors.Is(err, segment.ErrNotFound):
		return problem(http.StatusNotFound, "No such segment in this workspace.")
	}
	return err
}

func (s *Server) listSegments(c echo.Context) error {
	segs, err := s.Segments.List(c.Request().Context(), keyFrom(c).WorkspaceID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": segs})
}

func (s *Server) createSegment(c echo.Context) error {
	var req segmentRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Rule == nil || req.Name == nil {
		return invalid("A segment needs a slug, a name and a rule.", FieldError{Field: "rule", Reason: "is required, e.g. count(\"Order Completed\", \"30d\") >= 2"})
	}
	ws := keyFrom(c).WorkspaceID
	sg, err := s.Segments.Create(c.Request().Context(), ws, req.Slug, *req.Name, *req.Rule)
	if err != nil {
		return segmentProblem(err)
	}
	s.startRecompute(c, ws, "created/"+sg.ID)
	return c.JSON(http.StatusCreated, sg)
}

func (s *Server) getSegment(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return segmentProblem(segment.ErrNotFound)
	}
	sg, err := s.Segments.Get(c.Request().Context(), keyFrom(c).WorkspaceID, id)
	if err != nil {
		return segmentProblem(err)
	}
	return c.JSON(http.StatusOK, sg)
}

func (s *Server) updateSegment(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return segmentProblem(segment.ErrNotFound)
	}
	var req segmentRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Slug != "" {
		return invalid("A segment's slug cannot change: journeys and rules refer to it.", FieldError{Field: "slug", Reason: "cannot change"})
	}
	ws := keyFrom(c).WorkspaceID
	sg, err := s.Segments.Update(c.Request().Context(), ws, id, req.Name, req.Rule)
	if err != nil {
		return segmentProblem(err)
	}
	if req.Rule != nil {
		s.startRecompute(c, ws, "updated/"+sg.ID+"/"+sg.UpdatedAt.Format(time.RFC3339Nano))
	}
	return c.JSON(http.StatusOK, sg)
}

func (s *Server) deleteSegment(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return segmentProblem(segment.ErrNotFound)
	}
	if err := s.Segments.Delete(c.Request().Context(), keyFrom(c).WorkspaceID, id); err != nil {
		return segmentProblem(err)
	}
	return c.NoContent(http.StatusNoContent)
}

// startRecompute fills a new or changed segment in the background, as a
// Temporal workflow (visible in the Temporal UI). Failing to start it is not
// fatal: the scheduled sweep gets there.
func (s *Server) startRecompute(c echo.Context, workspaceID, reason string) {
	if s.Temporal == nil {
		return
	}
	_, err := s.Temporal.ExecuteWorkflow(c.Request().Context(), client.StartWorkflowOptions{
		ID:                    workflows.SegmentRecomputeID(workspaceID, reason),
		TaskQueue:             s.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.SAWorkspace.ValueSet(workspaceID)),
	}, workflows.SegmentRecomputeWorkflow, workflows.SegmentRecomputeInput{WorkspaceID: workspaceID})
	if err != nil {
		s.logger.WarnContext(c.Request().Context(), "could not start segment recompute; the schedule will", "err", err)
	}
}

// previewRequest is the body of POST /v1/segments/preview.
type previewRequest struct {
	Rule   string `json:"rule"`
	Sample int    `json:"sample"`
}

func (s *Server) previewSegment(c echo.Context) error {
	var req previewRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Sample <= 0 || req.Sample > 100 {
		req.Sample = 10
	}
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	start := time.Now()
	res, err := s.Segments.Preview(ctx, ws, req.Rule, time.Now().UTC(), req.Sample)
	if err != nil {
		return segmentProblem(err)
	}
	sample := make([]any, 0, len(res.Sample))
	for _, id := range res.Sample {
		v, err := s.Profiles.Get(ctx, ws, id)
		if err != nil {
			continue
		}
		sample = append(sample, map[string]any{"id": v.ID, "state": v.State, "traits": v.Traits, "identities": v.Identities})
	}
	return c.JSON(http.StatusOK, map[string]any{"count": res.Count, "scanned": res.Scanned, "sample": sample, "took_ms": time.Since(start).Milliseconds()})
}

func (s *Server) segmentMembers(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return segmentProblem(segment.ErrNotFound)
	}
	limit, err := intParam(c, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	cursor := c.QueryParam("cursor")
	if cursor != "" && !isUUID(cursor) {
		return invalid("The cursor is not one this API gave out.", FieldError{Field: "cursor", Reason: "use the next_cursor of the previous page"})
	}
	ws := keyFrom(c).WorkspaceID
	if _, err := s.Segments.Get(c.Request().Context(), ws, id); err != nil {
		return segmentProblem(err)
	}
	ms, next, err := s.Segments.Members(c.Request().Context(), ws, id, cursor, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": ms, "next_cursor": next})
}

func (s *Server) segmentSizes(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return segmentProblem(segment.ErrNotFound)
	}
	ws := keyFrom(c).WorkspaceID
	if _, err := s.Segments.Get(c.Request().Context(), ws, id); err != nil {
		return segmentProblem(err)
	}
	pts, err := s.Segments.Sizes(c.Request().Context(), ws, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": pts})
}

// exportSegment streams the members as CSV: profile id, entry time, email,
// user id.
func (s *Server) exportSegment(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return segmentProblem(segment.ErrNotFound)
	}
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	sg, err := s.Segments.Get(ctx, ws, id)
	if err != nil {
		return segmentProblem(err)
	}
	return s.writeMembersCSV(c, ws, sg)
}

// writeMembersCSV streams a segment's members as CSV, a page of members at a
// time; the API and the console's Export link both download it.
func (s *Server) writeMembersCSV(c echo.Context, ws string, sg segment.Segment) error {
	ctx := c.Request().Context()
	id := sg.ID
	res := c.Response()
	res.Header().Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	res.Header().Set(echo.HeaderContentDisposition, `attachment; filename="segment-`+sg.Slug+`.csv"`)
	res.WriteHeader(http.StatusOK)
	// Cells come from write keys (user ids, emails): csvsafe keeps them data.
	w := csvsafe.NewWriter(res)
	_ = w.Write([]string{"profile_id", "entered_at", "email", "user_id", "state"})
	cursor := ""
	for {
		ms, next, err := s.Segments.Members(ctx, ws, id, cursor, 1000)
		if err != nil {
			s.logger.ErrorContext(ctx, "segment export failed midway", "err", err)
			return nil
		}
		for _, m := range ms {
			email, user, state := "", "", ""
			if v, err := s.Profiles.Get(ctx, ws, m.ProfileID); err == nil {
				state = v.State
				for _, i := range v.Identities {
					switch i.Type {
					case "email":
						email = i.Value
					case "user_id":
						user = i.Value
					}
				}
			}
			_ = w.Write([]string{m.ProfileID, m.EnteredAt.Format(time.RFC3339), email, user, state})
		}
		w.Flush()
		if next == "" {
			return w.Error()
		}
		cursor = next
	}
}

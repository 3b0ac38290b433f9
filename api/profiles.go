package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"go.temporal.io/api/serviceerror"

	"github.com/parcours/parcours/pkg/identity"
	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/workspace"
)

func (s *Server) getProfile(c echo.Context) error {
	v, err := s.profileOf(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// profileOf loads the 360 view of the :id of a profile route in the
// caller's workspace (a merged id answers with the survivor).
func (s *Server) profileOf(c echo.Context) (*profile.View, error) {
	id := c.Param("id")
	notFound := problem(http.StatusNotFound, "No profile "+id+" in this workspace.")
	if !isUUID(id) {
		return nil, notFound
	}
	v, err := s.Profiles.Get(c.Request().Context(), keyFrom(c).WorkspaceID, id)
	if errors.Is(err, profile.ErrNotFound) {
		return nil, notFound
	}
	return v, err
}

// lookupParams maps query parameters to identity types. Any identity trait
// of the workspace (e.g. customer_number) is accepted too.
var lookupParams = map[string]string{
	"userId": identity.UserID, "user_id": identity.UserID,
	"anonymousId": identity.AnonymousID, "anonymous_id": identity.AnonymousID,
	"email": identity.Email, "phone": identity.Phone,
}

func (s *Server) lookupProfile(c echo.Context) error {
	ctx := c.Request().Context()
	k := keyFrom(c)
	q := c.QueryParams()
	if len(q) != 1 {
		return invalid("Look a profile up by exactly one identifier, e.g. ?email=ana@example.com, ?userId=42, ?anonymousId=..., ?phone=+33..., or an identity trait such as ?customer_number=C-1001.",
			FieldError{Field: "query", Reason: "needs exactly one identifier parameter"})
	}
	var param, value string
	for p, vs := range q {
		param, value = p, vs[0]
	}
	typ, ok := lookupParams[param]
	if !ok {
		ws, err := s.Workspaces.Get(ctx, k.WorkspaceID)
		if err != nil {
			return err
		}
		for _, t := range ws.IdentityTraits {
			if t == param {
				typ, ok = t, true
			}
		}
		if !ok {
			return invalid("Unknown identifier.", FieldError{Field: param, Reason: "is not an identifier of this workspace (userId, anonymousId, or one of its identity traits: " + joinList(ws.IdentityTraits) + ")"})
		}
	}
	norm := identity.Normalize(typ, value)
	if norm == "" {
		return invalid("The identifier is not usable.", FieldError{Field: param, Reason: "is empty or not a valid " + typ})
	}
	id, err := s.Profiles.Lookup(ctx, k.WorkspaceID, typ, norm)
	if errors.Is(err, profile.ErrNotFound) {
		return problem(http.StatusNotFound, "No profile has "+param+" "+norm+".")
	}
	if err != nil {
		return err
	}
	v, err := s.Profiles.Get(ctx, k.WorkspaceID, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Server) profileEvents(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return problem(http.StatusNotFound, "No profile "+id+" in this workspace.")
	}
	limit, err := intParam(c, "limit", 50, 1, 500)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	v, err := s.profileOf(c)
	if err != nil {
		return err
	}
	evs, next, err := s.Profiles.Timeline(ctx, ws, v.ID, c.QueryParam("cursor"), limit)
	if errors.Is(err, profile.ErrBadCursor) {
		return invalid("The cursor is not one this API gave out.", FieldError{Field: "cursor", Reason: "use the next_cursor of the previous page"})
	}
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []profile.Event{}
	}
	return c.JSON(http.StatusOK, map[string]any{"profile_id": v.ID, "data": evs, "next_cursor": next})
}

// unmergeProfile undoes one merge of the profile's history and answers with
// both profiles as they are now.
func (s *Server) unmergeProfile(c echo.Context) error {
	id, mergeID := c.Param("id"), c.Param("mergeId")
	if !isUUID(id) || !isUUID(mergeID) {
		return problem(http.StatusNotFound, "No merge "+mergeID+" on profile "+id+".")
	}
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	restored, err := s.unmerge(ctx, ws, id, mergeID)
	switch {
	case errors.Is(err, ingest.ErrMergeNotFound):
		return problem(http.StatusNotFound, "No merge "+mergeID+" into profile "+id+". See the profile's merges list.")
	case errors.Is(err, ingest.ErrMergeAlreadyUndone):
		return problem(http.StatusConflict, "This merge was already undone.")
	case err != nil:
		return err
	}
	survivor, err := s.Profiles.Get(ctx, ws, id)
	if err != nil {
		return err
	}
	back, err := s.Profiles.Get(ctx, ws, restored)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"profile": survivor, "restored": back})
}

// unmerge undoes a merge into survivorID and brings both profiles' segment
// memberships up to date; it returns the id of the profile split off. The
// API and the console's "Undo this merge" both go through it.
func (s *Server) unmerge(ctx context.Context, ws, survivorID, mergeID string) (string, error) {
	restored, err := s.Ingest.Unmerge(ctx, ws, survivorID, mergeID)
	if err != nil {
		return "", err
	}
	if s.Segments != nil {
		changes := []segment.Change{{ProfileID: survivorID, All: true}, {ProfileID: restored, All: true}}
		// The undo is committed; a segment refresh that fails is caught up
		// by the scheduled refresh, so it is logged, not returned.
		if _, err := s.Segments.Refresh(ctx, ws, changes, time.Now().UTC()); err != nil {
			s.logger.ErrorContext(ctx, "segment update after unmerge failed", "err", err)
		}
	}
	return restored, nil
}

// eraseProfile deletes a person (right to erasure).
func (s *Server) eraseProfile(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return problem(http.StatusNotFound, "No profile "+id+" in this workspace.")
	}
	k := keyFrom(c)
	out, err := s.erase(c.Request().Context(), k.WorkspaceID, id, k.ID)
	if errors.Is(err, ingest.ErrProfileNotFound) {
		return problem(http.StatusNotFound, "No profile "+id+" in this workspace.")
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// erase deletes a person and stops their journey runs. by is who asked: the
// API key's id, or the console user's id (both uuids), kept in the erasure's
// audit row. The API and the console's "Erase this person" both go through it.
func (s *Server) erase(ctx context.Context, ws, id, by string) (ingest.Erasure, error) {
	out, err := s.Ingest.Erase(ctx, ws, id, by)
	if err != nil {
		return out, err
	}
	// Erased people leave their journeys at once.
	if s.Journeys != nil && s.Temporal != nil {
		runs, err := s.Journeys.OpenRuns(ctx, ws, out.ProfileID, nil)
		if err != nil {
			return out, err
		}
		for _, r := range runs {
			err := s.Temporal.TerminateWorkflow(ctx, r.WorkflowID, "", "profile erased")
			var nf *serviceerror.NotFound
			if err != nil && !errors.As(err, &nf) {
				s.logger.ErrorContext(ctx, "could not stop the journey run of an erased profile", "workflow_id", r.WorkflowID, "err", err)
				continue
			}
			if err := s.Journeys.RecordEnd(ctx, ws, r.WorkflowID, r.RunID, "erased"); err != nil {
				return out, err
			}
			out.JourneyRuns++
		}
	}
	return out, nil
}

// exportProfile streams everything held about a person as one JSON document:
// the 360 view and every event as received.
func (s *Server) exportProfile(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return problem(http.StatusNotFound, "No profile "+id+" in this workspace.")
	}
	v, err := s.profileOf(c)
	if err != nil {
		return err
	}
	return s.writeProfileExport(c, keyFrom(c).WorkspaceID, v)
}

// writeProfileExport streams the export document of a profile as a JSON
// attachment. It holds personal data: it is never cached. The API and the
// console's "Download this person's data" both go through it.
func (s *Server) writeProfileExport(c echo.Context, ws string, v *profile.View) error {
	ctx := c.Request().Context()
	head, err := json.Marshal(v)
	if err != nil {
		return err
	}
	res := c.Response()
	res.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	res.Header().Set(echo.HeaderContentDisposition, `attachment; filename="profile-`+v.ID+`.json"`)
	res.Header().Set("Cache-Control", "no-store")
	res.WriteHeader(http.StatusOK)
	fmt.Fprintf(res, `{"exported_at":%q,"profile":%s,"events":[`, time.Now().UTC().Format(time.RFC3339), head)
	first := true
	err = s.Profiles.EachEvent(ctx, ws, v.ID, func(ev profile.Event) error {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if !first {
			res.Write([]byte(","))
		}
		first = false
		_, err = res.Write(b)
		return err
	})
	if err != nil {
		// The status is sent: the truncated document is invalid JSON, which a
		// client notices; log for the operator.
		s.logger.ErrorContext(ctx, "export failed midway", "err", err, "profile", v.ID)
		return nil
	}
	_, _ = res.Write([]byte("]}"))
	return nil
}

func (s *Server) listRejected(c echo.Context) error {
	limit, err := intParam(c, "limit", 50, 1, 500)
	if err != nil {
		return err
	}
	before := int64(0)
	if b := c.QueryParam("before"); b != "" {
		if before, err = strconv.ParseInt(b, 10, 64); err != nil {
			return invalid("Bad paging parameter.", FieldError{Field: "before", Reason: "must be the id of a rejected record"})
		}
	}
	recs, err := s.Ingest.ListRejected(c.Request().Context(), keyFrom(c).WorkspaceID, before, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": recs})
}

// updateWorkspaceRequest is the body of PATCH /v1/workspace.
type updateWorkspaceRequest struct {
	UniqueIdentifier *string  `json:"unique_identifier"`
	IdentityTraits   []string `json:"identity_traits"`
}

func (s *Server) updateWorkspace(c echo.Context) error {
	var req updateWorkspaceRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	w, err := s.Workspaces.UpdateSettings(c.Request().Context(), keyFrom(c).WorkspaceID, workspace.Settings{
		UniqueIdentifier: req.UniqueIdentifier, IdentityTraits: req.IdentityTraits,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, w)
}

func intParam(c echo.Context, name string, def, min, max int) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, invalid("Bad query parameter.", FieldError{Field: name, Reason: "must be a whole number from " + strconv.Itoa(min) + " to " + strconv.Itoa(max)})
	}
	return n, nil
}

func joinList(xs []string) string {
	out := ""
	for i, x := range xs {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

package api

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/profile"
)

// enterByAPI puts one profile into a live journey whose trigger is "api":
// a checkout service, a CRM or a support tool decides who enters. The entry
// filter and the re-entry policy apply as for any trigger.
func (s *Server) enterByAPI(c echo.Context) error {
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	id, err := s.journeyOf(c)
	if err != nil {
		return err
	}
	var req struct {
		ProfileID string `json:"profile_id"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if !isUUID(req.ProfileID) {
		return invalid("The entry is not valid.", FieldError{Field: "profile_id", Reason: "is required: the id of the profile to enter (GET /v1/profiles/lookup finds it)"})
	}
	if _, err := s.Profiles.Get(ctx, ws, req.ProfileID); errors.Is(err, profile.ErrNotFound) {
		return invalid("The entry is not valid.", FieldError{Field: "profile_id", Reason: "no such profile in this workspace"})
	} else if err != nil {
		return err
	}
	live, err := s.Journeys.LiveJourneys(ctx, ws)
	if err != nil {
		return err
	}
	for _, j := range live {
		if j.ID != id {
			continue
		}
		if j.Definition.Trigger.Type != journey.TriggerAPI {
			return problem(http.StatusConflict, "This journey starts on its trigger ("+j.Definition.Trigger.Type+"), not through the API; give it the trigger {\"type\": \"api\"} to enter profiles this way.")
		}
		wid, why, err := s.enterJourney(ctx, ws, j, req.ProfileID, 0, journey.EventRecord{Type: "api", Event: "Journey Entry Requested"})
		if err != nil {
			return err
		}
		if wid == "" {
			return c.JSON(http.StatusOK, map[string]any{"entered": false, "reason": why})
		}
		return c.JSON(http.StatusAccepted, map[string]any{"entered": true, "workflow_id": wid})
	}
	return problem(http.StatusConflict, "The journey is not live: publish it (or resume it) first.")
}

// profileJourneys lists a profile's journeys: each run, where it is or how
// it ended, the path it took, and its link in the Temporal UI.
func (s *Server) profileJourneys(c echo.Context) error {
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	id := c.Param("id")
	if !isUUID(id) {
		return problem(http.StatusNotFound, "No such profile in this workspace.")
	}
	if _, err := s.Profiles.Get(ctx, ws, id); errors.Is(err, profile.ErrNotFound) {
		return problem(http.StatusNotFound, "No such profile in this workspace.")
	} else if err != nil {
		return err
	}
	runs, err := s.Journeys.ProfileRuns(ctx, ws, id, 200)
	if err != nil {
		return err
	}
	out := make([]map[string]any, len(runs))
	for i, r := range runs {
		out[i] = map[string]any{"run": r, "temporal_ui_url": s.runURL(r.WorkflowID, r.RunID)}
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out})
}

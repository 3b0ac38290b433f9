package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/workflows/simulate"
)

type simulateRequest struct {
	// ProfileID starts from a stored profile; Traits are laid over it (or
	// make the whole profile when ProfileID is empty).
	ProfileID string         `json:"profile_id"`
	Traits    map[string]any `json:"traits"`
	// Version simulates a published version; 0 simulates the draft.
	Version int `json:"version"`
	// Start is when the run starts (default: now).
	Start   *time.Time       `json:"start"`
	Trigger *simulate.Event  `json:"trigger"`
	Events  []simulate.Event `json:"events"`
	// Horizon bounds simulated time (default 90d).
	Horizon string `json:"horizon"`
}

// simulateJourney runs the journey's real workflow code for one profile and
// a timeline of events, with time skipped, sending nothing.
func (s *Server) simulateJourney(c echo.Context) error {
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	id, err := s.journeyOf(c)
	if err != nil {
		return err
	}
	var req simulateRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	res, err := s.runSimulation(ctx, ws, id, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// runSimulation simulates a journey of the workspace (its draft, or the
// published version req names) for req's profile and timeline. Bad input
// is a 422 Problem naming the field, as the API and the console show it.
func (s *Server) runSimulation(ctx context.Context, ws, id string, req simulateRequest) (simulate.Result, error) {
	var err error
	if req.ProfileID != "" && !isUUID(req.ProfileID) {
		return simulate.Result{}, invalid("The simulation request is not valid.", FieldError{Field: "profile_id", Reason: "must be a profile id (a UUID)"})
	}
	var def journey.Definition
	if req.Version > 0 {
		if def, err = s.Journeys.Version(ctx, ws, id, req.Version); err != nil {
			if errors.Is(err, journey.ErrNotFound) {
				return simulate.Result{}, invalid("The simulation request is not valid.", FieldError{Field: "version", Reason: "this journey has no such published version"})
			}
			return simulate.Result{}, err
		}
	} else {
		j, err := s.Journeys.Get(ctx, ws, id)
		if err != nil {
			return simulate.Result{}, journeyProblem(err)
		}
		if err := journey.Validate(j.Draft); err != nil {
			return simulate.Result{}, journeyProblem(err)
		}
		def = j.Draft
	}
	in := simulate.Input{
		WorkspaceID: ws, Definition: def, JourneyID: id, Version: req.Version,
		ProfileID: req.ProfileID, Traits: req.Traits, Trigger: req.Trigger, Events: req.Events,
		Start: time.Now().UTC().Truncate(time.Second),
	}
	if req.Start != nil {
		in.Start = req.Start.UTC()
	}
	if req.Horizon != "" {
		h, err := segment.ParseWindow(req.Horizon)
		if err != nil || req.Horizon == "all" || h > 400*24*time.Hour {
			return simulate.Result{}, invalid("The simulation request is not valid.", FieldError{Field: "horizon", Reason: "must be a duration up to 400d, such as 30d"})
		}
		in.Horizon = h
	}
	if in.Trigger != nil && strings.TrimSpace(in.Trigger.Event) == "" {
		return simulate.Result{}, invalid("The simulation request is not valid.", FieldError{Field: "trigger.event", Reason: "is required: the name of the record that starts the run"})
	}
	res, err := simulate.Run(ctx, simulate.Deps{Profiles: s.Profiles, Segments: s.Segments, Templates: s.Templates}, in)
	var fe *simulate.FieldError
	if errors.As(err, &fe) {
		return res, invalid("The simulation request is not valid.", FieldError{Field: fe.Field, Reason: fe.Reason})
	}
	return res, err
}

// publishPreview answers what publishing the draft would change: nodes
// added, removed and changed, and the runs in flight on them (which keep
// their version).
func (s *Server) publishPreview(c echo.Context) error {
	id, err := s.journeyOf(c)
	if err != nil {
		return err
	}
	impact, err := s.Journeys.Impact(c.Request().Context(), keyFrom(c).WorkspaceID, id)
	if err != nil {
		return journeyProblem(err)
	}
	return c.JSON(http.StatusOK, impact)
}

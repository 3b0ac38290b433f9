package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.temporal.io/api/serviceerror"
	"sigs.k8s.io/yaml"

	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/trigger"
	"github.com/parcours/parcours/workflows"
)

// journeyProblem maps journey errors to problems naming node and field.
func journeyProblem(err error) error {
	var ve *journey.ValidationError
	switch {
	case errors.As(err, &ve):
		fields := make([]FieldError, len(ve.Errors))
		for i, f := range ve.Errors {
			fields[i] = FieldError{Field: f.Field, Reason: f.Reason, Line: f.Line, Column: f.Column}
		}
		return invalid("The journey is not valid.", fields...)
	case errors.Is(err, journey.ErrNotFound):
		return problem(http.StatusNotFound, "No such journey in this workspace.")
	case errors.Is(err, journey.ErrNeverPublished):
		return problem(http.StatusConflict, "Publish the journey first.")
	}
	return err
}

// readDefinition reads a journey definition as JSON, or as YAML when the
// request says so (Content-Type application/yaml, text/yaml or
// application/x-yaml).
func (s *Server) readDefinition(c echo.Context) (journey.Definition, error) {
	const maxDefinition = 256 * 1024
	raw, err := io.ReadAll(io.LimitReader(c.Request().Body, maxDefinition+1))
	if err != nil {
		return journey.Definition{}, problem(http.StatusBadRequest, "The body could not be read.")
	}
	if len(raw) > maxDefinition {
		// Read whole, it would be cut short and fail as truncated JSON.
		return journey.Definition{}, &journey.ValidationError{Errors: []journey.FieldError{{Field: "(definition)",
			Reason: "is larger than 256 KB; a journey needs far less (long rules belong in segments, used with in_segment)"}}}
	}
	if strings.Contains(c.Request().Header.Get(echo.HeaderContentType), "yaml") {
		js, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return journey.Definition{}, &journey.ValidationError{Errors: []journey.FieldError{{Field: "(definition)", Reason: "is not a valid YAML document: " + err.Error()}}}
		}
		raw = js
	}
	return journey.Parse(raw)
}

func (s *Server) createJourney(c echo.Context) error {
	d, err := s.readDefinition(c)
	if err != nil {
		return journeyProblem(err)
	}
	j, err := s.Journeys.Create(c.Request().Context(), keyFrom(c).WorkspaceID, d)
	if err != nil {
		return journeyProblem(err)
	}
	return c.JSON(http.StatusCreated, j)
}

func (s *Server) updateJourney(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return journeyProblem(journey.ErrNotFound)
	}
	d, err := s.readDefinition(c)
	if err != nil {
		return journeyProblem(err)
	}
	j, err := s.Journeys.UpdateDraft(c.Request().Context(), keyFrom(c).WorkspaceID, id, d)
	if err != nil {
		return journeyProblem(err)
	}
	return c.JSON(http.StatusOK, j)
}

func (s *Server) listJourneys(c echo.Context) error {
	js, err := s.Journeys.List(c.Request().Context(), keyFrom(c).WorkspaceID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": js})
}

func (s *Server) getJourney(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return journeyProblem(journey.ErrNotFound)
	}
	j, err := s.Journeys.Get(c.Request().Context(), keyFrom(c).WorkspaceID, id)
	if err != nil {
		return journeyProblem(err)
	}
	return c.JSON(http.StatusOK, j)
}

func (s *Server) publishJourney(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return journeyProblem(journey.ErrNotFound)
	}
	j, err := s.Journeys.Publish(c.Request().Context(), keyFrom(c).WorkspaceID, id)
	if err != nil {
		return journeyProblem(err)
	}
	return c.JSON(http.StatusOK, j)
}

func (s *Server) setJourneyStatus(status string) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Param("id")
		if !isUUID(id) {
			return journeyProblem(journey.ErrNotFound)
		}
		j, err := s.Journeys.SetStatus(c.Request().Context(), keyFrom(c).WorkspaceID, id, status)
		if err != nil {
			return journeyProblem(err)
		}
		return c.JSON(http.StatusOK, j)
	}
}

// journeyRuns lists a journey's runs with a link to each in the Temporal UI;
// with ?workflow_id= it answers that run's live state (query handler).
func (s *Server) journeyRuns(c echo.Context) error {
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	id, err := s.journeyOf(c)
	if err != nil {
		return err
	}
	if wid := c.QueryParam("workflow_id"); wid != "" {
		if !strings.HasPrefix(wid, trigger.JourneyRunID(ws, id, "", "")) {
			return problem(http.StatusNotFound, "No such run of this journey.")
		}
		v, err := s.Temporal.QueryWorkflow(ctx, wid, "", workflows.StateQuery)
		if err != nil {
			return problem(http.StatusNotFound, "The run is not running (or does not exist): "+err.Error())
		}
		var st workflows.JourneyState
		if err := v.Get(&st); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, st)
	}
	runs, err := s.Journeys.Runs(ctx, ws, id, 200)
	if node := c.QueryParam("node"); node != "" {
		// The live inspector's "who is at this step".
		runs, err = s.Journeys.RunsAt(ctx, ws, id, node)
	}
	if err != nil {
		return err
	}
	out := make([]map[string]any, len(runs))
	for i, r := range runs {
		out[i] = map[string]any{"run": r, "temporal_ui_url": s.runURL(r.WorkflowID, r.RunID)}
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out})
}

// triggerJourneys starts runs for records that trigger a live journey and
// signals running runs that wait for, or exit on, what arrived. Only records
// some journey listens to cost a Temporal call: never one per page view.
func (s *Server) triggerJourneys(ctx context.Context, workspaceID string, stored []ingest.StoredEvent) error {
	if s.Journeys == nil || len(stored) == 0 {
		return nil
	}
	live, err := s.Journeys.LiveJourneys(ctx, workspaceID)
	if err != nil || len(live) == 0 {
		return err
	}
	var errs []error
	var started []int64 // records whose starts were all made: their queued starts go
	for _, ev := range stored {
		name := ev.Message.NameOrEvent()
		var listening []string
		for _, j := range live {
			if slices.Contains(listensTo(j.Definition), name) {
				listening = append(listening, j.ID)
			}
		}
		if len(listening) > 0 {
			runs, err := s.Journeys.OpenRuns(ctx, workspaceID, ev.ProfileID, listening)
			if err != nil {
				errs = append(errs, err)
			}
			for _, r := range runs {
				// To the workflow id's current run: an open run may have
				// continued as new since its row was read.
				err := s.Temporal.SignalWorkflow(ctx, r.WorkflowID, "", workflows.EventSignal, workflows.EventSignalPayload{EventID: ev.ID, Name: name})
				var nf *serviceerror.NotFound
				if err != nil && !errors.As(err, &nf) {
					errs = append(errs, err)
				}
			}
		}
		rec := journey.EventRecord{Type: ev.Message.Type, Event: name, Properties: ev.Message.Properties,
			Traits: ev.Message.Traits, Context: ev.Message.Context, Trigger: map[string]any{}}
		triggered, err := s.starter().Start(ctx, workspaceID, live, journey.TriggerKindEvent, ev.ProfileID, ev.ID, rec, time.Time{})
		if err != nil {
			errs = append(errs, err) // the queued start stays, for the dispatcher to retry
		} else if triggered {
			started = append(started, ev.ID)
		}
	}
	return errors.Join(append(errs, s.Journeys.ForgetPendingStarts(ctx, workspaceID, started))...)
}

// triggerSegmentJourneys starts runs of live journeys triggered by a
// profile entering or leaving a segment.
func (s *Server) triggerSegmentJourneys(ctx context.Context, workspaceID string, moves []segment.Move) error {
	if s.Journeys == nil || len(moves) == 0 {
		return nil
	}
	live, err := s.Journeys.LiveJourneys(ctx, workspaceID)
	if err != nil || len(live) == 0 {
		return err
	}
	var errs []error
	var started []int64
	for _, m := range moves {
		name := journey.SegmentExitedEvent
		if m.Entered {
			name = journey.SegmentEnteredEvent
		}
		// The move's timeline record keys the run (segment.RefreshForJourneys).
		rec := journey.EventRecord{Type: "track", Event: name, Properties: map[string]any{"segment": m.Segment}}
		triggered, err := s.starter().Start(ctx, workspaceID, live, journey.TriggerKindSegment, m.ProfileID, m.EventID, rec, time.Time{})
		if err != nil {
			errs = append(errs, err)
		} else if triggered && m.EventID != 0 {
			started = append(started, m.EventID)
		}
	}
	return errors.Join(append(errs, s.Journeys.ForgetPendingStarts(ctx, workspaceID, started))...)
}

// listensTo lists the event names a journey's runs wait for or end on.
func listensTo(d journey.Definition) []string {
	var out []string
	for _, n := range d.Nodes {
		if n.Type == journey.NodeWaitForEvent {
			out = append(out, n.Event)
		}
	}
	for _, x := range d.Exits {
		out = append(out, x.Event)
	}
	if d.Goal != nil {
		out = append(out, d.Goal.Event)
	}
	return out
}

// enterJourney enters one profile into one live journey (trigger.Starter).
// It answers the run's workflow id, or why the profile did not enter.
func (s *Server) enterJourney(ctx context.Context, workspaceID string, j journey.Live, profileID string, eventID int64, rec journey.EventRecord) (wid, why string, err error) {
	return s.starter().Enter(ctx, workspaceID, j, profileID, eventID, rec, time.Time{})
}

// starter starts runs with the API's Temporal client and stores.
func (s *Server) starter() *trigger.Starter {
	return &trigger.Starter{Temporal: s.Temporal, TaskQueue: s.TaskQueue, Journeys: s.Journeys, Segments: s.Segments}
}

// listScenarios lists the built-in journey scenarios.
func (s *Server) listScenarios(c echo.Context) error {
	var out []journey.Scenario
	for _, n := range journey.Scenarios() {
		sc, err := journey.LoadScenario(n)
		if err != nil {
			return err
		}
		out = append(out, sc)
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out})
}

// createFromScenario creates a journey draft from a built-in scenario in one
// call, and says which templates and segment it still needs before it can
// be published usefully.
func (s *Server) createFromScenario(c echo.Context) error {
	sc, err := journey.LoadScenario(c.Param("name"))
	if err != nil {
		return problem(http.StatusNotFound, err.Error())
	}
	// Optional adjustments: a name, durations by node id (a wait's
	// duration, a wait_for_event's timeout: rescue after 2h, not 1h), the
	// trigger's event or segment, the template of each send node.
	var req struct {
		Name         string            `json:"name"`
		Durations    map[string]string `json:"durations"`
		TriggerEvent string            `json:"trigger_event"`
		Segment      string            `json:"segment"`
		Templates    map[string]string `json:"templates"`
	}
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	if bad := sc.Adjust(journey.Adjustments{Name: req.Name, Durations: req.Durations, TriggerEvent: req.TriggerEvent,
		Segment: req.Segment, Templates: req.Templates}); len(bad) > 0 {
		fields := make([]FieldError, len(bad))
		for i, f := range bad {
			fields[i] = FieldError{Field: f.Field, Reason: f.Reason}
		}
		return invalid("The scenario's adjustments are not valid.", fields...)
	}
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	j, err := s.Journeys.Create(ctx, ws, sc.Definition)
	if err != nil {
		return journeyProblem(err)
	}
	missing, err := s.scenarioMissing(ctx, ws, sc)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"journey": j, "missing": missing})
}

// scenarioMissing lists the templates and segment a scenario uses that the
// workspace does not have yet ("template welcome", "segment customers").
func (s *Server) scenarioMissing(ctx context.Context, ws string, sc journey.Scenario) ([]string, error) {
	missing := []string{}
	if s.Templates != nil {
		for _, slug := range sc.Templates {
			if _, err := s.Templates.BySlug(ctx, ws, slug); err != nil {
				missing = append(missing, "template "+slug)
			}
		}
	}
	if sc.Segment != "" && s.Segments != nil {
		found := false
		segs, err := s.Segments.List(ctx, ws)
		if err != nil {
			return nil, err
		}
		for _, sg := range segs {
			found = found || sg.Slug == sc.Segment
		}
		if !found {
			missing = append(missing, "segment "+sc.Segment)
		}
	}
	return missing, nil
}

// reconcileMerges applies the merge rule to journey runs: when a profile is
// merged into another, a run of the merged profile that the survivor also
// has (same journey, same run key: the same cart, or the one run at a time)
// ends with reason "merged"; any other run of the merged profile goes on,
// following the survivor from then on.
func (s *Server) reconcileMerges(ctx context.Context, workspaceID string, changes []segment.Change) error {
	if s.Journeys == nil {
		return nil
	}
	var errs []error
	for _, c := range changes {
		if !c.Gone || c.MergedInto == "" {
			continue
		}
		gone, err := s.Journeys.OpenRuns(ctx, workspaceID, c.ProfileID, nil)
		if err != nil || len(gone) == 0 {
			errs = append(errs, err)
			continue
		}
		kept, err := s.Journeys.OpenRuns(ctx, workspaceID, c.MergedInto, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range gone {
			key := func(run journey.Run) string {
				return strings.TrimPrefix(run.WorkflowID, trigger.JourneyRunID(workspaceID, run.JourneyID, run.ProfileID, ""))
			}
			dup := slices.ContainsFunc(kept, func(k journey.Run) bool { return k.JourneyID == r.JourneyID && key(k) == key(r) })
			if dup {
				if err := s.Temporal.TerminateWorkflow(ctx, r.WorkflowID, "", "profile merged into "+c.MergedInto); err != nil {
					var nf *serviceerror.NotFound
					if !errors.As(err, &nf) {
						errs = append(errs, err)
						continue
					}
				}
				errs = append(errs, s.Journeys.RecordEnd(ctx, workspaceID, r.WorkflowID, r.RunID, "merged"))
				continue
			}
			if err := s.Temporal.SignalWorkflow(ctx, r.WorkflowID, "", workflows.MergedSignal, workflows.MergedSignalPayload{ProfileID: c.MergedInto}); err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, s.Journeys.Rehome(ctx, workspaceID, r.WorkflowID, r.RunID, c.MergedInto))
		}
	}
	return errors.Join(errs...)
}

// journeyStats answers the journey's funnel: runs entered, open at each
// node, visits per node, ended by reason.
func (s *Server) journeyStats(c echo.Context) error {
	ws := keyFrom(c).WorkspaceID
	id, err := s.journeyOf(c)
	if err != nil {
		return err
	}
	st, err := s.Journeys.Stats(c.Request().Context(), ws, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

// removeRuns takes runs out of a journey: one (?workflow_id=) or all those
// at a node (?node=). They end with reason "removed".
func (s *Server) removeRuns(c echo.Context) error {
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	id, err := s.journeyOf(c)
	if err != nil {
		return err
	}
	var runs []journey.Run
	switch wid, node := c.QueryParam("workflow_id"), c.QueryParam("node"); {
	case wid != "" && node == "":
		all, err := s.Journeys.Runs(ctx, ws, id, 10000)
		if err != nil {
			return err
		}
		for _, r := range all {
			if r.WorkflowID == wid && r.EndedAt == nil {
				runs = append(runs, r)
			}
		}
		if len(runs) == 0 {
			return problem(http.StatusNotFound, "No running run "+wid+" in this journey.")
		}
	case node != "" && wid == "":
		var err error
		if runs, err = s.Journeys.RunsAt(ctx, ws, id, node); err != nil {
			return err
		}
	default:
		return invalid("Say which runs to remove.", FieldError{Field: "workflow_id", Reason: "give workflow_id (one run) or node (every run at that node), not both"})
	}
	removed := 0
	for _, r := range runs {
		err := s.Temporal.TerminateWorkflow(ctx, r.WorkflowID, "", "removed by "+keyFrom(c).Name)
		var nf *serviceerror.NotFound
		if err != nil && !errors.As(err, &nf) {
			return err
		}
		if err := s.Journeys.RecordEnd(ctx, ws, r.WorkflowID, r.RunID, "removed"); err != nil {
			return err
		}
		removed++
	}
	return c.JSON(http.StatusOK, map[string]int{"removed": removed})
}

// journeyOf reads the :id of a journey route and checks the journey exists
// in the caller's workspace.
func (s *Server) journeyOf(c echo.Context) (string, error) {
	id := c.Param("id")
	if !isUUID(id) {
		return "", journeyProblem(journey.ErrNotFound)
	}
	if _, err := s.Journeys.Get(c.Request().Context(), keyFrom(c).WorkspaceID, id); err != nil {
		return "", journeyProblem(err)
	}
	return id, nil
}

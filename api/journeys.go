package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/labstack/echo/v4"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"sigs.k8s.io/yaml"

	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/segment"
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
	raw, err := io.ReadAll(io.LimitReader(c.Request().Body, 256*1024))
	if err != nil {
		return journey.Definition{}, problem(http.StatusBadRequest, "The body could not be read.")
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
		if !strings.HasPrefix(wid, workflows.JourneyRunID(ws, id, "", "")) {
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
		for _, j := range live {
			t := j.Definition.Trigger
			if t.Type != journey.TriggerEvent || t.Event != name {
				continue
			}
			rec := journey.EventRecord{Type: ev.Message.Type, Event: name, Properties: ev.Message.Properties,
				Traits: ev.Message.Traits, Context: ev.Message.Context, Trigger: map[string]any{}}
			if _, _, err := s.enterJourney(ctx, workspaceID, j, ev.ProfileID, ev.ID, rec); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
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
	for _, m := range moves {
		want := journey.TriggerSegmentExited
		if m.Entered {
			want = journey.TriggerSegmentEntered
		}
		for _, j := range live {
			if t := j.Definition.Trigger; t.Type == want && t.Segment == m.Segment {
				name := "Segment Exited"
				if m.Entered {
					name = "Segment Entered"
				}
				rec := journey.EventRecord{Type: "track", Event: name, Properties: map[string]any{"segment": m.Segment}}
				if _, _, err := s.enterJourney(ctx, workspaceID, j, m.ProfileID, 0, rec); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
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

// enterJourney applies a journey's trigger filter, entry filter and
// re-entry policy to a record, and starts the run with SignalWithStart on a
// deterministic workflow id, so that duplicate triggers never start twice.
// It answers the run's workflow id, or why the profile did not enter.
func (s *Server) enterJourney(ctx context.Context, workspaceID string, j journey.Live, profileID string, eventID int64, rec journey.EventRecord) (wid, why string, err error) {
	d := j.Definition
	if d.Trigger.Filter != "" {
		prog, err := journey.CompileEventRule(d.Trigger.Filter)
		if err != nil {
			return "", "", err
		}
		if out, err := expr.Run(prog, rec); err != nil || out != true {
			return "", "the trigger filter does not match", nil
		}
	}
	now := time.Now().UTC()
	if d.Entry.Filter != "" {
		ok, err := s.Segments.EvaluateRule(ctx, workspaceID, profileID, d.Entry.Filter, now)
		if err != nil || !ok {
			return "", "the entry filter does not match this profile", err
		}
	}
	key := ""
	if d.Trigger.CorrelationKey != "" {
		v := lookupPath(rec, d.Trigger.CorrelationKey)
		if v == "" {
			return "", "the record has no " + d.Trigger.CorrelationKey, nil // nothing to correlate, no run
		}
		key = v
	}
	reuse := enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	switch d.Entry.ReEntry {
	case journey.ReEntryEveryTime:
		switch {
		case key != "":
		case eventID != 0:
			key = "e" + strconv.FormatInt(eventID, 10)
		default: // a segment entry: each one is a new run
			key = "t" + strconv.FormatInt(time.Now().UnixNano(), 36)
		}
	case journey.ReEntryOnce:
		reuse = enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
		if last, err := s.Journeys.LastEntry(ctx, workspaceID, j.ID, profileID); err != nil || last != nil {
			return "", "the profile entered this journey before (entry: once)", err
		}
	case journey.ReEntryAfterCooldown:
		cool, _ := journey.ParseDuration(d.Entry.Cooldown) // validated at save
		if last, err := s.Journeys.LastEntry(ctx, workspaceID, j.ID, profileID); err != nil || (last != nil && now.Sub(*last) < cool) {
			return "", "the profile entered this journey less than " + d.Entry.Cooldown + " ago (cooldown)", err
		}
	}
	wid = workflows.JourneyRunID(workspaceID, j.ID, profileID, key)
	run, err := s.Temporal.SignalWithStartWorkflow(ctx, wid, workflows.EventSignal,
		workflows.EventSignalPayload{EventID: eventID, Name: rec.Event},
		client.StartWorkflowOptions{
			ID:                    wid,
			TaskQueue:             s.TaskQueue,
			WorkflowIDReusePolicy: reuse,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				workflows.SAWorkspace.ValueSet(workspaceID), workflows.SAJourney.ValueSet(j.ID),
				workflows.SAProfile.ValueSet(profileID), workflows.SAVersion.ValueSet(int64(j.Version))),
			Memo: map[string]any{"journey": d.Name},
		},
		workflows.JourneyWorkflow, workflows.JourneyInput{
			WorkspaceID: workspaceID, JourneyID: j.ID, Version: j.Version, ProfileID: profileID, TriggerEventID: eventID,
		})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return "", "the profile entered this journey before (entry: once)", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("start journey %s for profile %s: %w", j.ID, profileID, err)
	}
	// The run is recorded now, not only when its first activity runs: a
	// record that follows at once (the order right after the cart) must
	// find the run to be signalled. The workflow records it again, harmlessly.
	return wid, "", s.Journeys.RecordEntry(ctx, workspaceID, wid, run.GetRunID(), j.ID, j.Version, profileID)
}

// lookupPath reads properties.a.b from a record as text.
func lookupPath(r journey.EventRecord, path string) string {
	parts := strings.Split(path, ".")
	var cur any
	switch parts[0] {
	case "properties":
		cur = r.Properties
	case "traits":
		cur = r.Traits
	case "context":
		cur = r.Context
	}
	for _, p := range parts[1:] {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[p]
	}
	if cur == nil {
		return ""
	}
	return fmt.Sprint(cur)
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
				return strings.TrimPrefix(run.WorkflowID, workflows.JourneyRunID(workspaceID, run.JourneyID, run.ProfileID, ""))
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

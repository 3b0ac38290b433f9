// Package trigger is the client side of Parcours' journeys and broadcasts:
// the workflow ids their runs are started under, their start options, and
// the starts themselves. For journeys it applies a live journey's trigger
// filter, entry filter and re-entry policy to a record, and starts the run
// with SignalWithStart on a deterministic workflow id. The API calls it
// right after storing records; the Dispatcher (in the worker process)
// calls it for the starts the API could not make (journey_triggers).
// Broadcasts are started, or put on a Temporal Schedule, by
// ScheduleBroadcast. (The workflows themselves, and the names and inputs
// they are started with, are in package workflows.)
package trigger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/workflows"
)

// JourneyRunID builds a run's workflow id from its business key. key is the
// correlation value (e.g. the cart id), or the entry number for journeys
// entered every time, or "" for one run at a time.
func JourneyRunID(workspaceID, journeyID, profileID, key string) string {
	id := "journey/" + workspaceID + "/" + journeyID + "/" + profileID
	if key != "" {
		id += "/" + key
	}
	return id
}

// Starter enters profiles into live journeys.
type Starter struct {
	Temporal client.Client
	// TaskQueue is the queue the worker polls.
	TaskQueue string
	Journeys  *journey.Store
	// Segments evaluates entry filters.
	Segments *segment.Store
}

// Enter applies a journey's trigger filter, entry filter and re-entry
// policy to a record, and starts the run with SignalWithStart on a
// deterministic workflow id, so that duplicate triggers never start twice.
// It answers the run's workflow id, or why the profile did not enter.
//
// queuedAt is zero for a first attempt. A retry (the dispatcher) gives the
// time the record was queued: a run of the same workflow id recorded since
// then was started by this record, and is not started again. (A run that
// started and is not recorded yet is still open: SignalWithStart then only
// signals it with the record that started it, which the run ignores.)
func (s *Starter) Enter(ctx context.Context, workspaceID string, j journey.Live, profileID string, eventID int64, rec journey.EventRecord, queuedAt time.Time) (wid, why string, err error) {
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
			// The record (or the segment move's timeline record): a
			// retried start lands on the same run.
			key = "e" + strconv.FormatInt(eventID, 10)
		default: // an entry through the API: each one is a new run
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
	wid = JourneyRunID(workspaceID, j.ID, profileID, key)
	if !queuedAt.IsZero() {
		// A retry: the run may have started, and even ended, already.
		started, err := s.Journeys.EnteredSince(ctx, workspaceID, wid, queuedAt)
		if err != nil || started {
			return "", "this record started the run already", err
		}
	}
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

// Start enters the record's profile into every live journey the record
// triggers (journey.Live.TriggeredBy). It reports whether one did, and
// every start that failed; those that did not fail are made, so trying
// again (queuedAt set) is safe.
func (s *Starter) Start(ctx context.Context, workspaceID string, live []journey.Live, kind string, profileID string, eventID int64, rec journey.EventRecord, queuedAt time.Time) (triggered bool, err error) {
	var errs []error
	for _, j := range live {
		if !j.TriggeredBy(kind, rec) {
			continue
		}
		triggered = true
		if _, _, err := s.Enter(ctx, workspaceID, j, profileID, eventID, rec, queuedAt); err != nil {
			errs = append(errs, err)
		}
	}
	return triggered, errors.Join(errs...)
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

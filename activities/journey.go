package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/temporal"

	"github.com/parcours/parcours/pkg/journey"
)

// JourneyVersionInput names a published journey version.
type JourneyVersionInput struct {
	WorkspaceID string
	JourneyID   string
	Version     int
}

// LoadJourneyVersion returns a published version's definition (the
// marketer's content: no personal data).
func (a *Activities) LoadJourneyVersion(ctx context.Context, in JourneyVersionInput) (journey.Definition, error) {
	d, err := a.Journeys.Version(ctx, in.WorkspaceID, in.JourneyID, in.Version)
	if errors.Is(err, journey.ErrNotFound) {
		return d, temporal.NewNonRetryableApplicationError(fmt.Sprintf("journey %s v%d not found", in.JourneyID, in.Version), ErrTypeNotFound, err)
	}
	return d, err
}

// JourneyEntryInput notes a run's start.
type JourneyEntryInput struct {
	WorkspaceID string
	WorkflowID  string
	RunID       string
	JourneyID   string
	Version     int
	ProfileID   string
}

// RecordJourneyEntry records a run's start (idempotent).
func (a *Activities) RecordJourneyEntry(ctx context.Context, in JourneyEntryInput) error {
	return a.Journeys.RecordEntry(ctx, in.WorkspaceID, in.WorkflowID, in.RunID, in.JourneyID, in.Version, in.ProfileID)
}

// JourneyStepInput notes where a run is.
type JourneyStepInput struct {
	WorkspaceID string
	WorkflowID  string
	RunID       string
	Node        string
}

// RecordJourneyStep records the node a run entered (for counts by node).
func (a *Activities) RecordJourneyStep(ctx context.Context, in JourneyStepInput) error {
	return a.Journeys.RecordStep(ctx, in.WorkspaceID, in.WorkflowID, in.RunID, in.Node)
}

// JourneyEndInput notes how a run ended.
type JourneyEndInput struct {
	WorkspaceID string
	WorkflowID  string
	RunID       string
	Outcome     journey.Outcome
}

// RecordJourneyEnd records a run's outcome (its text form, end_reason).
func (a *Activities) RecordJourneyEnd(ctx context.Context, in JourneyEndInput) error {
	return a.Journeys.RecordEnd(ctx, in.WorkspaceID, in.WorkflowID, in.RunID, in.Outcome.String())
}

// ProfileRuleInput asks a profile condition at a time.
type ProfileRuleInput struct {
	WorkspaceID string
	ProfileID   string
	Rule        string
	AsOf        time.Time
}

// EvaluateProfileRule answers a branch condition or entry filter.
func (a *Activities) EvaluateProfileRule(ctx context.Context, in ProfileRuleInput) (bool, error) {
	return a.Segments.EvaluateRule(ctx, in.WorkspaceID, in.ProfileID, in.Rule, in.AsOf)
}

// UpdateTraitsInput sets traits on a profile from a journey step.
type UpdateTraitsInput struct {
	WorkspaceID string
	ProfileID   string
	Traits      map[string]any
	// Reason is recorded as the traits' provenance (journey/<id>/<node>).
	Reason string
}

// UpdateProfileTraits sets traits; setting the same values again is harmless.
func (a *Activities) UpdateProfileTraits(ctx context.Context, in UpdateTraitsInput) error {
	return a.Ingest.SetTraits(ctx, in.WorkspaceID, in.ProfileID, in.Traits, in.Reason)
}

// MatchEventInput asks whether a record satisfies a condition, compared with
// the record that started the run.
type MatchEventInput struct {
	WorkspaceID    string
	Rule           string
	EventID        int64
	TriggerEventID int64
}

// MatchEvent evaluates a wait_for_event match, exit or goal filter against
// stored records, so that their data never enters workflow history.
func (a *Activities) MatchEvent(ctx context.Context, in MatchEventInput) (bool, error) {
	prog, err := journey.CompileEventRule(in.Rule)
	if err != nil {
		return false, temporal.NewNonRetryableApplicationError("bad rule: "+err.Error(), "BadDefinition", err)
	}
	load := func(id int64) (journey.EventRecord, error) {
		var r journey.EventRecord
		if id == 0 {
			return r, nil
		}
		var props, traits, ctxJSON []byte
		err := a.Pool.QueryRow(ctx, `SELECT type, coalesce(name, ''), properties, traits, context FROM events WHERE workspace_id = $1 AND id = $2`,
			in.WorkspaceID, id).Scan(&r.Type, &r.Event, &props, &traits, &ctxJSON)
		if errors.Is(err, pgx.ErrNoRows) {
			return r, nil // erased meanwhile: matches nothing
		}
		if err != nil {
			return r, fmt.Errorf("load event %d: %w", id, err)
		}
		_ = json.Unmarshal(props, &r.Properties)
		_ = json.Unmarshal(traits, &r.Traits)
		_ = json.Unmarshal(ctxJSON, &r.Context)
		return r, nil
	}
	ev, err := load(in.EventID)
	if err != nil {
		return false, err
	}
	trig, err := load(in.TriggerEventID)
	if err != nil {
		return false, err
	}
	return MatchRecords(prog, ev, trig), nil
}

// MatchRecords runs a compiled record condition on ev, with trig as the
// record that started the run. A condition that fails to evaluate (a
// missing property) does not match.
func MatchRecords(prog *vm.Program, ev, trig journey.EventRecord) bool {
	ev.Trigger = map[string]any{"type": trig.Type, "event": trig.Event, "properties": trig.Properties, "traits": trig.Traits, "context": trig.Context}
	out, err := expr.Run(prog, ev)
	if err != nil {
		return false
	}
	ok, _ := out.(bool)
	return ok
}

// UntilInput asks how long to wait until a time of day, in the profile's
// time zone, on allowed weekdays.
type UntilInput struct {
	WorkspaceID string
	ProfileID   string
	Until       string   // "09:00"
	Weekdays    []string // mon..sun; empty means every day
	Now         time.Time
}

// UntilTimeOfDay answers the wait. The time zone is the profile's
// `timezone` trait (an IANA name such as Europe/Paris), else UTC.
func (a *Activities) UntilTimeOfDay(ctx context.Context, in UntilInput) (time.Duration, error) {
	var tz string
	err := a.Pool.QueryRow(ctx, `SELECT coalesce(traits->>'timezone', '') FROM profiles WHERE workspace_id = $1 AND id = $2`, in.WorkspaceID, in.ProfileID).Scan(&tz)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("load time zone of %s: %w", in.ProfileID, err)
	}
	return NextTimeOfDay(in.Now, tz, in.Until, in.Weekdays)
}

// NextTimeOfDay is the wait from now until the next hh:mm in zone tz on one
// of weekdays (all days when empty). An unknown zone counts as UTC.
func NextTimeOfDay(now time.Time, tz, until string, weekdays []string) (time.Duration, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "" {
		loc = time.UTC
	}
	hm, err := time.Parse("15:04", until)
	if err != nil {
		return 0, temporal.NewNonRetryableApplicationError("bad time of day "+until, "BadDefinition", err)
	}
	local := now.In(loc)
	allowed := func(d time.Weekday) bool {
		if len(weekdays) == 0 {
			return true
		}
		name := strings.ToLower(d.String()[:3])
		for _, w := range weekdays {
			if strings.ToLower(w) == name {
				return true
			}
		}
		return false
	}
	for day := 0; day <= 7; day++ {
		c := time.Date(local.Year(), local.Month(), local.Day()+day, hm.Hour(), hm.Minute(), 0, 0, loc)
		if c.After(local) && allowed(c.Weekday()) {
			return c.Sub(local), nil
		}
	}
	return 0, temporal.NewNonRetryableApplicationError("no allowed weekday in "+strings.Join(weekdays, ","), "BadDefinition", nil)
}

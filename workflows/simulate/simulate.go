// Package simulate runs a journey definition for one profile and a timeline
// of events through the real journey workflow code, in Temporal's test
// environment with time skipped: the path taken, each wait and how it
// ended, and the messages that would be rendered — sending nothing and
// writing nothing.
//
// The workflow is the production one (workflows.Journey); only its
// activities are replaced, by read-only twins that answer from the stored
// profile with the simulated traits and events laid over it. The twins
// implement workflows.JourneyActivities, the journey's one list of
// activities, and are registered under its method names, as the worker's
// are.
package simulate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/pkg/identity"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/template"
	"github.com/parcours/parcours/workflows"
)

// Event is one record of the simulated timeline.
type Event struct {
	// After is the time from the start of the run, e.g. 30m, 2h, 3d.
	After string `json:"after"`
	// Type is track (default), identify, page or screen.
	Type       string         `json:"type,omitempty"`
	Event      string         `json:"event"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Input is one simulation.
type Input struct {
	WorkspaceID string
	Definition  journey.Definition
	JourneyID   string
	Version     int
	// ProfileID is a stored profile to start from ("" for a profile made
	// only of Traits).
	ProfileID string
	Traits    map[string]any
	Start     time.Time
	// Trigger is the record that starts the run (event triggers).
	Trigger *Event
	Events  []Event
	// Horizon bounds simulated time: a run still waiting then is reported
	// as such.
	Horizon time.Duration
}

// Step is a node the run entered.
type Step struct {
	Node string    `json:"node"`
	Type string    `json:"type"`
	At   time.Time `json:"at"`
}

// Wait is one wait and how it ended.
type Wait struct {
	Node string `json:"node"`
	// Kind: duration, time_of_day, date, event.
	Kind       string     `json:"kind"`
	Event      string     `json:"event,omitempty"`
	From       time.Time  `json:"from"`
	To         time.Time  `json:"to"`
	Resolution Resolution `json:"resolution"`
}

// WaitEnd is the way a wait ended.
type WaitEnd string

// The ways a wait ends.
const (
	EndTimer        WaitEnd = "timer"         // its time passed
	EndEvent        WaitEnd = "event"         // the awaited record came
	EndTimeout      WaitEnd = "timeout"       // the awaited record did not come in time
	EndMissingDate  WaitEnd = "missing_date"  // the profile has no such date, or it passed
	EndStillWaiting WaitEnd = "still_waiting" // the simulation stopped at its horizon
	EndRunEnded     WaitEnd = "run_ended"     // the run ended during the wait: Resolution.Run says how
)

// Resolution is how a wait ended. Its text form (JSON) is the way, or
// for EndRunEnded the run's outcome (exited:order_completed, goal).
type Resolution struct {
	How WaitEnd
	// Run is the run's outcome, for EndRunEnded.
	Run journey.Outcome
}

// String is the text form.
func (r Resolution) String() string {
	if r.How == EndRunEnded {
		return r.Run.String()
	}
	return string(r.How)
}

// MarshalText writes the text form.
func (r Resolution) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads the text form.
func (r *Resolution) UnmarshalText(b []byte) error {
	switch how := WaitEnd(b); how {
	case EndTimer, EndEvent, EndTimeout, EndMissingDate, EndStillWaiting:
		*r = Resolution{How: how}
	default:
		*r = Resolution{How: EndRunEnded, Run: journey.ParseOutcome(string(b))}
	}
	return nil
}

// Message is what a send or webhook node would have sent.
type Message struct {
	Node     string    `json:"node"`
	Channel  string    `json:"channel"`
	Template string    `json:"template,omitempty"`
	At       time.Time `json:"at"`
	To       string    `json:"to,omitempty"`
	URL      string    `json:"url,omitempty"`
	Subject  string    `json:"subject,omitempty"`
	HTML     string    `json:"html,omitempty"`
	Text     string    `json:"text,omitempty"`
	// Skipped says why the message would not go (no address, a template
	// that does not render).
	Skipped string `json:"skipped,omitempty"`
}

// Result is what the simulation saw.
type Result struct {
	// Entered is false when the trigger or entry filter keeps the profile out.
	Entered    bool   `json:"entered"`
	NotEntered string `json:"not_entered,omitempty"`
	// Outcome: completed, exited (on what), goal, or still_waiting; none
	// when the profile did not enter.
	Outcome  journey.Outcome  `json:"outcome,omitzero"`
	Steps    []Step           `json:"steps"`
	Waits    []Wait           `json:"waits"`
	Messages []Message        `json:"messages"`
	Traits   map[string]any   `json:"traits_set,omitempty"`
	EndedAt  *time.Time       `json:"ended_at,omitempty"`
	Goal     *GoalConversion  `json:"conversion,omitempty"`
	Events   []TimelineRecord `json:"timeline"`
}

// GoalConversion is the conversion the run would record.
type GoalConversion struct {
	Event        string `json:"event"`
	AttributedTo string `json:"attributed_to,omitempty"`
}

// TimelineRecord is a simulated event placed in time.
type TimelineRecord struct {
	At    time.Time `json:"at"`
	Event string    `json:"event"`
}

// Deps reads what the simulation starts from; nothing is written.
type Deps struct {
	Profiles  *profile.Store
	Segments  *segment.Store
	Templates *template.Store
}

// FieldError is a bad input.
type FieldError struct {
	Field, Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// MaxEvents caps the simulated timeline.
const MaxEvents = 200

type record struct {
	at  time.Time
	rec journey.EventRecord
}

// sim is one simulation: its input, what it has seen, and the state the
// twins of the journey activities share.
type sim struct {
	deps   Deps
	in     Input
	env    *testsuite.TestWorkflowEnvironment
	ctx    context.Context
	mu     sync.Mutex
	out    Result
	traits map[string]any // stored traits with the simulated ones over them
	view   *profile.View
	// records by event id: 1 is the trigger, 2.. the timeline.
	records map[int64]record
	extra   []segment.Event
}

// Run simulates in and reports what happened.
func Run(ctx context.Context, deps Deps, in Input) (Result, error) {
	if in.Horizon <= 0 {
		in.Horizon = 90 * 24 * time.Hour
	}
	if len(in.Events) > MaxEvents {
		return Result{}, &FieldError{"events", fmt.Sprintf("at most %d events", MaxEvents)}
	}
	s := &sim{deps: deps, in: in, ctx: ctx, traits: map[string]any{}, records: map[int64]record{}}
	s.out = Result{Steps: []Step{}, Waits: []Wait{}, Messages: []Message{}, Events: []TimelineRecord{}, Traits: map[string]any{}}
	if in.ProfileID != "" {
		v, err := deps.Profiles.Get(ctx, in.WorkspaceID, in.ProfileID)
		if errors.Is(err, profile.ErrNotFound) {
			return Result{}, &FieldError{"profile_id", "no such profile in this workspace"}
		}
		if err != nil {
			return Result{}, err
		}
		s.view = v
		for k, val := range v.Traits {
			s.traits[k] = val
		}
	}
	for k, v := range in.Traits {
		s.traits[k] = v
	}
	if err := s.timeline(); err != nil {
		return Result{}, err
	}
	if ok, why, err := s.admits(); err != nil || !ok {
		s.out.NotEntered = why
		return s.out, err
	}
	s.out.Entered = true
	return s.out, s.execute()
}

// timeline places the trigger and the events in time.
func (s *sim) timeline() error {
	toRecord := func(e Event) journey.EventRecord {
		typ := e.Type
		if typ == "" {
			typ = "track"
		}
		return journey.EventRecord{Type: typ, Event: e.Event, Properties: e.Properties, Traits: map[string]any{}, Context: map[string]any{}}
	}
	if t := s.in.Trigger; t != nil {
		s.records[1] = record{at: s.in.Start, rec: toRecord(*t)}
		s.extra = append(s.extra, segment.Event{Name: t.Event, At: s.in.Start, Properties: t.Properties})
		s.out.Events = append(s.out.Events, TimelineRecord{At: s.in.Start, Event: t.Event})
	}
	for i, e := range s.in.Events {
		after, err := segment.ParseWindow(e.After)
		if err != nil || e.After == "all" {
			return &FieldError{fmt.Sprintf("events[%d].after", i), fmt.Sprintf("%q is not a time from the start such as 30m, 2h, 3d", e.After)}
		}
		if strings.TrimSpace(e.Event) == "" {
			return &FieldError{fmt.Sprintf("events[%d].event", i), "is required: the event's name, e.g. \"Order Completed\""}
		}
		if after > s.in.Horizon {
			return &FieldError{fmt.Sprintf("events[%d].after", i), "comes after the horizon; raise horizon or move the event"}
		}
		at := s.in.Start.Add(after)
		s.records[int64(i+2)] = record{at: at, rec: toRecord(e)}
		s.extra = append(s.extra, segment.Event{Name: e.Event, At: at, Properties: e.Properties})
		s.out.Events = append(s.out.Events, TimelineRecord{At: at, Event: e.Event})
	}
	sort.SliceStable(s.out.Events, func(i, j int) bool { return s.out.Events[i].At.Before(s.out.Events[j].At) })
	return nil
}

// admits applies the trigger filter and the entry filter, as entering does.
func (s *sim) admits() (bool, string, error) {
	d := s.in.Definition
	if d.Trigger.Type == journey.TriggerEvent {
		t, ok := s.records[1]
		if !ok {
			return false, "", &FieldError{"trigger", fmt.Sprintf("this journey starts on %q: give the triggering record", d.Trigger.Event)}
		}
		if t.rec.Event != d.Trigger.Event {
			return false, fmt.Sprintf("the trigger record is %q; the journey starts on %q", t.rec.Event, d.Trigger.Event), nil
		}
		if d.Trigger.Filter != "" {
			prog, err := journey.CompileEventRule(d.Trigger.Filter)
			if err != nil {
				return false, "", err
			}
			if !activities.MatchRecords(prog, t.rec, t.rec) {
				return false, "the trigger filter does not match the trigger record", nil
			}
		}
	}
	if d.Entry.Filter != "" {
		ok, err := s.deps.Segments.EvaluateRuleWith(s.ctx, s.in.WorkspaceID, s.in.ProfileID, d.Entry.Filter, s.in.Start, s.traits, s.extra)
		if err != nil {
			return false, "", err
		}
		if !ok {
			return false, "the entry filter does not match this profile", nil
		}
	}
	return true, "", nil
}

// execute runs the journey workflow with time skipped.
func (s *sim) execute() error {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := suite.NewTestWorkflowEnvironment()
	s.env = env
	env.SetStartTime(s.in.Start)
	env.SetTestTimeout(30 * time.Second)
	env.RegisterWorkflowWithOptions(workflows.Journey, workflow.RegisterOptions{Name: workflows.JourneyWorkflow})
	env.RegisterActivity(&twins{s})
	for id, r := range s.records {
		if id == 1 {
			continue // the trigger arrives with the start
		}
		payload := workflows.EventSignalPayload{EventID: id, Name: r.rec.Event}
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.EventSignal, payload) }, r.at.Sub(s.in.Start))
	}
	stillWaiting := false
	env.RegisterDelayedCallback(func() {
		stillWaiting = true
		env.CancelWorkflow()
	}, s.in.Horizon)

	var trigger int64
	if _, ok := s.records[1]; ok {
		trigger = 1
	}
	var runErr error
	func() {
		defer func() {
			if p := recover(); p != nil {
				runErr = fmt.Errorf("simulation stopped: %v", p)
			}
		}()
		env.ExecuteWorkflow(workflows.JourneyWorkflow, workflows.JourneyInput{
			WorkspaceID: s.in.WorkspaceID, JourneyID: s.in.JourneyID, Version: s.in.Version,
			ProfileID: s.profileID(), TriggerEventID: trigger,
		})
	}()
	if runErr != nil {
		return runErr
	}
	end := env.Now()
	if stillWaiting {
		s.out.Outcome = journey.Ended(journey.OutcomeStillWaiting)
	} else if err := env.GetWorkflowError(); err != nil {
		return fmt.Errorf("the journey failed: %w", err)
	} else {
		var res workflows.JourneyResult
		if err := env.GetWorkflowResult(&res); err != nil {
			return err
		}
		s.out.Outcome = res.Outcome
		s.out.EndedAt = &end
	}
	s.out.Waits = s.waits(end)
	return nil
}

func (s *sim) profileID() string {
	if s.in.ProfileID != "" {
		return s.in.ProfileID
	}
	return "00000000-0000-0000-0000-000000000000"
}

// waits reads each wait's span and resolution from the steps taken.
func (s *sim) waits(end time.Time) []Wait {
	nodes := map[string]*journey.Node{}
	for i := range s.in.Definition.Nodes {
		nodes[s.in.Definition.Nodes[i].ID] = &s.in.Definition.Nodes[i]
	}
	out := []Wait{}
	for i, st := range s.out.Steps {
		n := nodes[st.Node]
		if n == nil || (n.Type != journey.NodeWait && n.Type != journey.NodeWaitForEvent) {
			continue
		}
		w := Wait{Node: n.ID, From: st.At, To: end}
		switch {
		case n.Type == journey.NodeWaitForEvent:
			w.Kind, w.Event = "event", n.Event
		case n.Date != "":
			w.Kind = "date"
		case n.Until != "":
			w.Kind = "time_of_day"
		default:
			w.Kind = "duration"
		}
		if i+1 < len(s.out.Steps) {
			next := s.out.Steps[i+1]
			w.To = next.At
			switch {
			case n.Type == journey.NodeWaitForEvent && next.Node == n.OnEvent:
				w.Resolution.How = EndEvent
			case n.Type == journey.NodeWaitForEvent:
				w.Resolution.How = EndTimeout
			case n.OnMissing != "" && next.Node == n.OnMissing && next.At.Equal(st.At) && n.Next != n.OnMissing:
				w.Resolution.How = EndMissingDate
			default:
				w.Resolution.How = EndTimer
			}
		} else {
			switch o := s.out.Outcome; {
			case o.Kind == journey.OutcomeStillWaiting:
				w.Resolution.How = EndStillWaiting
			case o.Kind == journey.OutcomeExited && o.Exit == journey.ExitNoDate:
				w.Resolution.How = EndMissingDate
			default:
				w.Resolution = Resolution{How: EndRunEnded, Run: o}
			}
		}
		out = append(out, w)
	}
	return out
}

// twins stand in for the journey workflow's activities, reading and never
// writing.
type twins struct{ s *sim }

var _ workflows.JourneyActivities = (*twins)(nil)

// LoadJourneyVersion answers the simulated definition.
func (t *twins) LoadJourneyVersion(context.Context, activities.JourneyVersionInput) (journey.Definition, error) {
	return t.s.in.Definition, nil
}

// RecordJourneyEntry records nothing.
func (t *twins) RecordJourneyEntry(context.Context, activities.JourneyEntryInput) error { return nil }

// RecordJourneyStep notes the step taken, at simulated time.
func (t *twins) RecordJourneyStep(_ context.Context, in activities.JourneyStepInput) error {
	s := t.s
	typ := ""
	for _, n := range s.in.Definition.Nodes {
		if n.ID == in.Node {
			typ = n.Type
		}
	}
	s.mu.Lock()
	s.out.Steps = append(s.out.Steps, Step{Node: in.Node, Type: typ, At: s.env.Now()})
	s.mu.Unlock()
	return nil
}

// RecordJourneyEnd records nothing: the workflow's result says how it ended.
func (t *twins) RecordJourneyEnd(context.Context, activities.JourneyEndInput) error { return nil }

// ContinueJourneyRun records nothing.
func (t *twins) ContinueJourneyRun(context.Context, activities.ContinueRunInput) error { return nil }

// EvaluateProfileRule answers on the stored profile with the simulated
// traits and events over it.
func (t *twins) EvaluateProfileRule(ctx context.Context, in activities.ProfileRuleInput) (bool, error) {
	s := t.s
	s.mu.Lock()
	traits := copyMap(s.traits)
	s.mu.Unlock()
	return s.deps.Segments.EvaluateRuleWith(ctx, s.in.WorkspaceID, s.in.ProfileID, in.Rule, in.AsOf, traits, s.extra)
}

// UpdateProfileTraits sets the traits on the simulated profile only.
func (t *twins) UpdateProfileTraits(_ context.Context, in activities.UpdateTraitsInput) error {
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range in.Traits {
		s.traits[k] = v
		s.out.Traits[k] = v
	}
	return nil
}

// MatchEvent matches the simulated records.
func (t *twins) MatchEvent(_ context.Context, in activities.MatchEventInput) (bool, error) {
	prog, err := journey.CompileEventRule(in.Rule)
	if err != nil {
		return false, err
	}
	return matchIDs(prog, t.s.records, in.EventID, in.TriggerEventID), nil
}

// UntilTimeOfDay answers in the simulated profile's time zone.
func (t *twins) UntilTimeOfDay(_ context.Context, in activities.UntilInput) (time.Duration, error) {
	return activities.NextTimeOfDay(in.Now, t.s.timezone(), in.Until, in.Weekdays)
}

// UntilProfileDate answers from the simulated profile's date.
func (t *twins) UntilProfileDate(_ context.Context, in activities.UntilDateInput) (activities.UntilDateResult, error) {
	s := t.s
	s.mu.Lock()
	v := s.traits[strings.TrimPrefix(in.Date, "traits.")]
	s.mu.Unlock()
	return activities.NextProfileDate(in.Now, s.timezone(), v, in.Offset, in.EveryYear)
}

// SendMessage renders the message it would send, and sends nothing.
func (t *twins) SendMessage(ctx context.Context, in activities.SendMessageInput) (activities.SendMessageResult, error) {
	s := t.s
	m := s.render(ctx, in)
	s.mu.Lock()
	s.out.Messages = append(s.out.Messages, m)
	s.mu.Unlock()
	if m.Skipped != "" {
		return activities.SendMessageResult{Status: "skipped", Reason: m.Skipped}, nil
	}
	return activities.SendMessageResult{Status: "sent", DeliveryID: "simulated"}, nil
}

// RecordConversion notes the conversion the run would record.
func (t *twins) RecordConversion(_ context.Context, in activities.ConversionInput) error {
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out.Goal = &GoalConversion{Event: s.records[in.EventID].rec.Event, AttributedTo: in.NodeID}
	return nil
}

// Activities lists the activity names the simulator registers (its twins'
// methods), sorted, for the test that holds them to the worker's registry.
func Activities() []string {
	typ := reflect.TypeOf(&twins{})
	names := make([]string, 0, typ.NumMethod())
	for i := range typ.NumMethod() {
		names = append(names, typ.Method(i).Name)
	}
	sort.Strings(names)
	return names
}

func matchIDs(prog *vm.Program, records map[int64]record, eventID, triggerID int64) bool {
	return activities.MatchRecords(prog, records[eventID].rec, records[triggerID].rec)
}

func (s *sim) timezone() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	tz, _ := s.traits["timezone"].(string)
	return tz
}

// render renders the message a send node would send, to the address it
// would go to.
func (s *sim) render(ctx context.Context, in activities.SendMessageInput) Message {
	m := Message{Node: in.NodeID, Channel: in.Channel, Template: in.TemplateSlug, At: s.env.Now(), URL: in.URL}
	if in.URL != "" {
		return m // a webhook node posts the profile; nothing to render
	}
	s.mu.Lock()
	traits := copyMap(s.traits)
	s.mu.Unlock()
	tpl, err := s.deps.Templates.BySlug(ctx, s.in.WorkspaceID, in.TemplateSlug)
	if err != nil {
		m.Skipped = fmt.Sprintf("template %q not found", in.TemplateSlug)
		return m
	}
	if tpl.Channel != in.Channel {
		m.Skipped = fmt.Sprintf("template %q is for %s, not %s", tpl.Slug, tpl.Channel, in.Channel)
		return m
	}
	data := map[string]any{"id": s.profileID(), "state": "known"}
	if s.view != nil {
		raw, _ := json.Marshal(s.view.Profile)
		_ = json.Unmarshal(raw, &data)
		delete(data, "trait_sources")
	}
	data["traits"] = traits
	switch in.Channel {
	case "email":
		m.To = s.address(identity.Email, traits)
		if m.To == "" {
			m.Skipped = "the profile has no email address"
		}
	case "sms":
		m.To = s.address(identity.Phone, traits)
		if m.To == "" {
			m.Skipped = "the profile has no phone number"
		}
	}
	c, err := s.deps.Templates.Compile(ctx, s.in.WorkspaceID, tpl)
	if err != nil {
		m.Skipped = fmt.Sprintf("template %q does not compile: %v", tpl.Slug, err)
		return m
	}
	td := template.Data{Profile: data, Journey: map[string]any{"id": s.in.JourneyID, "node": in.NodeID}}
	if t, ok := s.records[1]; ok && in.EventID != 0 {
		// The record that started the run, as sends see it.
		props := t.rec.Properties
		if props == nil {
			props = map[string]any{}
		}
		td.Event = map[string]any{"type": t.rec.Type, "name": t.rec.Event, "properties": props, "timestamp": t.at.UTC().Format(time.RFC3339)}
	}
	out, err := c.Render(ctx, td)
	if err != nil {
		m.Skipped = fmt.Sprintf("template %q does not render: %v", tpl.Slug, err)
		return m
	}
	m.Subject, m.HTML, m.Text = out.Subject, out.HTML, out.Text
	return m
}

// address is where a message would go: the profile's identity of that
// type (email, phone), else the trait of that name.
func (s *sim) address(typ string, traits map[string]any) string {
	if s.view != nil {
		for _, id := range s.view.Identities {
			if id.Type == typ {
				return id.Value
			}
		}
	}
	v, _ := traits[typ].(string)
	return strings.TrimSpace(v)
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

package workflows

import (
	"hash/fnv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/pkg/journey"
)

// Journey workflow names.
const (
	// JourneyWorkflow runs one profile through one journey version.
	JourneyWorkflow = "parcours.Journey"
	// EventSignal delivers a record the run listens to (ids only).
	EventSignal = "parcours.event"
	// StateQuery answers where the run is and what it waits for.
	StateQuery = "parcours.state"
	// MergedSignal tells a run its profile was merged into another, which
	// the run follows from then on.
	MergedSignal = "parcours.profile_merged"
)

// MergedSignalPayload names the surviving profile.
type MergedSignalPayload struct {
	ProfileID string
}

// Change ids for workflow.GetVersion: each names a change made to the
// journey workflow while runs were in flight.
const (
	// changeGoalConversion: a run that reaches its goal records the
	// conversion, attributed to the last message it sent.
	changeGoalConversion = "goal-conversion"
	// changeContinueAsNew: a waiting run that received many records
	// continues as new, carrying its place and what it had seen.
	changeContinueAsNew = "continue-as-new"
	// changeSendPolicy: a send a frequency cap or quiet hours deferred
	// waits until the time the ledger gave, then sends again.
	changeSendPolicy = "send-policy"
	// changeLeanRun: a run costs Temporal fewer tasks. Its bookkeeping and
	// quick database round trips (loading its version; recording its
	// entry, steps, end and conversion; evaluating conditions; reading a
	// profile's time zone or date; updating its traits) are local
	// activities, run by the worker inside the workflow task that needs
	// them, instead of an activity task and one more workflow task each;
	// sends stay activities (a provider call, its own timeout and
	// retries). And it upserts search attributes (each a visibility write)
	// only where they can be seen: not those its start already carries,
	// and ParcoursStep only at the steps a run stays at (see enter).
	changeLeanRun = "lean-run"
	// changeHistoryBound: a run also continues as new when its history
	// passes historyBound events, and a send deferred again and again
	// (a cap that stays full) continues as new too, not only a wait
	// receiving records.
	changeHistoryBound = "history-bound"
)

// historyBound is the history length, in events, past which a run hands
// over to a fresh one at its next chance: a twentieth of Temporal's hard
// limit (51,200 events, where it terminates the run), below the 4,096 at
// which the server suggests it, whatever the server's settings.
const historyBound = 2000

// JourneyInput starts a run. It carries ids only: no personal data goes into
// Temporal history.
type JourneyInput struct {
	WorkspaceID string
	JourneyID   string
	Version     int
	ProfileID   string
	// TriggerEventID is the events row that started the run (0 for API and
	// segment triggers); wait_for_event matches compare with it.
	TriggerEventID int64
	// Resume carries a run continued as new: where it was, and what it had
	// seen. Nil for a new run.
	Resume *JourneyResume `json:",omitempty"`
	// MaxSignals continues the run as new after this many records
	// (default 1,000), or sooner when the server suggests it.
	MaxSignals int `json:",omitempty"`
}

// JourneyResume is the state a run hands to its continuation: ids and
// times only.
type JourneyResume struct {
	PrevRunID string
	Node      string
	Path      []string
	Entered   time.Time
	// WaitUntil is when the wait the run was in ends.
	WaitUntil   time.Time
	LastSendKey string
	LastSendAt  string
	// Pending are records received and not yet handled.
	Pending []EventSignalPayload
}

// EventSignalPayload is a record for a running run: its id and name.
type EventSignalPayload struct {
	EventID int64
	Name    string
}

// JourneyState is what the state query answers.
type JourneyState struct {
	Node       string
	WaitingFor string    // an event name, "time", or ""
	Until      time.Time // when the current wait ends
	Path       []string
}

// JourneyResult says how a run ended and which way it went.
type JourneyResult struct {
	// Reason: completed, exited:<event>, goal.
	Reason string
	Path   []string
}

// journeyRun is the state of one run, with a method per step.
type journeyRun struct {
	in      JourneyInput
	def     journey.Definition
	nodes   map[string]*journey.Node
	state   JourneyState
	events  workflow.ReceiveChannel
	entered time.Time
	ended   string // set when an exit or goal ends the run
	// goalEventID is the record that reached the goal; lastSend the node
	// and business key of the last message the run sent (the one a
	// conversion is attributed to).
	goalEventID int64
	lastSendKey string
	lastSendAt  string
	// lean is set for runs started since changeLeanRun.
	lean bool
	// resume is the continued run's state until its wait is resumed;
	// pending the records to handle before new ones; signals counts the
	// records received (continue-as-new after in.MaxSignals); carry is set
	// when the run continues as new.
	resume  *JourneyResume
	pending []EventSignalPayload
	signals int
	carry   *JourneyResume
}

// errContinueAsNew unwinds a step when the run continues as new.
var errContinueAsNew = temporal.NewNonRetryableApplicationError("continue as new", "ContinueAsNew", nil)

// Journey runs one profile through a published journey version: sends,
// waits (durable timers), waits for correlated events, branches and splits,
// and ends on exit criteria or the goal wherever it is.
func Journey(ctx workflow.Context, in JourneyInput) (JourneyResult, error) {
	r := &journeyRun{in: in, events: workflow.GetSignalChannel(ctx, EventSignal), entered: workflow.Now(ctx), resume: in.Resume}
	if in.Resume != nil {
		r.entered, r.pending = in.Resume.Entered, in.Resume.Pending
		r.lastSendKey, r.lastSendAt = in.Resume.LastSendKey, in.Resume.LastSendAt
	}
	// A merge re-homes the run on the surviving profile, whenever it comes.
	merged := workflow.GetSignalChannel(ctx, MergedSignal)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var m MergedSignalPayload
			merged.Receive(ctx, &m)
			if m.ProfileID != "" {
				r.in.ProfileID = m.ProfileID
			}
		}
	})
	if err := workflow.SetQueryHandler(ctx, StateQuery, func() (JourneyState, error) { return r.state, nil }); err != nil {
		return JourneyResult{}, err
	}
	var a *activities.Activities
	// Decided once, before the run's first command, for the whole run.
	r.lean = workflow.GetVersion(ctx, changeLeanRun, workflow.DefaultVersion, 1) == 1
	if err := r.quick(ctx, a.LoadJourneyVersion, activities.JourneyVersionInput{
		WorkspaceID: in.WorkspaceID, JourneyID: in.JourneyID, Version: in.Version,
	}).Get(ctx, &r.def); err != nil {
		return JourneyResult{}, err
	}
	info := workflow.GetInfo(ctx).WorkflowExecution
	if in.Resume != nil {
		// A continuation: the run's row follows it to its new run id.
		if err := r.quick(ctx, a.ContinueJourneyRun, activities.ContinueRunInput{
			WorkspaceID: in.WorkspaceID, WorkflowID: info.ID, PrevRunID: in.Resume.PrevRunID, RunID: info.RunID,
		}).Get(ctx, nil); err != nil {
			return JourneyResult{}, err
		}
	} else if err := r.quick(ctx, a.RecordJourneyEntry, activities.JourneyEntryInput{
		WorkspaceID: in.WorkspaceID, WorkflowID: info.ID, RunID: info.RunID, JourneyID: in.JourneyID, Version: in.Version, ProfileID: in.ProfileID,
	}).Get(ctx, nil); err != nil {
		return JourneyResult{}, err
	}
	// A new run's start carries these (trigger.Starter); a continuation
	// sets them again, for the profile it may have been merged into.
	if !r.lean || in.Resume != nil {
		if err := workflow.UpsertTypedSearchAttributes(ctx, SAWorkspace.ValueSet(in.WorkspaceID), SAJourney.ValueSet(in.JourneyID),
			SAProfile.ValueSet(in.ProfileID), SAVersion.ValueSet(int64(in.Version))); err != nil {
			return JourneyResult{}, err
		}
	}
	r.nodes = map[string]*journey.Node{}
	for i := range r.def.Nodes {
		r.nodes[r.def.Nodes[i].ID] = &r.def.Nodes[i]
	}
	result := JourneyResult{Reason: "completed"}
	node := r.def.Start
	if in.Resume != nil {
		node = in.Resume.Node
		r.state.Path = in.Resume.Path[:len(in.Resume.Path)-1]
	}
	for node != "" && r.ended == "" {
		n := r.nodes[node]
		r.state = JourneyState{Node: node, Path: append(r.state.Path, node)}
		if err := r.enter(ctx, node); err != nil {
			return result, err
		}
		next, err := r.step(ctx, n)
		if r.carry != nil {
			// Drain what arrived meanwhile: the continuation handles it.
			for {
				var ev EventSignalPayload
				if !r.events.ReceiveAsync(&ev) {
					break
				}
				r.carry.Pending = append(r.carry.Pending, ev)
			}
			for {
				var m MergedSignalPayload
				if !merged.ReceiveAsync(&m) {
					break
				}
				if m.ProfileID != "" {
					r.in.ProfileID = m.ProfileID
				}
			}
			cont := r.in
			cont.Resume = r.carry
			return result, workflow.NewContinueAsNewError(ctx, JourneyWorkflow, cont)
		}
		if err != nil {
			return result, err
		}
		node = next
	}
	if r.ended != "" {
		result.Reason = r.ended
	}
	result.Path = r.state.Path
	// Conversions are attributed to the last message sent (added after
	// runs were in flight: runs that reached their goal before keep their
	// recorded history).
	if r.ended == "goal" && workflow.GetVersion(ctx, changeGoalConversion, workflow.DefaultVersion, 1) == 1 {
		var a *activities.Activities
		info := workflow.GetInfo(ctx).WorkflowExecution
		if err := r.quick(ctx, a.RecordConversion, activities.ConversionInput{
			WorkspaceID: in.WorkspaceID, WorkflowID: info.ID, RunID: info.RunID, JourneyID: in.JourneyID, Version: in.Version,
			ProfileID: r.in.ProfileID, EventID: r.goalEventID, DeliveryKey: r.lastSendKey, NodeID: r.lastSendAt,
		}).Get(ctx, nil); err != nil {
			return result, err
		}
	}
	r.finish(ctx, result.Reason)
	return result, nil
}

// enter records the node: search attribute for the Temporal UI, row for
// reports. A lean run sets ParcoursStep only at the steps it stays at (a
// wait, a send, which end the workflow task); it leaves the others
// (branch, split, profile update, exit) within the same workflow task,
// where their upsert would be overwritten before anyone could see it.
func (r *journeyRun) enter(ctx workflow.Context, node string) error {
	if !r.lean || stays(r.nodes[node]) {
		if err := workflow.UpsertTypedSearchAttributes(ctx, SAStep.ValueSet(node)); err != nil {
			return err
		}
	}
	var a *activities.Activities
	info := workflow.GetInfo(ctx).WorkflowExecution
	return r.quick(ctx, a.RecordJourneyStep, activities.JourneyStepInput{
		WorkspaceID: r.in.WorkspaceID, WorkflowID: info.ID, RunID: info.RunID, Node: node,
	}).Get(ctx, nil)
}

func (r *journeyRun) finish(ctx workflow.Context, reason string) {
	var a *activities.Activities
	info := workflow.GetInfo(ctx).WorkflowExecution
	_ = r.quick(ctx, a.RecordJourneyEnd, activities.JourneyEndInput{
		WorkspaceID: r.in.WorkspaceID, WorkflowID: info.ID, RunID: info.RunID, Reason: reason,
	}).Get(ctx, nil)
}

// step runs one node and returns the next node id ("" to end).
func (r *journeyRun) step(ctx workflow.Context, n *journey.Node) (string, error) {
	var a *activities.Activities
	switch n.Type {
	case journey.NodeExit:
		return "", nil
	case journey.NodeWait:
		d, _ := journey.ParseDuration(n.Duration)
		if rd, ok := r.resumedWait(ctx, n); ok {
			r.wait(ctx, rd, "")
			if r.carry != nil {
				return "", errContinueAsNew
			}
			return n.Next, nil
		}
		if n.Until != "" {
			// Until a time of day in the profile's time zone: an activity
			// reads the zone and answers how long to wait from now.
			if err := r.quick(ctx, a.UntilTimeOfDay, activities.UntilInput{
				WorkspaceID: r.in.WorkspaceID, ProfileID: r.in.ProfileID, Until: n.Until, Weekdays: n.Weekdays, Now: workflow.Now(ctx),
			}).Get(ctx, &d); err != nil {
				return "", err
			}
		}
		if n.Date != "" {
			// Until a date the profile holds (renewal, birthday) ± offset:
			// the activity reads it, only the wait enters history.
			var until activities.UntilDateResult
			if err := r.quick(ctx, a.UntilProfileDate, activities.UntilDateInput{
				WorkspaceID: r.in.WorkspaceID, ProfileID: r.in.ProfileID, Date: n.Date, Offset: n.Offset, EveryYear: n.EveryYear, Now: workflow.Now(ctx),
			}).Get(ctx, &until); err != nil {
				return "", err
			}
			if until.Missing {
				if n.OnMissing == "" {
					r.ended = "exited:no_date"
				}
				return n.OnMissing, nil
			}
			d = until.Wait
		}
		r.wait(ctx, d, "")
		if r.carry != nil {
			return "", errContinueAsNew
		}
		return n.Next, nil
	case journey.NodeWaitForEvent:
		d, _ := journey.ParseDuration(n.Timeout)
		if rd, ok := r.resumedWait(ctx, n); ok {
			d = rd
		}
		got := r.wait(ctx, d, n.Event, func(ev EventSignalPayload) bool { return r.matches(ctx, n.Match, ev) })
		switch {
		case r.carry != nil:
			return "", errContinueAsNew
		case got:
			return n.OnEvent, nil
		}
		return n.OnTimeout, nil
	case journey.NodeBranch:
		for _, b := range n.Branches {
			var ok bool
			err := r.quick(ctx, a.EvaluateProfileRule, activities.ProfileRuleInput{
				WorkspaceID: r.in.WorkspaceID, ProfileID: r.in.ProfileID, Rule: b.Condition, AsOf: workflow.Now(ctx),
			}).Get(ctx, &ok)
			if err != nil {
				return "", err
			}
			if ok {
				return b.Next, nil
			}
		}
		return n.Else, nil
	case journey.NodeSplit:
		// Deterministic per profile and node: the same person always takes
		// the same arm, on replay and on re-entry.
		h := fnv.New32a()
		h.Write([]byte(r.in.ProfileID + "/" + n.ID))
		bucket := int(h.Sum32() % 100)
		for _, v := range n.Variants {
			if bucket < v.Weight {
				return v.Next, nil
			}
			bucket -= v.Weight
		}
		return n.Variants[len(n.Variants)-1].Next, nil
	case journey.NodeUpdateProfile:
		err := r.quick(ctx, a.UpdateProfileTraits, activities.UpdateTraitsInput{
			WorkspaceID: r.in.WorkspaceID, ProfileID: r.in.ProfileID, Traits: n.Traits,
			Reason: "journey/" + r.in.JourneyID + "/" + n.ID,
		}).Get(ctx, nil)
		return n.Next, err
	case journey.NodeSend, journey.NodeWebhook:
		send := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			// A provider call; slow providers are retried, never sent twice (the ledger).
			StartToCloseTimeout: time.Minute,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval:        5 * time.Second,
				MaximumInterval:        10 * time.Minute,
				NonRetryableErrorTypes: []string{activities.ErrTypeSendFailed},
			},
		})
		var out activities.SendMessageResult
		key := "journey/" + r.in.JourneyID + "/v" + itoa(r.in.Version) + "/" + workflow.GetInfo(ctx).WorkflowExecution.ID + "/" + n.ID
		msg := activities.SendMessageInput{
			BusinessKey: key,
			WorkspaceID: r.in.WorkspaceID, ProfileID: r.in.ProfileID, TemplateSlug: n.Template, Channel: n.Channel,
			Class: n.MessageClass(), JourneyID: r.in.JourneyID, NodeID: n.ID, EventID: r.in.TriggerEventID,
			OnPolicy: n.PolicyAction(), Now: workflow.Now(ctx),
		}
		if n.Type == journey.NodeWebhook {
			msg.Channel, msg.TemplateSlug, msg.URL = "webhook", "", n.URL
		}
		err := workflow.ExecuteActivity(send, a.SendMessage, msg).Get(ctx, &out)
		// A frequency cap or quiet hours deferred the message: wait until
		// the time the ledger gave (exits and the goal still apply), then
		// send again with the same business key. Added while runs were in
		// flight; only a deferred answer, which no older history holds,
		// reaches the version check.
		for err == nil && out.Status == activities.StatusDeferred &&
			workflow.GetVersion(ctx, changeSendPolicy, workflow.DefaultVersion, 1) == 1 {
			r.wait(ctx, max(out.DeferredUntil.Sub(workflow.Now(ctx)), time.Second), "")
			if r.carry == nil && r.ended == "" && r.historyLong(ctx) {
				// Deferred again and again (a cap others keep full): each
				// round adds to the history, so hand over.
				r.handOver(ctx)
			}
			if r.carry != nil {
				return "", errContinueAsNew // the continuation sends again
			}
			msg.Now = workflow.Now(ctx)
			if r.ended != "" {
				// The run ended while the message waited: withdraw it.
				msg.Withdraw = r.ended
				err = workflow.ExecuteActivity(send, a.SendMessage, msg).Get(ctx, &out)
				return "", err
			}
			err = workflow.ExecuteActivity(send, a.SendMessage, msg).Get(ctx, &out)
		}
		if err == nil && out.Status == "sent" && n.Type == journey.NodeSend {
			r.lastSendKey, r.lastSendAt = key, n.ID
		}
		var appErr *temporal.ApplicationError
		if err != nil && !(asApplicationError(err, &appErr) && appErr.Type() == activities.ErrTypeSendFailed) {
			return "", err
		}
		// A permanent failure is recorded on the delivery; the run goes on.
		return n.Next, nil
	}
	return "", temporal.NewNonRetryableApplicationError("unknown node type "+n.Type, "BadDefinition", nil)
}

// wait blocks for d (0: no time limit) or, when event is set, until a
// matching event arrives; every record received meanwhile is checked
// against the exit criteria and the goal. It reports whether the awaited
// event came.
func (r *journeyRun) wait(ctx workflow.Context, d time.Duration, event string, match ...func(EventSignalPayload) bool) bool {
	timerCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	r.state.WaitingFor = "time"
	if event != "" {
		r.state.WaitingFor = event
	}
	r.state.Until = workflow.Now(ctx).Add(d)
	timer := workflow.NewTimer(timerCtx, d)
	for {
		got, fired := false, false
		handle := func(ev EventSignalPayload) {
			if ev.EventID == r.in.TriggerEventID {
				return // the record that started the run, delivered with the start
			}
			if r.checkEnds(ctx, ev) {
				return
			}
			if event != "" && ev.Name == event && (len(match) == 0 || match[0](ev)) {
				got = true
			}
		}
		if len(r.pending) > 0 {
			// Records a previous run of this workflow received and left.
			ev := r.pending[0]
			r.pending = r.pending[1:]
			handle(ev)
		} else {
			sel := workflow.NewSelector(ctx)
			sel.AddFuture(timer, func(workflow.Future) { fired = true })
			sel.AddReceive(r.events, func(c workflow.ReceiveChannel, _ bool) {
				var ev EventSignalPayload
				c.Receive(ctx, &ev)
				r.signals++
				handle(ev)
			})
			sel.Select(ctx)
		}
		if r.ended == "" && !got && !fired && r.continueAsNew(ctx) {
			r.handOver(ctx)
			return false
		}
		switch {
		case r.ended != "":
			return false
		case got:
			return true
		case fired:
			return false
		}
	}
}

// continueAsNew says whether a waiting run should hand over to a fresh run
// (its history grows with every record it receives): after in.MaxSignals
// records, when the server suggests it, or past historyBound events.
func (r *journeyRun) continueAsNew(ctx workflow.Context) bool {
	max := r.in.MaxSignals
	if max <= 0 {
		max = 1000
	}
	// Added while runs were in flight: runs recorded before replay as they were.
	if (r.signals >= max || workflow.GetInfo(ctx).GetContinueAsNewSuggested()) &&
		workflow.GetVersion(ctx, changeContinueAsNew, workflow.DefaultVersion, 1) == 1 {
		return true
	}
	return r.historyLong(ctx)
}

// historyLong says whether the run's history has passed historyBound
// events, or the server suggests continuing as new. Added while runs were
// in flight (changeHistoryBound): histories recorded before replay as they
// were.
func (r *journeyRun) historyLong(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	if info.GetCurrentHistoryLength() < historyBound && !info.GetContinueAsNewSuggested() {
		return false
	}
	return workflow.GetVersion(ctx, changeHistoryBound, workflow.DefaultVersion, 1) == 1
}

// handOver sets what the continuation needs: where the run is, what it
// waits for and until when, what it sent, and the records left to handle.
func (r *journeyRun) handOver(ctx workflow.Context) {
	r.carry = &JourneyResume{
		PrevRunID: workflow.GetInfo(ctx).WorkflowExecution.RunID, Node: r.state.Node, Path: r.state.Path,
		Entered: r.entered, WaitUntil: r.state.Until, LastSendKey: r.lastSendKey, LastSendAt: r.lastSendAt,
		Pending: append([]EventSignalPayload(nil), r.pending...),
	}
}

// resumedWait answers the time left of the wait a continued run was in.
func (r *journeyRun) resumedWait(ctx workflow.Context, n *journey.Node) (time.Duration, bool) {
	if r.resume == nil || r.resume.Node != n.ID {
		return 0, false
	}
	left := r.resume.WaitUntil.Sub(workflow.Now(ctx))
	r.resume = nil
	if left < 0 {
		left = 0
	}
	return left, true
}

// checkEnds applies exit criteria and the goal to a record; it reports
// whether the run ends.
func (r *journeyRun) checkEnds(ctx workflow.Context, ev EventSignalPayload) bool {
	for _, x := range r.def.Exits {
		if x.Event == ev.Name && r.matches(ctx, x.Filter, ev) {
			r.ended = "exited:" + strings.ToLower(strings.ReplaceAll(x.Event, " ", "_"))
			return true
		}
	}
	if g := r.def.Goal; g != nil && g.Event == ev.Name {
		within, _ := journey.ParseDuration(g.Within)
		if workflow.Now(ctx).Sub(r.entered) <= within && r.matches(ctx, g.Filter, ev) {
			r.ended, r.goalEventID = "goal", ev.EventID
			return true
		}
	}
	return false
}

// matches runs a record condition in an activity (the record's data stays
// out of history). An empty rule matches.
func (r *journeyRun) matches(ctx workflow.Context, rule string, ev EventSignalPayload) bool {
	if rule == "" {
		return true
	}
	var a *activities.Activities
	var ok bool
	if err := r.quick(ctx, a.MatchEvent, activities.MatchEventInput{
		WorkspaceID: r.in.WorkspaceID, Rule: rule, EventID: ev.EventID, TriggerEventID: r.in.TriggerEventID,
	}).Get(ctx, &ok); err != nil {
		return false
	}
	return ok
}

// stays says whether a run can stay at a node beyond the workflow task
// that enters it: a wait, or a send (its activity).
func stays(n *journey.Node) bool {
	if n == nil {
		return true
	}
	switch n.Type {
	case journey.NodeWait, journey.NodeWaitForEvent, journey.NodeSend, journey.NodeWebhook:
		return true
	}
	return false
}

// quick runs a bookkeeping write or a quick read (a database round trip):
// a local activity in lean runs (changeLeanRun), a regular activity in
// runs started before (their histories say so). Either way it is retried
// until the database is back, and the activities are idempotent (Temporal
// runs both kinds at least once).
func (r *journeyRun) quick(ctx workflow.Context, activity, input any) workflow.Future {
	if r.lean {
		return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: 30 * time.Second,
		}), activity, input)
	}
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
	}), activity, input)
}

func asApplicationError(err error, target **temporal.ApplicationError) bool {
	for err != nil {
		if ae, ok := err.(*temporal.ApplicationError); ok {
			*target = ae
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

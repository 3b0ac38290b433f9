package workflows

import (
	"hash/fnv"
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

// Versions of the journey workflow's command sequence (workflow.GetVersion
// change ids) live here. There are none: there was no release, so the
// changes made while runs were in flight before it (goal conversion,
// continue-as-new, the send policy's deferrals, lean runs with local
// activities, the history bound) are folded into the one shape below, and
// its histories were recorded anew (testdata/journey_cart.json).
//
// The rule from now on: every change of the commands a run issues — an
// activity or local activity added, removed, reordered or moved from one
// kind to the other, a timer, a search attribute upsert, a signal drained,
// a continue-as-new in a new place — goes behind workflow.GetVersion with
// a change id declared here and listed in journeyChanges, and lands with a
// recorded history that reaches it (api/record_history_test.go with
// PARCOURS_RECORD_HISTORIES=1, saved under a new name next to the older
// histories, which must go on replaying). The replay test fails on a
// change id that no recorded history reaches.
var journeyChanges = []string{}

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
	// Outcome: completed, exited (and on what), or goal.
	Outcome journey.Outcome
	Path    []string
}

// journeyRun is the state of one run, with a method per kind of node.
type journeyRun struct {
	in      JourneyInput
	def     journey.Definition
	nodes   map[string]*journey.Node
	state   JourneyState
	events  workflow.ReceiveChannel
	merged  workflow.ReceiveChannel
	entered time.Time
	ended   journey.Outcome // set when an exit, the goal or a missing date ends the run
	// goalEventID is the record that reached the goal; lastSend the node
	// and business key of the last message the run sent (the one a
	// conversion is attributed to).
	goalEventID int64
	lastSendKey string
	lastSendAt  string
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
	r := &journeyRun{
		in: in, events: workflow.GetSignalChannel(ctx, EventSignal), merged: workflow.GetSignalChannel(ctx, MergedSignal),
		entered: workflow.Now(ctx), resume: in.Resume,
	}
	if in.Resume != nil {
		r.entered, r.pending = in.Resume.Entered, in.Resume.Pending
		r.lastSendKey, r.lastSendAt = in.Resume.LastSendKey, in.Resume.LastSendAt
	}
	// A merge re-homes the run on the surviving profile, whenever it comes.
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var m MergedSignalPayload
			r.merged.Receive(ctx, &m)
			r.rehome(m)
		}
	})
	if err := workflow.SetQueryHandler(ctx, StateQuery, func() (JourneyState, error) { return r.state, nil }); err != nil {
		return JourneyResult{}, err
	}
	if err := r.begin(ctx); err != nil {
		return JourneyResult{}, err
	}
	result := JourneyResult{Outcome: journey.Ended(journey.OutcomeCompleted)}
	node := r.def.Start
	if in.Resume != nil {
		node = in.Resume.Node
		r.state.Path = in.Resume.Path[:len(in.Resume.Path)-1]
	}
	for node != "" && r.ended.IsZero() {
		r.state = JourneyState{Node: node, Path: append(r.state.Path, node)}
		if err := r.enter(ctx, node); err != nil {
			return result, err
		}
		next, err := r.step(ctx, r.nodes[node])
		if r.carry != nil {
			return result, r.continueRun(ctx)
		}
		if err != nil {
			return result, err
		}
		node = next
	}
	if !r.ended.IsZero() {
		result.Outcome = r.ended
	}
	result.Path = r.state.Path
	if r.ended.Kind == journey.OutcomeGoal {
		// Conversions are attributed to the last message sent.
		var a *activities.Activities
		info := workflow.GetInfo(ctx).WorkflowExecution
		if err := quick(ctx, a.RecordConversion, activities.ConversionInput{
			WorkspaceID: in.WorkspaceID, WorkflowID: info.ID, RunID: info.RunID, JourneyID: in.JourneyID, Version: in.Version,
			ProfileID: r.in.ProfileID, EventID: r.goalEventID, DeliveryKey: r.lastSendKey, NodeID: r.lastSendAt,
		}).Get(ctx, nil); err != nil {
			return result, err
		}
	}
	r.finish(ctx, result.Outcome)
	return result, nil
}

// begin loads the run's version and records the run: its entry, or for a
// continuation the move of its row to the new run id (and the search
// attributes again, for the profile it may have been merged into; a new
// run's start carries them, trigger.Starter).
func (r *journeyRun) begin(ctx workflow.Context) error {
	var a *activities.Activities
	in := r.in
	if err := quick(ctx, a.LoadJourneyVersion, activities.JourneyVersionInput{
		WorkspaceID: in.WorkspaceID, JourneyID: in.JourneyID, Version: in.Version,
	}).Get(ctx, &r.def); err != nil {
		return err
	}
	r.nodes = map[string]*journey.Node{}
	for i := range r.def.Nodes {
		r.nodes[r.def.Nodes[i].ID] = &r.def.Nodes[i]
	}
	info := workflow.GetInfo(ctx).WorkflowExecution
	if in.Resume == nil {
		return quick(ctx, a.RecordJourneyEntry, activities.JourneyEntryInput{
			WorkspaceID: in.WorkspaceID, WorkflowID: info.ID, RunID: info.RunID, JourneyID: in.JourneyID, Version: in.Version, ProfileID: in.ProfileID,
		}).Get(ctx, nil)
	}
	if err := quick(ctx, a.ContinueJourneyRun, activities.ContinueRunInput{
		WorkspaceID: in.WorkspaceID, WorkflowID: info.ID, PrevRunID: in.Resume.PrevRunID, RunID: info.RunID,
	}).Get(ctx, nil); err != nil {
		return err
	}
	return workflow.UpsertTypedSearchAttributes(ctx, SAWorkspace.ValueSet(in.WorkspaceID), SAJourney.ValueSet(in.JourneyID),
		SAProfile.ValueSet(in.ProfileID), SAVersion.ValueSet(int64(in.Version)))
}

// rehome follows a merge: the run goes on for the surviving profile.
func (r *journeyRun) rehome(m MergedSignalPayload) {
	if m.ProfileID != "" {
		r.in.ProfileID = m.ProfileID
	}
}

// continueRun hands over to a fresh run, with what arrived meanwhile.
func (r *journeyRun) continueRun(ctx workflow.Context) error {
	for {
		var ev EventSignalPayload
		if !r.events.ReceiveAsync(&ev) {
			break
		}
		r.carry.Pending = append(r.carry.Pending, ev)
	}
	for {
		var m MergedSignalPayload
		if !r.merged.ReceiveAsync(&m) {
			break
		}
		r.rehome(m)
	}
	cont := r.in
	cont.Resume = r.carry
	return workflow.NewContinueAsNewError(ctx, JourneyWorkflow, cont)
}

// enter records the node: search attribute for the Temporal UI (only at
// the steps a run stays at — a wait, a send — which end the workflow task;
// at the others the upsert would be overwritten before anyone could see
// it), row for reports.
func (r *journeyRun) enter(ctx workflow.Context, node string) error {
	if stays(r.nodes[node]) {
		if err := workflow.UpsertTypedSearchAttributes(ctx, SAStep.ValueSet(node)); err != nil {
			return err
		}
	}
	var a *activities.Activities
	info := workflow.GetInfo(ctx).WorkflowExecution
	return quick(ctx, a.RecordJourneyStep, activities.JourneyStepInput{
		WorkspaceID: r.in.WorkspaceID, WorkflowID: info.ID, RunID: info.RunID, Node: node,
	}).Get(ctx, nil)
}

func (r *journeyRun) finish(ctx workflow.Context, o journey.Outcome) {
	var a *activities.Activities
	info := workflow.GetInfo(ctx).WorkflowExecution
	_ = quick(ctx, a.RecordJourneyEnd, activities.JourneyEndInput{
		WorkspaceID: r.in.WorkspaceID, WorkflowID: info.ID, RunID: info.RunID, Outcome: o,
	}).Get(ctx, nil)
}

// step runs one node and returns the next node id ("" to end).
func (r *journeyRun) step(ctx workflow.Context, n *journey.Node) (string, error) {
	switch n.Type {
	case journey.NodeExit:
		return "", nil
	case journey.NodeWait:
		return r.stepWait(ctx, n)
	case journey.NodeWaitForEvent:
		return r.stepWaitForEvent(ctx, n)
	case journey.NodeBranch:
		return r.stepBranch(ctx, n)
	case journey.NodeSplit:
		return r.stepSplit(n), nil
	case journey.NodeUpdateProfile:
		return r.stepUpdateProfile(ctx, n)
	case journey.NodeSend, journey.NodeWebhook:
		return r.stepSend(ctx, n)
	}
	return "", temporal.NewNonRetryableApplicationError("unknown node type "+n.Type, "BadDefinition", nil)
}

// stepWait waits a duration, until a time of day, or until a date the
// profile holds; a continued run finishes the wait it was in.
func (r *journeyRun) stepWait(ctx workflow.Context, n *journey.Node) (string, error) {
	d, resumed := r.resumedWait(ctx, n)
	if !resumed {
		var missing bool
		var err error
		if d, missing, err = r.waitLength(ctx, n); err != nil {
			return "", err
		}
		if missing {
			if n.OnMissing == "" {
				r.ended = journey.Outcome{Kind: journey.OutcomeExited, Exit: journey.ExitNoDate}
			}
			return n.OnMissing, nil
		}
	}
	r.await(ctx, d, "")
	if r.carry != nil {
		return "", errContinueAsNew
	}
	return n.Next, nil
}

// waitLength answers how long a wait node waits from now; missing when it
// waits for a date the profile does not have (or that has passed).
func (r *journeyRun) waitLength(ctx workflow.Context, n *journey.Node) (d time.Duration, missing bool, err error) {
	var a *activities.Activities
	d, _ = journey.ParseDuration(n.Duration)
	if n.Until != "" {
		// Until a time of day in the profile's time zone: an activity
		// reads the zone and answers how long to wait from now.
		if err := quick(ctx, a.UntilTimeOfDay, activities.UntilInput{
			WorkspaceID: r.in.WorkspaceID, ProfileID: r.in.ProfileID, Until: n.Until, Weekdays: n.Weekdays, Now: workflow.Now(ctx),
		}).Get(ctx, &d); err != nil {
			return 0, false, err
		}
	}
	if n.Date != "" {
		// Until a date the profile holds (renewal, birthday) ± offset:
		// the activity reads it, only the wait enters history.
		var until activities.UntilDateResult
		if err := quick(ctx, a.UntilProfileDate, activities.UntilDateInput{
			WorkspaceID: r.in.WorkspaceID, ProfileID: r.in.ProfileID, Date: n.Date, Offset: n.Offset, EveryYear: n.EveryYear, Now: workflow.Now(ctx),
		}).Get(ctx, &until); err != nil {
			return 0, false, err
		}
		if until.Missing {
			return 0, true, nil
		}
		d = until.Wait
	}
	return d, false, nil
}

// stepWaitForEvent waits for a matching record, or goes the timeout way.
func (r *journeyRun) stepWaitForEvent(ctx workflow.Context, n *journey.Node) (string, error) {
	d, _ := journey.ParseDuration(n.Timeout)
	if rd, ok := r.resumedWait(ctx, n); ok {
		d = rd
	}
	got := r.await(ctx, d, n.Event, func(ev EventSignalPayload) bool { return r.matches(ctx, n.Match, ev) })
	switch {
	case r.carry != nil:
		return "", errContinueAsNew
	case got:
		return n.OnEvent, nil
	}
	return n.OnTimeout, nil
}

// stepBranch takes the first branch whose condition the profile meets.
func (r *journeyRun) stepBranch(ctx workflow.Context, n *journey.Node) (string, error) {
	var a *activities.Activities
	for _, b := range n.Branches {
		var ok bool
		if err := quick(ctx, a.EvaluateProfileRule, activities.ProfileRuleInput{
			WorkspaceID: r.in.WorkspaceID, ProfileID: r.in.ProfileID, Rule: b.Condition, AsOf: workflow.Now(ctx),
		}).Get(ctx, &ok); err != nil {
			return "", err
		}
		if ok {
			return b.Next, nil
		}
	}
	return n.Else, nil
}

// stepSplit picks a variant by weight, deterministically per profile and
// node: the same person always takes the same arm, on replay and on
// re-entry.
func (r *journeyRun) stepSplit(n *journey.Node) string {
	h := fnv.New32a()
	h.Write([]byte(r.in.ProfileID + "/" + n.ID))
	bucket := int(h.Sum32() % 100)
	for _, v := range n.Variants {
		if bucket < v.Weight {
			return v.Next
		}
		bucket -= v.Weight
	}
	return n.Variants[len(n.Variants)-1].Next
}

// stepUpdateProfile sets the node's traits on the profile.
func (r *journeyRun) stepUpdateProfile(ctx workflow.Context, n *journey.Node) (string, error) {
	var a *activities.Activities
	err := quick(ctx, a.UpdateProfileTraits, activities.UpdateTraitsInput{
		WorkspaceID: r.in.WorkspaceID, ProfileID: r.in.ProfileID, Traits: n.Traits,
		Reason: "journey/" + r.in.JourneyID + "/" + n.ID,
	}).Get(ctx, nil)
	return n.Next, err
}

// stepSend sends the node's message (or webhook) through the delivery
// ledger, once per run and node (its business key). A frequency cap or
// quiet hours may defer it: the run waits until the time the ledger gave
// (exits and the goal still apply) and sends again with the same key, or
// withdraws it when the run ended meanwhile. A permanent failure is
// recorded on the delivery, and the run goes on.
func (r *journeyRun) stepSend(ctx workflow.Context, n *journey.Node) (string, error) {
	var a *activities.Activities
	send := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// A provider call; slow providers are retried, never sent twice (the ledger).
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			MaximumInterval:        10 * time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypeSendFailed},
		},
	})
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
	var out activities.SendMessageResult
	err := workflow.ExecuteActivity(send, a.SendMessage, msg).Get(ctx, &out)
	for err == nil && out.Status == activities.StatusDeferred {
		r.await(ctx, max(out.DeferredUntil.Sub(workflow.Now(ctx)), time.Second), "")
		if r.carry == nil && r.ended.IsZero() && r.historyLong(ctx) {
			// Deferred again and again (a cap others keep full): each
			// round adds to the history, so hand over.
			r.handOver(ctx)
		}
		if r.carry != nil {
			return "", errContinueAsNew // the continuation sends again
		}
		msg.Now = workflow.Now(ctx)
		if !r.ended.IsZero() {
			// The run ended while the message waited: withdraw it.
			msg.Withdraw = r.ended.String()
			return "", workflow.ExecuteActivity(send, a.SendMessage, msg).Get(ctx, &out)
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
	return n.Next, nil
}

// await blocks for d (0: no time limit) or, when event is set, until a
// matching event arrives; every record received meanwhile is checked
// against the exit criteria and the goal. It reports whether the awaited
// event came.
func (r *journeyRun) await(ctx workflow.Context, d time.Duration, event string, match ...func(EventSignalPayload) bool) bool {
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
		if r.ended.IsZero() && !got && !fired && r.continueAsNew(ctx) {
			r.handOver(ctx)
			return false
		}
		switch {
		case !r.ended.IsZero():
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
// records (default 1,000), or when its history is long (historyLong).
func (r *journeyRun) continueAsNew(ctx workflow.Context) bool {
	max := r.in.MaxSignals
	if max <= 0 {
		max = 1000
	}
	return r.signals >= max || r.historyLong(ctx)
}

// historyLong says whether the run's history has passed historyBound
// events, or the server suggests continuing as new.
func (r *journeyRun) historyLong(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetCurrentHistoryLength() >= historyBound || info.GetContinueAsNewSuggested()
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
			r.ended = journey.ExitedOn(x.Event)
			return true
		}
	}
	if g := r.def.Goal; g != nil && g.Event == ev.Name {
		within, _ := journey.ParseDuration(g.Within)
		if workflow.Now(ctx).Sub(r.entered) <= within && r.matches(ctx, g.Filter, ev) {
			r.ended, r.goalEventID = journey.Ended(journey.OutcomeGoal), ev.EventID
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
	if err := quick(ctx, a.MatchEvent, activities.MatchEventInput{
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

// quick runs a bookkeeping write or a quick read (a database round trip:
// loading the version; recording the entry, steps, end and conversion;
// evaluating conditions; reading a time zone or a date; updating traits)
// as a local activity: the worker runs it inside the workflow task that
// needs it, which costs Temporal no activity task and no extra workflow
// task. It is retried until the database is back, and the activities are
// idempotent (Temporal runs them at least once). Sends stay regular
// activities (stepSend): a provider call, with its own timeout and retries.
func quick(ctx workflow.Context, activity, input any) workflow.Future {
	return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		// A database round trip; past 30 s the attempt is stuck, retry it.
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

package workflows_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/workflows"
)

// journeyEnv runs the Journey workflow in the time-skipping test suite with
// the definition of testdata/abandoned_cart.json (or def) and the journey's
// activities faked (fakeJourney).
type journeyEnv struct {
	*testsuite.TestWorkflowEnvironment
	*fakeJourney
}

func newJourneyEnv(t *testing.T, def journey.Definition) *journeyEnv {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	e := &journeyEnv{TestWorkflowEnvironment: s.NewTestWorkflowEnvironment(), fakeJourney: newFakeJourney(def)}
	e.RegisterActivity(e.fakeJourney)
	return e
}

func cartDefinition(t *testing.T) journey.Definition {
	t.Helper()
	raw, err := os.ReadFile("../pkg/journey/testdata/abandoned_cart.json")
	if err != nil {
		t.Fatal(err)
	}
	d, err := journey.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var cartInput = workflows.JourneyInput{WorkspaceID: "ws", JourneyID: "j", Version: 1, ProfileID: "p", TriggerEventID: 1}

func (e *journeyEnv) result(t *testing.T) workflows.JourneyResult {
	t.Helper()
	if err := e.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var r workflows.JourneyResult
	if err := e.GetWorkflowResult(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAbandonedCartSendsTwoEmailsWithoutAnOrder(t *testing.T) {
	t.Parallel()
	e := newJourneyEnv(t, cartDefinition(t))
	e.ExecuteWorkflow(workflows.Journey, cartInput)
	r := e.result(t)
	if r.Outcome != journey.Ended(journey.OutcomeCompleted) || len(e.sent) != 2 || e.sent[0] != "cart-rescue-1" || e.sent[1] != "cart-rescue-coupon" {
		t.Fatalf("result %+v, sent %v", r, e.sent)
	}
}

func TestAbandonedCartOrderOfThatCartStopsTheRescue(t *testing.T) {
	t.Parallel()
	e := newJourneyEnv(t, cartDefinition(t))
	e.matches[7] = true // the order of the same cart
	e.RegisterDelayedCallback(func() {
		// An order of another cart first: no match, the wait goes on.
		e.SignalWorkflow(workflows.EventSignal, workflows.EventSignalPayload{EventID: 6, Name: "Page Viewed"})
	}, 10*time.Minute)
	e.RegisterDelayedCallback(func() {
		e.SignalWorkflow(workflows.EventSignal, workflows.EventSignalPayload{EventID: 7, Name: "Order Completed"})
	}, 30*time.Minute)
	e.ExecuteWorkflow(workflows.Journey, cartInput)
	r := e.result(t)
	// The order is also an exit criterion and the goal: the exit wins, nothing is sent.
	if len(e.sent) != 0 || r.Outcome != journey.ExitedOn("Order Completed") {
		t.Fatalf("result %+v, sent %v", r, e.sent)
	}
}

func TestExitWhileWaitingBetweenEmails(t *testing.T) {
	t.Parallel()
	e := newJourneyEnv(t, cartDefinition(t))
	e.RegisterDelayedCallback(func() {
		e.SignalWorkflow(workflows.EventSignal, workflows.EventSignalPayload{EventID: 9, Name: "Order Completed"})
	}, 5*time.Hour) // after the first email, during the 24 h wait
	e.ExecuteWorkflow(workflows.Journey, cartInput)
	r := e.result(t)
	if len(e.sent) != 1 || r.Outcome != journey.ExitedOn("Order Completed") {
		t.Fatalf("result %+v, sent %v, want one email then the exit", r, e.sent)
	}
}

func TestBranchSplitAndUpdateProfile(t *testing.T) {
	t.Parallel()
	d := journey.Definition{
		Name: "Welcome", Trigger: journey.Trigger{Type: "event", Event: "Signed Up"}, Entry: journey.Entry{ReEntry: "once"},
		Start: "is_customer",
		Nodes: []journey.Node{
			{ID: "is_customer", Type: "branch", Branches: []journey.Branch{{Condition: `profile.order_count > 0`, Next: "tag"}}, Else: "ab"},
			{ID: "ab", Type: "split", Variants: []journey.Variant{{Name: "a", Weight: 50, Next: "mail_a"}, {Name: "b", Weight: 50, Next: "mail_b"}}},
			{ID: "mail_a", Type: "send", Channel: "email", Template: "welcome-a", Next: "end"},
			{ID: "mail_b", Type: "send", Channel: "email", Template: "welcome-b", Next: "end"},
			{ID: "tag", Type: "update_profile", Traits: map[string]any{"welcomed": true}, Next: "end"},
			{ID: "end", Type: "exit"},
		},
	}
	if err := journey.Validate(d); err != nil {
		t.Fatal(err)
	}
	e := newJourneyEnv(t, d)
	e.ExecuteWorkflow(workflows.Journey, cartInput)
	r := e.result(t)
	if len(e.sent) != 1 || len(e.traits) != 0 || r.Path[0] != "is_customer" || r.Path[1] != "ab" {
		t.Fatalf("path %v sent %v", r.Path, e.sent)
	}
	// The split is deterministic per profile: the same person takes the same arm.
	again := newJourneyEnv(t, d)
	again.ExecuteWorkflow(workflows.Journey, cartInput)
	if again.result(t); again.sent[0] != e.sent[0] {
		t.Fatalf("split not deterministic: %v then %v", e.sent, again.sent)
	}
	// A customer takes the branch: traits updated, no email.
	cust := newJourneyEnv(t, d)
	cust.customer = true
	cust.ExecuteWorkflow(workflows.Journey, cartInput)
	if r := cust.result(t); len(cust.sent) != 0 || len(cust.traits) != 1 || cust.traits[0]["welcomed"] != true || r.Path[1] != "tag" {
		t.Fatalf("customer path %v traits %v sent %v", r.Path, cust.traits, cust.sent)
	}
}

// A wait until a time of day sleeps as long as the activity computed from
// the profile's time zone.
func TestWaitUntilTimeOfDay(t *testing.T) {
	t.Parallel()
	d := journey.Definition{
		Name: "Morning", Trigger: journey.Trigger{Type: "api"}, Entry: journey.Entry{ReEntry: "every_time"}, Start: "morning",
		Nodes: []journey.Node{
			{ID: "morning", Type: "wait", Until: "09:00", Weekdays: []string{"mon", "tue"}, Next: "mail"},
			{ID: "mail", Type: "send", Channel: "email", Template: "digest", Next: "end"},
			{ID: "end", Type: "exit"},
		},
	}
	if err := journey.Validate(d); err != nil {
		t.Fatal(err)
	}
	e := newJourneyEnv(t, d)
	start := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	e.SetStartTime(start)
	var sentAt time.Time
	e.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == "SendMessage" {
			sentAt = e.Now()
		}
	})
	e.ExecuteWorkflow(workflows.Journey, cartInput)
	e.result(t)
	if got := sentAt.Sub(start); got < 3*time.Hour || got > 3*time.Hour+time.Minute {
		t.Fatalf("sent %v after the start, want 3h", got)
	}
}

// A wait until a profile date ± offset sleeps as long as the activity
// computed; a profile without the date goes to on_missing, or ends.
func TestWaitUntilProfileDate(t *testing.T) {
	t.Parallel()
	d := journey.Definition{
		Name: "Renewal", Trigger: journey.Trigger{Type: "api"}, Entry: journey.Entry{ReEntry: "every_time"}, Start: "before_renewal",
		Nodes: []journey.Node{
			{ID: "before_renewal", Type: "wait", Date: "traits.renewal_at", Offset: "-3d", Next: "mail"},
			{ID: "mail", Type: "send", Channel: "email", Template: "renewal", Next: "end"},
			{ID: "end", Type: "exit"},
		},
	}
	if err := journey.Validate(d); err != nil {
		t.Fatal(err)
	}
	e := newJourneyEnv(t, d)
	e.date = activities.UntilDateResult{Wait: 48 * time.Hour}
	start := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	e.SetStartTime(start)
	var sentAt time.Time
	e.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == "SendMessage" {
			sentAt = e.Now()
		}
	})
	e.ExecuteWorkflow(workflows.Journey, cartInput)
	if r := e.result(t); r.Outcome != journey.Ended(journey.OutcomeCompleted) || sentAt.Sub(start) != 48*time.Hour {
		t.Fatalf("result %+v, sent %v after the start, want 48h", r, sentAt.Sub(start))
	}

	// No date: the run ends without sending.
	none := newJourneyEnv(t, d)
	none.date = activities.UntilDateResult{Missing: true, Reason: "the profile has no readable date"}
	none.ExecuteWorkflow(workflows.Journey, cartInput)
	if r := none.result(t); r.Outcome != (journey.Outcome{Kind: journey.OutcomeExited, Exit: journey.ExitNoDate}) || len(none.sent) != 0 {
		t.Fatalf("without a date: %+v, sent %v", r, none.sent)
	}

	// With on_missing: that way instead.
	d.Nodes = append(d.Nodes, journey.Node{ID: "ask", Type: "send", Channel: "email", Template: "ask-renewal-date", Next: "end"})
	d.Nodes[0].OnMissing = "ask"
	if err := journey.Validate(d); err != nil {
		t.Fatal(err)
	}
	ask := newJourneyEnv(t, d)
	ask.date = activities.UntilDateResult{Missing: true}
	ask.ExecuteWorkflow(workflows.Journey, cartInput)
	if r := ask.result(t); r.Outcome != journey.Ended(journey.OutcomeCompleted) || len(ask.sent) != 1 || ask.sent[0] != "ask-renewal-date" {
		t.Fatalf("on_missing: %+v, sent %v", r, ask.sent)
	}
}

// A webhook node goes through the send activity (and so the ledger: once
// per run and node) with its URL and no template.
func TestWebhookNodePostsThroughTheLedger(t *testing.T) {
	t.Parallel()
	d := journey.Definition{
		Name: "CRM sync", Trigger: journey.Trigger{Type: "api"}, Entry: journey.Entry{ReEntry: "every_time"}, Start: "crm",
		Nodes: []journey.Node{
			{ID: "crm", Type: "webhook", URL: "https://crm.example.com/hooks/parcours", Next: "end"},
			{ID: "end", Type: "exit"},
		},
	}
	if err := journey.Validate(d); err != nil {
		t.Fatal(err)
	}
	e := newJourneyEnv(t, d)
	e.ExecuteWorkflow(workflows.Journey, cartInput)
	e.result(t)
	if len(e.messages) != 1 {
		t.Fatalf("%d calls", len(e.messages))
	}
	m := e.messages[0]
	if m.Channel != "webhook" || m.URL != "https://crm.example.com/hooks/parcours" || m.TemplateSlug != "" || m.NodeID != "crm" || m.BusinessKey == "" {
		t.Fatalf("webhook call %+v", m)
	}
}

// Reaching the goal records a conversion attributed to the last message
// the run sent before it.
func TestGoalRecordsAConversionAttributedToTheLastMessage(t *testing.T) {
	t.Parallel()
	d := journey.Definition{
		Name: "Nurture", Trigger: journey.Trigger{Type: "api"}, Entry: journey.Entry{ReEntry: "every_time"}, Start: "first",
		Nodes: []journey.Node{
			{ID: "first", Type: "send", Channel: "email", Template: "n1", Next: "pause"},
			{ID: "pause", Type: "wait", Duration: "2d", Next: "second"},
			{ID: "second", Type: "send", Channel: "email", Template: "n2", Next: "pause2"},
			{ID: "pause2", Type: "wait", Duration: "7d", Next: "end"},
			{ID: "end", Type: "exit"},
		},
		Goal: &journey.Goal{Event: "Order Completed", Within: "30d"},
	}
	if err := journey.Validate(d); err != nil {
		t.Fatal(err)
	}
	e := newJourneyEnv(t, d)
	e.RegisterDelayedCallback(func() {
		e.SignalWorkflow(workflows.EventSignal, workflows.EventSignalPayload{EventID: 42, Name: "Order Completed"})
	}, 3*24*time.Hour) // after the second email
	e.ExecuteWorkflow(workflows.Journey, cartInput)
	if r := e.result(t); r.Outcome != journey.Ended(journey.OutcomeGoal) || len(e.sent) != 2 {
		t.Fatalf("result %+v, sent %v", r, e.sent)
	}
	if len(e.conversions) != 1 || e.conversions[0].EventID != 42 || e.conversions[0].NodeID != "second" ||
		e.conversions[0].DeliveryKey != e.messages[1].BusinessKey {
		t.Fatalf("conversions %+v", e.conversions)
	}
}

// A run waiting long while records keep arriving continues as new before
// its history grows too long, carrying its place, its wait's deadline and
// what it had sent; the continuation finishes the wait without sending
// anything twice.
func TestLongWaitContinuesAsNew(t *testing.T) {
	t.Parallel()
	d := journey.Definition{
		Name: "Resend", Trigger: journey.Trigger{Type: "api"}, Entry: journey.Entry{ReEntry: "every_time"}, Start: "news",
		Nodes: []journey.Node{
			{ID: "news", Type: "send", Channel: "email", Template: "news", Next: "wait_open"},
			{ID: "wait_open", Type: "wait_for_event", Event: "Email Opened", Match: `properties.machine_open != true`, Timeout: "10d", OnEvent: "end", OnTimeout: "resend"},
			{ID: "resend", Type: "send", Channel: "email", Template: "news-resend", Next: "end"},
			{ID: "end", Type: "exit"},
		},
		Goal: &journey.Goal{Event: "Order Completed", Within: "30d"},
	}
	if err := journey.Validate(d); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	in := workflows.JourneyInput{WorkspaceID: "ws", JourneyID: "j", Version: 1, ProfileID: "p", MaxSignals: 3}

	first := newJourneyEnv(t, d)
	first.SetStartTime(start)
	for i := 1; i <= 3; i++ { // three machine opens: not the awaited open
		id := int64(10 + i)
		first.RegisterDelayedCallback(func() {
			first.SignalWorkflow(workflows.EventSignal, workflows.EventSignalPayload{EventID: id, Name: "Email Opened"})
		}, time.Duration(i)*24*time.Hour)
	}
	first.ExecuteWorkflow(workflows.Journey, in)
	var can *workflow.ContinueAsNewError
	if err := first.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next workflows.JourneyInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	r := next.Resume
	if r == nil || r.Node != "wait_open" || !r.WaitUntil.Equal(start.Add(10*24*time.Hour)) || strings.Join(r.Path, ",") != "news,wait_open" ||
		!r.Entered.Equal(start) || r.LastSendAt != "news" || next.ProfileID != "p" || len(first.sent) != 1 {
		t.Fatalf("continuation %+v (sent %v)", r, first.sent)
	}

	// The continuation: nothing more arrives, the resend goes at the original deadline.
	second := newJourneyEnv(t, d)
	second.SetStartTime(start.Add(3 * 24 * time.Hour))
	var resentAt time.Time
	second.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == "SendMessage" {
			resentAt = second.Now()
		}
	})
	second.ExecuteWorkflow(workflows.Journey, next)
	res := second.result(t)
	if strings.Join(second.sent, ",") != "news-resend" || !resentAt.Equal(start.Add(10*24*time.Hour)) ||
		strings.Join(res.Path, ",") != "news,wait_open,resend,end" || len(second.continued) != 1 || second.continued[0].PrevRunID != r.PrevRunID {
		t.Fatalf("continued run: sent %v at %v, path %v, continued %+v", second.sent, resentAt, res.Path, second.continued)
	}

	// A record left pending at the hand-over is handled by the continuation: an order reaches the goal.
	next.Resume.Pending = []workflows.EventSignalPayload{{EventID: 20, Name: "Order Completed"}}
	third := newJourneyEnv(t, d)
	third.SetStartTime(start.Add(3 * 24 * time.Hour))
	third.ExecuteWorkflow(workflows.Journey, next)
	if res := third.result(t); res.Outcome != journey.Ended(journey.OutcomeGoal) || len(third.sent) != 0 || len(third.conversions) != 1 || third.conversions[0].NodeID != "news" {
		t.Fatalf("pending order: %+v sent %v conversions %+v", res, third.sent, third.conversions)
	}
}

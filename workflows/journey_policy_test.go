package workflows_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/workflows"
)

// policyRun runs the Journey workflow in the time-skipping test suite with
// the real SendMessage activity: the delivery ledger on PostgreSQL, a fake
// SendGrid, and a workspace whose quiet hours are 21:00-08:00 for email.
// The other activities are faked (fakeJourney).
type policyRun struct {
	*testsuite.TestWorkflowEnvironment
	ch      *channeltest.Env
	profile string
	mu      sync.Mutex
	calls   []activities.SendMessageInput
	results []activities.SendMessageResult
}

func newPolicyRun(t *testing.T, def journey.Definition) *policyRun {
	t.Helper()
	ch := channeltest.NewEnv(t)
	ch.Template(t, "promo", "Spring sale", "<p>Sale</p>", "Sale")
	r := &policyRun{ch: ch, profile: ch.Profile(t, "ana@example.com", map[string]any{"timezone": "Europe/Paris"})}
	if _, err := ch.Ledger.Settings.PutPolicy(context.Background(), ch.WorkspaceID, channel.Policy{
		QuietHours: &channel.QuietHours{Start: "21:00", End: "08:00", Channels: []string{"email"}},
	}); err != nil {
		t.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	r.TestWorkflowEnvironment = s.NewTestWorkflowEnvironment()
	live := &activities.Activities{Pool: ch.Pool, Ledger: ch.Ledger}
	fake := newFakeJourney(def)
	fake.send = func(ctx context.Context, in activities.SendMessageInput) (activities.SendMessageResult, error) {
		out, err := live.SendMessage(ctx, in)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls, r.results = append(r.calls, in), append(r.results, out)
		return out, err
	}
	r.RegisterActivity(fake)
	return r
}

func promoJourney(onPolicy string, exits ...journey.Exit) journey.Definition {
	return journey.Definition{
		Name: "Promo", Trigger: journey.Trigger{Type: journey.TriggerAPI}, Entry: journey.Entry{ReEntry: journey.ReEntryOnce},
		Start: "promo", Exits: exits,
		Nodes: []journey.Node{
			{ID: "promo", Type: journey.NodeSend, Channel: "email", Template: "promo", OnPolicy: onPolicy, Next: "done"},
			{ID: "done", Type: journey.NodeExit},
		},
	}
}

// tomorrowAt is tomorrow at hh:00 in Paris (always ahead of the wall clock).
func tomorrowAt(hour, days int) time.Time {
	paris, _ := time.LoadLocation("Europe/Paris")
	d := time.Now().In(paris).AddDate(0, 0, 1)
	return time.Date(d.Year(), d.Month(), d.Day()+days, hour, 0, 0, 0, paris)
}

func (r *policyRun) delivery(t *testing.T) channel.Delivery {
	t.Helper()
	ds, err := r.ch.Ledger.List(context.Background(), r.ch.WorkspaceID, r.profile, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries %+v %v, want one", ds, err)
	}
	return ds[0]
}

// A marketing email due at 22:00 in the profile's time zone waits for the
// end of the quiet hours and goes at 08:00, once.
func TestJourneyDefersASendUntilQuietHoursEnd(t *testing.T) {
	t.Parallel()
	r := newPolicyRun(t, promoJourney(""))
	at22, at8 := tomorrowAt(22, 0), tomorrowAt(8, 1)
	r.SetStartTime(at22)
	r.ExecuteWorkflow(workflows.Journey, workflows.JourneyInput{WorkspaceID: r.ch.WorkspaceID, JourneyID: "j", Version: 1, ProfileID: r.profile})
	if err := r.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(r.calls) != 2 || r.results[0].Status != activities.StatusDeferred || r.results[0].Reason != channel.ReasonQuietHours ||
		!r.results[0].DeferredUntil.Equal(at8) || r.results[1].Status != "sent" {
		t.Fatalf("calls %+v\nresults %+v", r.calls, r.results)
	}
	if !r.calls[0].Now.Equal(at22) || !r.calls[1].Now.Equal(at8) {
		t.Fatalf("sent at %v then %v (workflow time), want %v then %v", r.calls[0].Now, r.calls[1].Now, at22, at8)
	}
	if d := r.delivery(t); d.Status != "sent" || d.DeferredUntil != nil || len(r.ch.SendGrid.Accepted()) != 1 {
		t.Fatalf("delivery %+v, %d emails", d, len(r.ch.SendGrid.Accepted()))
	}
}

// on_policy drop: the send is recorded skipped with the reason, and the run
// goes on.
func TestJourneyDropsASendInQuietHours(t *testing.T) {
	t.Parallel()
	r := newPolicyRun(t, promoJourney(journey.PolicyDrop))
	r.SetStartTime(tomorrowAt(22, 0))
	r.ExecuteWorkflow(workflows.Journey, workflows.JourneyInput{WorkspaceID: r.ch.WorkspaceID, JourneyID: "j", Version: 1, ProfileID: r.profile})
	var res workflows.JourneyResult
	if err := r.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Outcome != journey.Ended(journey.OutcomeCompleted) || len(r.calls) != 1 || r.results[0].Status != "skipped" || r.results[0].Reason != channel.ReasonQuietHours {
		t.Fatalf("result %+v, calls %+v", res, r.results)
	}
	if d := r.delivery(t); d.Status != "skipped" || d.Reason != channel.ReasonQuietHours || len(r.ch.SendGrid.Accepted()) != 0 {
		t.Fatalf("delivery %+v, %d emails", d, len(r.ch.SendGrid.Accepted()))
	}
}

// A run that ends (exit criterion) while its email waits for the quiet
// hours to end withdraws it: nothing is sent, and the ledger says why.
func TestJourneyExitWhileDeferredWithdrawsTheSend(t *testing.T) {
	t.Parallel()
	r := newPolicyRun(t, promoJourney("", journey.Exit{Event: "Order Completed"}))
	r.SetStartTime(tomorrowAt(22, 0))
	r.RegisterDelayedCallback(func() {
		r.SignalWorkflow(workflows.EventSignal, workflows.EventSignalPayload{EventID: 9, Name: "Order Completed"})
	}, time.Hour)
	r.ExecuteWorkflow(workflows.Journey, workflows.JourneyInput{WorkspaceID: r.ch.WorkspaceID, JourneyID: "j", Version: 1, ProfileID: r.profile})
	var res workflows.JourneyResult
	if err := r.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	d := r.delivery(t)
	if res.Outcome != journey.ExitedOn("Order Completed") || d.Status != "skipped" || !strings.HasPrefix(d.Reason, "withdrawn") || len(r.ch.SendGrid.Accepted()) != 0 {
		t.Fatalf("result %+v, delivery %+v, %d emails", res, d, len(r.ch.SendGrid.Accepted()))
	}
}

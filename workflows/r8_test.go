package workflows_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/workflows"
)

// historyMeter counts the events a run's history holds, from what the run
// does, because the time-skipping test environment keeps no history: an
// upper estimate by Temporal's rules (an activity: scheduled, started,
// completed and the workflow task it wakes; a local activity: one marker;
// a timer: started, then fired and a workflow task, or canceled; a record:
// the signal and a workflow task; a node entered: a search attribute
// upsert). It reports the count to the run as the server would, through
// GetCurrentHistoryLength.
type historyMeter struct {
	env    *testsuite.TestWorkflowEnvironment
	events int
}

func (m *historyMeter) add(n int) {
	m.events += n
	m.env.SetCurrentHistoryLength(m.events)
}

// meter wires a meter to env's listeners. The start counts the first
// workflow task, the start's search attributes and up to four version
// markers with their search attribute upserts.
func meter(env *testsuite.TestWorkflowEnvironment) *historyMeter {
	m := &historyMeter{env: env}
	m.add(13)
	env.SetOnActivityCompletedListener(func(*activity.Info, converter.EncodedValue, error) { m.add(6) })
	env.SetOnLocalActivityCompletedListener(func(info *activity.Info, _ converter.EncodedValue, _ error) {
		m.add(1)
		if info.ActivityType.Name == "RecordJourneyStep" {
			m.add(1) // the step's search attribute
		}
	})
	env.SetOnTimerScheduledListener(func(string, time.Duration) { m.add(1) })
	env.SetOnTimerFiredListener(func(string) { m.add(4) })
	env.SetOnTimerCanceledListener(func(string) { m.add(1) })
	return m
}

// R8: a resend to non-openers that lives a simulated year. The first email
// goes; the run waits 300 days for a human open while the person's mail
// client reports a machine open every 6 hours (records the run must check,
// none the awaited one); then the resend is held back by a frequency cap
// that others keep full, and deferred hour after hour for 65 days. Both
// loops grow the history: the run must hand over to a fresh run (continue
// as new) before its history passes historyBound (2,000 events, a
// twentieth of the 51,200 at which Temporal terminates a run), every run
// must end by continuing or completing, and what it carries must survive
// every hand-over: its entry time, its wait's deadline, its last send, and
// every record, each checked exactly once. Each message is sent once.
func TestR8ResendLoopOverASimulatedYearContinuesAsNew(t *testing.T) {
	t.Parallel()
	d := journey.Definition{
		Name: "Resend all year", Trigger: journey.Trigger{Type: "api"}, Entry: journey.Entry{ReEntry: "every_time"}, Start: "news",
		Nodes: []journey.Node{
			{ID: "news", Type: "send", Channel: "email", Template: "news", Next: "wait_open"},
			{ID: "wait_open", Type: "wait_for_event", Event: "Email Opened", Match: `properties.machine_open != true`, Timeout: "300d", OnEvent: "end", OnTimeout: "resend"},
			{ID: "resend", Type: "send", Channel: "email", Template: "news-resend", Next: "end"},
			{ID: "end", Type: "exit"},
		},
	}
	if err := journey.Validate(d); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	waitEnds, capLifts := start.Add(300*24*time.Hour), start.Add(365*24*time.Hour)
	// A machine open every 6 hours, all year.
	type record struct {
		at time.Time
		ev workflows.EventSignalPayload
	}
	var records []record
	for i := 0; ; i++ {
		at := start.Add(3*time.Hour + time.Duration(i)*6*time.Hour)
		if at.After(capLifts) {
			break
		}
		records = append(records, record{at, workflows.EventSignalPayload{EventID: int64(1000 + i), Name: "Email Opened"}})
	}

	var (
		delivered = map[int64]int{} // record id: times signalled
		checked   = map[int64]int{} // record id: times matched against the wait's condition
		sends     []activities.SendMessageInput
		sent      = map[string]time.Time{}
		histories []int
		resumes   []*workflows.JourneyResume
	)
	in := workflows.JourneyInput{WorkspaceID: "ws", JourneyID: "j", Version: 1, ProfileID: "p"}
	now := start
	var result workflows.JourneyResult
	for run := 1; ; run++ {
		if run > 100 {
			t.Fatalf("more than 100 runs")
		}
		var s testsuite.WorkflowTestSuite
		// Quiet: a year of timers at debug level would bury a failure.
		s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		env := s.NewTestWorkflowEnvironment()
		fake := newFakeJourney(d)
		fake.match = func(in activities.MatchEventInput) bool {
			checked[in.EventID]++
			return false // machine opens: not the awaited one
		}
		fake.send = func(_ context.Context, in activities.SendMessageInput) (activities.SendMessageResult, error) {
			sends = append(sends, in)
			if in.NodeID == "resend" && in.Now.Before(capLifts) {
				return activities.SendMessageResult{Status: activities.StatusDeferred, Reason: "frequency_cap", DeferredUntil: in.Now.Add(time.Hour)}, nil
			}
			if _, dup := sent[in.BusinessKey]; dup {
				t.Errorf("%s sent twice", in.BusinessKey)
			}
			sent[in.BusinessKey] = in.Now
			return activities.SendMessageResult{Status: "sent"}, nil
		}
		env.RegisterActivity(fake)
		m := meter(env)
		env.SetStartTime(now)
		// One record scheduled at a time, each scheduling the next (the
		// environment queues at most 1,000 callbacks).
		var next func(from time.Time)
		next = func(from time.Time) {
			for _, r := range records {
				if r.at.Before(from) || delivered[r.ev.EventID] > 0 {
					continue
				}
				env.RegisterDelayedCallback(func() {
					delivered[r.ev.EventID]++
					m.add(4)
					env.SignalWorkflow(workflows.EventSignal, r.ev)
					next(r.at)
				}, r.at.Sub(from))
				return
			}
		}
		next(now)
		env.ExecuteWorkflow(workflows.Journey, in)
		histories = append(histories, m.events)
		now = env.Now()
		var can *workflow.ContinueAsNewError
		err := env.GetWorkflowError()
		if errors.As(err, &can) {
			var next workflows.JourneyInput
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
				t.Fatal(err)
			}
			resumes = append(resumes, next.Resume)
			in = next
			continue
		}
		if err != nil {
			t.Fatalf("run %d ended with %v, not by continuing or completing", run, err)
		}
		if err := env.GetWorkflowResult(&result); err != nil {
			t.Fatal(err)
		}
		break
	}

	// The history stayed bounded, and the loops really needed hand-overs.
	for i, h := range histories {
		if h > 2100 {
			t.Errorf("run %d reached about %d history events before handing over", i+1, h)
		}
	}
	atWait, atResend := 0, 0
	for _, r := range resumes {
		switch r.Node {
		case "wait_open":
			atWait++
			if !r.WaitUntil.Equal(waitEnds) {
				t.Errorf("a continuation waits until %v, want %v", r.WaitUntil, waitEnds)
			}
		case "resend":
			atResend++
		}
		if !r.Entered.Equal(start) || r.LastSendAt != "news" || r.LastSendKey != sends[0].BusinessKey {
			t.Errorf("a continuation lost the run's state: %+v", r)
		}
	}
	if atWait < 2 || atResend < 2 {
		t.Fatalf("%d hand-overs while waiting, %d while the resend was deferred: want both loops to hand over (histories %v)", atWait, atResend, histories)
	}
	// The year ran its course: both emails sent once, the resend when the cap lifted.
	if result.Outcome != journey.Ended(journey.OutcomeCompleted) || strings.Join(result.Path, ",") != "news,wait_open,resend,end" || !now.Equal(capLifts) {
		t.Fatalf("result %+v at %v", result, now)
	}
	if len(sent) != 2 || !sent[sends[0].BusinessKey].Equal(start) || !sent[sends[len(sends)-1].BusinessKey].Equal(capLifts) {
		t.Fatalf("sent %v", sent)
	}
	resendKey := sends[1].BusinessKey
	for _, s := range sends[1:] {
		if s.BusinessKey != resendKey {
			t.Fatalf("the resend changed business key across hand-overs: %s then %s", resendKey, s.BusinessKey)
		}
	}
	// One an hour for 65 days; a hand-over made while a deferred resend
	// waited (a record arrived) asks the ledger again at once.
	if deferrals := len(sends) - 2; deferrals < 65*24 || deferrals > 65*24+atResend {
		t.Errorf("%d deferred attempts, want one an hour for 65 days (%d), plus at most one per hand-over", deferrals, 65*24)
	}
	// Every record reached a run once, and every one that came while the
	// run waited for the open was checked once, none lost at a hand-over.
	for _, r := range records {
		if delivered[r.ev.EventID] != 1 {
			t.Fatalf("record %d at %v signalled %d times", r.ev.EventID, r.at, delivered[r.ev.EventID])
		}
		if want := map[bool]int{true: 1, false: 0}[r.at.Before(waitEnds)]; checked[r.ev.EventID] != want {
			t.Fatalf("record %d at %v checked %d times, want %d", r.ev.EventID, r.at, checked[r.ev.EventID], want)
		}
	}
	t.Logf("a simulated year in %d runs; history events per run (estimated): %v", len(histories), histories)
}

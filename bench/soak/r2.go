package soak

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
)

// sendActivityTimeout is the StartToCloseTimeout of the journey's send
// activity (workflows/journey.go). R2's provider answers later than that.
const sendActivityTimeout = time.Minute

// runR2 answers each run's first email after the send activity's timeout
// (half the runs) or takes it and drops the connection (the other half):
// the attempt cannot know whether the message went, and Temporal starts
// another. Must hold: no message twice (the ledger marks the delivery
// unknown instead of sending again), the provider is not called again for
// it, and every run completes with its second email sent.
func runR2(ctx context.Context, rig *Rig, cfg Config) Row {
	sz := cfg.Sizes
	row := newRow("provider slower than the send activity's timeout, or dropping the connection")
	row.Runs = sz.R2Runs
	t, err := rig.newWelcomeTenant(ctx, "r2", "3s")
	if err != nil {
		row.fail("set up: %v", err)
		return row
	}
	defer t.Close()
	users := make([]string, sz.R2Runs)
	slow := map[string]bool{}
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i+1)
		slow[users[i]] = i%2 == 0
	}
	delay := sendActivityTimeout + 10*time.Second
	seen := map[string]bool{} // the planner runs under the fake's lock
	t.Fake.SetPlan(func(r Request) Decision {
		u, node := t.userOf(r)
		if node != nodeWelcome || seen[r.DeliveryID] {
			return Decision{Fault: Accept}
		}
		seen[r.DeliveryID] = true
		if slow[u] {
			return Decision{Fault: Accept, Delay: delay}
		}
		return Decision{Fault: AcceptThenDrop}
	})
	var wg sync.WaitGroup
	giveUp := time.Now().Add(2 * time.Minute)
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.enter(ctx, u, giveUp)
		}()
	}
	wg.Wait()
	if err := t.waitRuns(ctx, len(users), 4*time.Minute); err != nil {
		row.fail("%v", err)
	}
	checkRuns(ctx, t, &row, users, nil)

	// The provider was called once per welcome email, although the
	// workflow ran the send activity again.
	calls := map[string]int{}
	for _, r := range t.Fake.Log() {
		calls[r.DeliveryID]++
		if r.Answer == AcceptThenDrop {
			row.Refused++
		}
	}
	ds, err := t.deliveries(ctx)
	if err != nil {
		row.fail("%v", err)
		return row
	}
	unknown := 0
	for _, d := range ds {
		if d.node != nodeWelcome {
			continue
		}
		if calls[d.id] != 1 {
			row.fail("%s's welcome: the provider was called %d times", d.user, calls[d.id])
		}
		if d.status == "unknown" {
			unknown++
		}
	}
	attempts, err := t.sendAttempts(ctx)
	if err != nil {
		row.fail("read histories: %v", err)
	}
	again := 0
	for _, a := range attempts {
		if a >= 2 {
			again++
		}
	}
	if again != len(users) {
		row.fail("Temporal ran the first send again in %d runs of %d: the scenario did not provoke what it tests", again, len(users))
	}
	row.figure("provider answers after %s (the activity times out after %s; the SendGrid client gives up at 30 s) for %d runs, drops the connection for %d",
		delay, sendActivityTimeout, (len(users)+1)/2, len(users)/2)
	row.figure("Temporal started the first send again in %d of %d runs; the provider got each first email once; %d left unknown, as documented", again, len(users), unknown)
	return row
}

// sendAttempts reads, from each run's history, the attempt on which its
// first SendMessage activity ended.
func (t *tenant) sendAttempts(ctx context.Context) (map[string]int32, error) {
	rows, err := t.rig.Pool.Query(ctx, `SELECT workflow_id, run_id FROM journey_runs WHERE workspace_id = $1 AND journey_id = $2`, t.ID, t.JourneyID)
	if err != nil {
		return nil, err
	}
	var runs [][2]string
	for rows.Next() {
		var wf, run string
		if err := rows.Scan(&wf, &run); err != nil {
			return nil, err
		}
		runs = append(runs, [2]string{wf, run})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := map[string]int32{}
	for _, r := range runs {
		it := t.rig.TC.GetWorkflowHistory(ctx, r[0], r[1], false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		first := int64(0)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return out, err
			}
			switch ev.EventType {
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				if first == 0 && strings.HasSuffix(ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName(), "SendMessage") {
					first = ev.EventId
				}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
				if a := ev.GetActivityTaskStartedEventAttributes(); first != 0 && a.GetScheduledEventId() == first {
					out[r[0]] = a.GetAttempt()
				}
			}
		}
	}
	return out, nil
}

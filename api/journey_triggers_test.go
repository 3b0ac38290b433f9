package api_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/parcours/parcours/api"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/trigger"
)

// flakyTemporal is a Temporal client whose starts fail while down is set,
// as when the Temporal frontend is unreachable.
type flakyTemporal struct {
	client.Client
	down atomic.Bool
}

func (f *flakyTemporal) SignalWithStartWorkflow(ctx context.Context, workflowID, signalName string, signalArg any,
	options client.StartWorkflowOptions, workflow any, workflowArgs ...any) (client.WorkflowRun, error) {
	if f.down.Load() {
		return nil, errors.New("connection refused: Temporal is down")
	}
	return f.Client.SignalWithStartWorkflow(ctx, workflowID, signalName, signalArg, options, workflow, workflowArgs...)
}

// pendingStart is a queued journey start, as the database holds it.
type pendingStart struct {
	eventID  int64
	kind     string
	queuedAt time.Time
}

func (e *env) pendingStarts(t *testing.T) []pendingStart {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT event_id, kind, created_at FROM journey_triggers ORDER BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []pendingStart
	for rows.Next() {
		var p pendingStart
		if err := rows.Scan(&p.eventID, &p.kind, &p.queuedAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// dispatch runs the worker's journey start dispatcher once, after the
// grace period it leaves the API (made to pass at once).
func (e *env) dispatch(t *testing.T) int {
	t.Helper()
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `UPDATE journey_triggers SET next_attempt_at = now()`); err != nil {
		t.Fatal(err)
	}
	d := &trigger.Dispatcher{Starter: &trigger.Starter{Temporal: e.tc, TaskQueue: e.taskQueue,
		Journeys: journey.NewStore(e.pool, 0), Segments: e.segments}}
	n, err := d.DispatchOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// requeue puts starts back in the queue, as a dispatcher that died after
// starting the runs, before removing their rows, leaves them.
func (e *env) requeue(t *testing.T, starts []pendingStart) {
	t.Helper()
	for _, p := range starts {
		if _, err := e.pool.Exec(context.Background(), `INSERT INTO journey_triggers (workspace_id, event_id, kind, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, now())`,
			e.ws.ID, p.eventID, p.kind, p.queuedAt); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) publish(t *testing.T, definition string) string {
	t.Helper()
	status, _, j := e.call(t, "POST", "/v1/journeys", e.admin, definition)
	if status != 201 {
		t.Fatalf("create journey: %d %v", status, j)
	}
	id := j["id"].(string)
	if status, _, body := e.call(t, "POST", "/v1/journeys/"+id+"/publish", e.admin, nil); status != 200 {
		t.Fatalf("publish: %d %v", status, body)
	}
	return id
}

// A record stored while Temporal is unreachable still starts its journeys,
// once Temporal is back, even though the client's retry of the same
// messageId is (rightly) a duplicate; and a start made again never makes a
// second run, even once the first has ended.
func TestJourneyStartIsNotLostWhenTemporalIsDown(t *testing.T) {
	t.Parallel()
	flaky := &flakyTemporal{}
	e := newEnvWith(t, func(d *api.Deps) { flaky.Client = d.Temporal; d.Temporal = flaky })
	const nodes = `"nodes": [{"id": "tag", "type": "update_profile", "traits": {"welcomed": true}, "next": "done"}, {"id": "done", "type": "exit"}]`
	oneAtATime := e.publish(t, `{"name": "Welcome", "trigger": {"type": "event", "event": "Signed Up"},
	  "entry": {"re_entry": "one_at_a_time"}, "start": "tag", `+nodes+`}`)
	everyTime := e.publish(t, `{"name": "Each sign-up", "trigger": {"type": "event", "event": "Signed Up"},
	  "entry": {"re_entry": "every_time"}, "start": "tag", `+nodes+`}`)
	ended := func(id string) bool { rs := e.runs(t, id); return len(rs) == 1 && rs[0]["ended_at"] != nil }

	flaky.down.Store(true)
	signup := map[string]any{"userId": "ana", "event": "Signed Up", "messageId": "signup-ana"}
	if out := e.mustSend(t, e.write, "/v1/track", signup); out["accepted"] != 1.0 {
		t.Fatalf("track while Temporal is down: %v, want the record accepted", out)
	}
	flaky.down.Store(false)
	if out := e.mustSend(t, e.write, "/v1/track", signup); out["duplicates"] != 1.0 {
		t.Fatalf("retry: %v, want a duplicate", out)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(e.runs(t, oneAtATime)) + len(e.runs(t, everyTime)); n != 0 {
		t.Fatalf("%d runs before the dispatcher ran", n)
	}
	queued := e.pendingStarts(t)
	if len(queued) != 1 || queued[0].kind != "event" {
		t.Fatalf("queued starts %+v, want the sign-up", queued)
	}

	if n := e.dispatch(t); n != 1 {
		t.Fatalf("dispatched %d starts, want 1", n)
	}
	e.waitFor(t, "both runs to start and end", func() bool { return ended(oneAtATime) && ended(everyTime) })
	if left := e.pendingStarts(t); len(left) != 0 {
		t.Fatalf("starts still queued after they were made: %+v", left)
	}

	// The dispatcher died after starting the runs, before removing the row:
	// the start is made again, and makes no second run.
	e.requeue(t, queued)
	e.dispatch(t)
	time.Sleep(500 * time.Millisecond)
	for _, id := range []string{oneAtATime, everyTime} {
		if rs := e.runs(t, id); len(rs) != 1 {
			t.Fatalf("journey %s: %d runs after the start was retried, want 1", id, len(rs))
		}
	}
	if left := e.pendingStarts(t); len(left) != 0 {
		t.Fatalf("starts still queued after the retry: %+v", left)
	}

	// With Temporal up, the API starts the runs itself and leaves nothing queued.
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "bob", "event": "Signed Up"})
	e.waitFor(t, "bob's runs", func() bool { return len(e.runs(t, oneAtATime)) == 2 && len(e.runs(t, everyTime)) == 2 })
	if left := e.pendingStarts(t); len(left) != 0 {
		t.Fatalf("starts queued though the API made them: %+v", left)
	}
}

// A segment entry that triggers a journey while Temporal is unreachable is
// queued and started later, on a workflow id keyed by the move's timeline
// record: a retried start makes no second run.
func TestSegmentTriggeredStartIsNotLost(t *testing.T) {
	t.Parallel()
	flaky := &flakyTemporal{}
	e := newEnvWith(t, func(d *api.Deps) { flaky.Client = d.Temporal; d.Temporal = flaky })
	sg := e.createSegment(t, "pro", `profile.traits.plan == "pro"`)
	// The segment's first computation runs in the background; ana must
	// enter it in real time, on the ingest path, not in that sweep.
	e.waitFor(t, "the segment's first computation", func() bool {
		_, _, got := e.call(t, "GET", "/v1/segments/"+sg["id"].(string), e.admin, nil)
		return got["last_computed_at"] != nil
	})
	id := e.publish(t, `{"name": "Pro onboarding", "trigger": {"type": "segment_entered", "segment": "pro"},
	  "entry": {"re_entry": "every_time"}, "start": "tag",
	  "nodes": [{"id": "tag", "type": "update_profile", "traits": {"onboarded": true}, "next": "done"}, {"id": "done", "type": "exit"}]}`)

	flaky.down.Store(true)
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "traits": map[string]any{"plan": "pro"}})
	flaky.down.Store(false)
	queued := e.pendingStarts(t)
	if len(queued) != 1 || queued[0].kind != "segment" {
		t.Fatalf("queued starts %+v, want ana's entry into pro", queued)
	}
	e.dispatch(t)
	e.waitFor(t, "the onboarding run to end", func() bool { rs := e.runs(t, id); return len(rs) == 1 && rs[0]["ended_at"] != nil })
	e.requeue(t, queued)
	e.dispatch(t)
	time.Sleep(500 * time.Millisecond)
	if rs := e.runs(t, id); len(rs) != 1 {
		t.Fatalf("%d runs after the start was retried, want 1", len(rs))
	}
}

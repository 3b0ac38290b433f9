package api_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/parcours/parcours/worker"
	"github.com/parcours/parcours/workflows"
)

// TestRecordWorkflowHistories runs Parcours' workflows on the real server,
// records their histories and replays them against today's code. With
// PARCOURS_RECORD_HISTORIES=1 it also writes them to workflows/testdata, for
// the replay test that guards determinism across changes. After a change of
// a workflow's commands behind a new version (workflows/journey.go,
// journeyChanges), record a run that reaches it under a new name, next to
// the histories already there: they keep guarding the runs started before.
func TestRecordWorkflowHistories(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if os.Getenv("PARCOURS_RECORD_HISTORIES") == "1" {
		dir = "../workflows/testdata"
	}
	// One person, u0 on the pro plan with an email address, a newsletter
	// template and a fake SendGrid: the journey with a send can send.
	e, _ := broadcastEnv(t, 1)
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Order Completed", "properties": map[string]any{"total": 10}})
	e.createSegment(t, "buyers", `count("Order Completed", "30d") >= 1`)
	ctx := context.Background()
	runs := map[string]client.WorkflowRun{}
	var err error
	runs["ping"], err = e.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: e.taskQueue}, workflows.PingWorkflow, workflows.PingInput{WorkspaceID: e.ws.ID})
	if err != nil {
		t.Fatal(err)
	}
	runs["segment_recompute"], err = e.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: e.taskQueue}, workflows.SegmentRecomputeWorkflow,
		workflows.SegmentRecomputeInput{WorkspaceID: e.ws.ID, TimeOnly: true, AsOf: time.Now().Add(40 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// A journey run, driven by real events.
	_, _, j := e.call(t, "POST", "/v1/journeys", e.admin, cartJourney)
	e.call(t, "POST", "/v1/journeys/"+j["id"].(string)+"/publish", e.admin, nil)
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Cart Updated", "properties": map[string]any{"cart_id": "c1"}})
	e.waitFor(t, "the journey run", func() bool { rs := e.runs(t, j["id"].(string)); return len(rs) == 1 && rs[0]["node"] == "wait_order" })
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Order Completed", "properties": map[string]any{"cart_id": "c1"}})
	jr := e.runs(t, j["id"].(string))[0]
	runs["journey_cart"] = e.tc.GetWorkflow(ctx, jr["workflow_id"].(string), jr["run_id"].(string))
	// A journey through a branch, a split and a send, then a wait the goal
	// ends: the conversion is recorded.
	_, _, g := e.call(t, "POST", "/v1/journeys", e.admin, goalJourney)
	e.call(t, "POST", "/v1/journeys/"+g["id"].(string)+"/publish", e.admin, nil)
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "u0", "event": "Signed Up"})
	e.waitFor(t, "the journey with a send", func() bool { rs := e.runs(t, g["id"].(string)); return len(rs) == 1 && rs[0]["node"] == "wait_order" })
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "u0", "event": "Order Completed", "properties": map[string]any{"total": 30}})
	gr := e.runs(t, g["id"].(string))[0]
	runs["journey_send_goal"] = e.tc.GetWorkflow(ctx, gr["workflow_id"].(string), gr["run_id"].(string))
	for name, run := range runs {
		if err := run.Get(ctx, nil); err != nil {
			t.Fatal(err)
		}
		it := e.tc.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, 0)
		h := &historypb.History{}
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			h.Events = append(h.Events, ev)
		}
		b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name+".json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		r := sdkworker.NewWorkflowReplayer()
		worker.RegisterWorkflows(r)
		if err := r.ReplayWorkflowHistoryFromJSONFile(nil, path); err != nil {
			t.Errorf("fresh %s history does not replay: %v", name, err)
		}
	}
	if gr := e.runs(t, g["id"].(string))[0]; gr["end_reason"] != "goal" || strings.Join(toStrings(gr["path"]), ",") != "is_pro,ab,mail,wait_order" {
		t.Fatalf("the journey with a send: %v", gr)
	}
}

// goalJourney sends the newsletter to people on the pro plan (through a
// split), then waits for an order, which reaches the goal.
const goalJourney = `{
  "name": "Welcome with a goal",
  "trigger": {"type": "event", "event": "Signed Up"},
  "entry": {"re_entry": "every_time"},
  "start": "is_pro",
  "nodes": [
    {"id": "is_pro", "type": "branch", "branches": [{"condition": "profile.traits.plan == \"pro\"", "next": "ab"}], "else": "done"},
    {"id": "ab", "type": "split", "variants": [{"name": "a", "weight": 50, "next": "mail"}, {"name": "b", "weight": 50, "next": "mail"}]},
    {"id": "mail", "type": "send", "channel": "email", "template": "newsletter", "next": "wait_order"},
    {"id": "wait_order", "type": "wait_for_event", "event": "Order Completed", "timeout": "1d", "on_event": "done", "on_timeout": "done"},
    {"id": "done", "type": "exit"}
  ],
  "goal": {"event": "Order Completed", "within": "7d"}
}`

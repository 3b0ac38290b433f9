package api_test

import (
	"context"
	"os"
	"path/filepath"
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
// the replay test that guards determinism across changes (re-record after a
// deliberate, versioned change of workflow logic).
func TestRecordWorkflowHistories(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if os.Getenv("PARCOURS_RECORD_HISTORIES") == "1" {
		dir = "../workflows/testdata"
	}
	e := newEnv(t)
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
	// Named for the workflow's latest change (lean runs): journey_cart.json,
	// recorded before it, stays to guard the runs started before.
	runs["journey_cart_lean"] = e.tc.GetWorkflow(ctx, jr["workflow_id"].(string), jr["run_id"].(string))
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
}

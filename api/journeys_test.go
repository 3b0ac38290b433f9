package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
)

const cartJourney = `{
  "name": "Cart follow-up",
  "trigger": {"type": "event", "event": "Cart Updated", "correlation_key": "properties.cart_id"},
  "entry": {"re_entry": "every_time"},
  "start": "wait_order",
  "nodes": [
    {"id": "wait_order", "type": "wait_for_event", "event": "Order Completed",
     "match": "properties.cart_id == trigger.properties.cart_id", "timeout": "1h",
     "on_event": "thank", "on_timeout": "flag"},
    {"id": "thank", "type": "update_profile", "traits": {"rescued": false}, "next": "done"},
    {"id": "flag", "type": "update_profile", "traits": {"abandoned_cart": true}, "next": "done"},
    {"id": "done", "type": "exit"}
  ]
}`

func (e *env) runs(t *testing.T, journeyID string) []map[string]any {
	t.Helper()
	status, _, body := e.call(t, "GET", "/v1/journeys/"+journeyID+"/runs", e.admin, nil)
	if status != 200 {
		t.Fatalf("runs: %d %v", status, body)
	}
	var out []map[string]any
	for _, r := range body["data"].([]any) {
		out = append(out, r.(map[string]any)["run"].(map[string]any))
	}
	return out
}

func (e *env) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestJourneyRunsAsATemporalWorkflowDrivenByEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Validation names the node and field.
	status, _, body := e.call(t, "POST", "/v1/journeys", e.admin, strings.Replace(cartJourney, `"on_timeout": "flag"`, `"on_timeout": "nowhere"`, 1))
	if status != 422 || body["errors"].([]any)[0].(map[string]any)["field"] != "nodes[wait_order].on_timeout" {
		t.Fatalf("invalid journey: %d %v", status, body)
	}
	status, _, j := e.call(t, "POST", "/v1/journeys", e.admin, cartJourney)
	if status != 201 || j["status"] != "draft" {
		t.Fatalf("create: %d %v", status, j)
	}
	id := j["id"].(string)
	// A draft does not run.
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Cart Updated", "properties": map[string]any{"cart_id": "c0"}})
	if status, _, j = e.call(t, "POST", "/v1/journeys/"+id+"/publish", e.admin, nil); status != 200 || j["published_version"] != 1.0 || j["status"] != "live" {
		t.Fatalf("publish: %d %v", status, j)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(e.runs(t, id)); n != 0 {
		t.Fatalf("%d runs from a record sent before publishing", n)
	}

	// A cart: one run, waiting for that cart's order; the same cart again does not start a second.
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Cart Updated", "properties": map[string]any{"cart_id": "c1"}})
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Cart Updated", "properties": map[string]any{"cart_id": "c1", "total": 20}})
	e.waitFor(t, "the run to wait for the order", func() bool {
		rs := e.runs(t, id)
		return len(rs) == 1 && rs[0]["node"] == "wait_order"
	})
	wid := e.runs(t, id)[0]["workflow_id"].(string)
	status, _, st := e.call(t, "GET", "/v1/journeys/"+id+"/runs?workflow_id="+wid, e.admin, nil)
	if status != 200 || st["Node"] != "wait_order" || st["WaitingFor"] != "Order Completed" {
		t.Fatalf("live state: %d %v", status, st)
	}
	// The run is findable in the Temporal UI by journey and by profile.
	profileID := e.profileBy(t, "userId=ana")["id"].(string)
	for _, q := range []string{"ParcoursJourney = '" + id + "'", "ParcoursProfile = '" + profileID + "'"} {
		e.waitFor(t, "visibility of "+q, func() bool {
			resp, err := e.tc.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: q})
			return err == nil && len(resp.Executions) == 1 && resp.Executions[0].Execution.WorkflowId == wid
		})
	}
	// An order of another cart does not end it; the order of this cart does.
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Order Completed", "properties": map[string]any{"cart_id": "c9", "total": 5}})
	time.Sleep(500 * time.Millisecond)
	if rs := e.runs(t, id); rs[0]["ended_at"] != nil {
		t.Fatalf("an order of another cart ended the run: %v", rs[0])
	}
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Order Completed", "properties": map[string]any{"cart_id": "c1", "total": 20}})
	e.waitFor(t, "the run to end", func() bool { return e.runs(t, id)[0]["ended_at"] != nil })
	r := e.runs(t, id)[0]
	if r["end_reason"] != "completed" || strings.Join(toStrings(r["path"]), ",") != "wait_order,thank,done" {
		t.Fatalf("run %v", r)
	}
	if p := e.profileBy(t, "userId=ana"); p["traits"].(map[string]any)["rescued"] != false {
		t.Fatalf("update_profile did not set the trait: %v", p["traits"])
	}
	// Erasing a person stops their running runs.
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "zoe", "event": "Cart Updated", "properties": map[string]any{"cart_id": "z1"}})
	e.waitFor(t, "zoe's run", func() bool { return len(e.runs(t, id)) == 2 })
	zoe := e.profileBy(t, "userId=zoe")["id"].(string)
	if status, _, out := e.call(t, "DELETE", "/v1/profiles/"+zoe, e.admin, nil); status != 200 || out["journey_runs"] != 1.0 {
		t.Fatalf("erase: %d %v", status, out)
	}
	if r := e.runs(t, id)[0]; r["end_reason"] != "erased" {
		t.Fatalf("erased person's run %v", r)
	}
	// The funnel, and removing the runs waiting at a node.
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "yan", "event": "Cart Updated", "properties": map[string]any{"cart_id": "y1"}})
	e.waitFor(t, "yan's run", func() bool { rs := e.runs(t, id); return len(rs) == 3 && rs[0]["node"] == "wait_order" })
	status, _, stats := e.call(t, "GET", "/v1/journeys/"+id+"/stats", e.admin, nil)
	if status != 200 || stats["entered"] != 3.0 || stats["open_at_node"].(map[string]any)["wait_order"] != 1.0 || stats["ended_by_reason"].(map[string]any)["completed"] != 1.0 {
		t.Fatalf("stats: %d %v", status, stats)
	}
	if status, _, out := e.call(t, "DELETE", "/v1/journeys/"+id+"/runs?node=wait_order", e.admin, nil); status != 200 || out["removed"] != 1.0 {
		t.Fatalf("remove at node: %d %v", status, out)
	}
	if r := e.runs(t, id)[0]; r["end_reason"] != "removed" {
		t.Fatalf("removed run %v", r)
	}
	// Paused: no new entries.
	if status, _, _ := e.call(t, "POST", "/v1/journeys/"+id+"/pause", e.admin, nil); status != 200 {
		t.Fatal(status)
	}
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Cart Updated", "properties": map[string]any{"cart_id": "c2"}})
	time.Sleep(300 * time.Millisecond)
	if n := len(e.runs(t, id)); n != 3 {
		t.Fatalf("a paused journey started a run (%d runs)", n)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestScenariosAreOneCallAway(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	status, _, list := e.call(t, "GET", "/v1/journey-scenarios", e.admin, nil)
	if status != 200 || len(list["data"].([]any)) != 4 {
		t.Fatalf("scenarios: %d %v", status, list)
	}
	status, _, out := e.call(t, "POST", "/v1/journeys/scenarios/thank_you", e.admin, nil)
	if status != 201 || out["journey"].(map[string]any)["status"] != "draft" {
		t.Fatalf("create from scenario: %d %v", status, out)
	}
	missing := toStrings(out["missing"])
	if strings.Join(missing, ",") != "template thank-you,segment customers" {
		t.Fatalf("missing %v", missing)
	}
	// Adjustments name the node they cannot apply to, or the duration they cannot read.
	status, _, body := e.call(t, "POST", "/v1/journeys/scenarios/abandoned_cart", e.admin, map[string]any{"durations": map[string]string{"rescue_1": "2h"}})
	if status != 422 || body["errors"].([]any)[0].(map[string]any)["field"] != "durations.rescue_1" {
		t.Fatalf("a send node's duration: %d %v", status, body)
	}
	status, _, body = e.call(t, "POST", "/v1/journeys/scenarios/abandoned_cart", e.admin, map[string]any{"durations": map[string]string{"wait_order": "soon"}})
	if status != 422 || body["errors"].([]any)[0].(map[string]any)["field"] != "nodes[wait_order].timeout" {
		t.Fatalf("an unreadable duration: %d %v", status, body)
	}
	status, _, out = e.call(t, "POST", "/v1/journeys/scenarios/abandoned_cart", e.admin, map[string]any{"name": "Cart rescue (2 h)", "durations": map[string]string{"wait_order": "2h"}})
	if j := out["journey"].(map[string]any); status != 201 || j["name"] != "Cart rescue (2 h)" || j["draft"].(map[string]any)["nodes"].([]any)[0].(map[string]any)["timeout"] != "2h" {
		t.Fatalf("adjusted scenario: %d %v", status, out)
	}
	if status, _, _ := e.call(t, "POST", "/v1/journeys/scenarios/nope", e.admin, nil); status != 404 {
		t.Fatalf("unknown scenario: %d", status)
	}
}

// When two profiles merge, their runs of the same journey and cart collapse
// to the survivor's; a run for another cart follows the survivor.
func TestMergedProfilesRunsAreReconciled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, _, j := e.call(t, "POST", "/v1/journeys", e.admin, cartJourney)
	id := j["id"].(string)
	e.call(t, "POST", "/v1/journeys/"+id+"/publish", e.admin, nil)
	// The same person on two devices, before anyone knows.
	e.mustSend(t, e.write, "/v1/track", map[string]any{"anonymousId": "phone", "event": "Cart Updated", "properties": map[string]any{"cart_id": "c1"}})
	e.mustSend(t, e.write, "/v1/track", map[string]any{"anonymousId": "laptop", "event": "Cart Updated", "properties": map[string]any{"cart_id": "c1"}})
	e.mustSend(t, e.write, "/v1/track", map[string]any{"anonymousId": "laptop", "event": "Cart Updated", "properties": map[string]any{"cart_id": "c2"}})
	e.waitFor(t, "three runs", func() bool { return len(e.runs(t, id)) == 3 })
	phone := e.profileBy(t, "anonymousId=phone")["id"].(string)
	// The alias merges laptop into phone (the older profile).
	e.mustSend(t, e.write, "/v1/alias", map[string]any{"userId": "u1", "previousId": "laptop"})
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"anonymousId": "phone", "userId": "u1"})
	if e.profileBy(t, "anonymousId=laptop")["id"] != phone {
		t.Fatal("profiles not merged")
	}
	e.waitFor(t, "reconciliation", func() bool {
		open, merged := 0, 0
		for _, r := range e.runs(t, id) {
			switch {
			case r["ended_at"] == nil && r["profile_id"] == phone:
				open++
			case r["end_reason"] == "merged":
				merged++
			}
		}
		return open == 2 && merged == 1
	})
}

package api_test

import (
	"context"
	"encoding/csv"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/workflows"
)

func (e *env) createSegment(t *testing.T, slug, rule string) map[string]any {
	t.Helper()
	status, _, sg := e.call(t, "POST", "/v1/segments", e.admin, map[string]any{"slug": slug, "name": slug, "rule": rule})
	if status != 201 {
		t.Fatalf("create segment %s: %d %v", slug, status, sg)
	}
	return sg
}

func (e *env) members(t *testing.T, segID string) []string {
	t.Helper()
	status, _, body := e.call(t, "GET", "/v1/segments/"+segID+"/members", e.admin, nil)
	if status != 200 {
		t.Fatalf("members: %d %v", status, body)
	}
	var out []string
	for _, m := range body["data"].([]any) {
		out = append(out, m.(map[string]any)["profile_id"].(string))
	}
	return out
}

func (e *env) segmentEvents(t *testing.T, segID, kind string) int {
	t.Helper()
	return e.count(t, `SELECT count(*) FROM segment_events WHERE workspace_id = $1 AND segment_id = $2 AND kind = $3`, e.ws.ID, segID, kind)
}

// recompute runs the sweep workflow through the worker, at a chosen time.
func (e *env) recompute(t *testing.T, asOf time.Time) activities.SegmentTotals {
	t.Helper()
	run, err := e.tc.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: e.taskQueue},
		workflows.SegmentRecomputeWorkflow, workflows.SegmentRecomputeInput{WorkspaceID: e.ws.ID, TimeOnly: true, AsOf: asOf})
	if err != nil {
		t.Fatal(err)
	}
	var out activities.SegmentTotals
	if err := run.Get(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSegmentsStayCurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Rules that do not compile are refused with their position.
	status, _, body := e.call(t, "POST", "/v1/segments", e.admin, map[string]any{"slug": "bad", "name": "Bad", "rule": "count(\"Order Completed\", \"30 days\") > 1"})
	if status != 422 || body["errors"].([]any)[0].(map[string]any)["column"] != 26.0 {
		t.Fatalf("bad rule: %d %v", status, body)
	}

	buyers := e.createSegment(t, "buyers", `count("Order Completed", "30d") >= 1`)
	carts := e.createSegment(t, "cart-abandoners", `performed("Cart Updated", "2h") && !performed("Order Completed", "2h")`)
	big := e.createSegment(t, "big-spenders", `in_segment("buyers") && profile.total_revenue > 100`)

	// Preview answers before anything is saved.
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Cart Updated", "properties": map[string]any{"cart_id": "c1"}})
	status, _, prev := e.call(t, "POST", "/v1/segments/preview", e.admin, map[string]any{"rule": `performed("Cart Updated", "2h")`})
	if status != 200 || prev["count"] != 1.0 || len(prev["sample"].([]any)) != 1 {
		t.Fatalf("preview: %d %v", status, prev)
	}
	ana := e.profileBy(t, "userId=ana")["id"].(string)
	if m := e.members(t, carts["id"].(string)); len(m) != 1 || m[0] != ana {
		t.Fatalf("cart abandoners %v, want ana in real time", m)
	}
	// An order: ana leaves the abandoners, enters the buyers and, over 100, the big spenders.
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Order Completed", "properties": map[string]any{"total": 150}})
	if len(e.members(t, carts["id"].(string))) != 0 || len(e.members(t, buyers["id"].(string))) != 1 || len(e.members(t, big["id"].(string))) != 1 {
		t.Fatal("an order did not move ana between segments")
	}
	// The timeline shows the transitions as internal events.
	status, _, tl := e.call(t, "GET", "/v1/profiles/"+ana+"/events", e.admin, nil)
	var seen []string
	for _, ev := range tl["data"].([]any) {
		if ev := ev.(map[string]any); ev["source"] == "parcours" {
			seen = append(seen, ev["name"].(string)+" "+ev["properties"].(map[string]any)["segment"].(string))
		}
	}
	if status != 200 || !strings.Contains(strings.Join(seen, ","), "Segment Entered buyers") || !strings.Contains(strings.Join(seen, ","), "Segment Exited cart-abandoners") {
		t.Fatalf("timeline segment events %v", seen)
	}
	// The 360 profile lists them.
	if segs := e.profileBy(t, "userId=ana")["segments"].([]any); len(segs) != 2 || segs[0].(map[string]any)["slug"] != "big-spenders" || segs[1].(map[string]any)["slug"] != "buyers" {
		t.Fatalf("profile segments %v", segs)
	}
	// A page view cannot change an order-based segment: it is not evaluated.
	before := e.count(t, `SELECT count(*) FROM segment_events WHERE workspace_id = $1`, e.ws.ID)
	res, err := e.segments.Refresh(context.Background(), e.ws.ID, changesOf(ana, "Home"), time.Now().Add(40*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if res.Evaluated != 0 {
		t.Fatalf("a page view evaluated %d (profile, segment) pairs, want 0", res.Evaluated)
	}
	if e.count(t, `SELECT count(*) FROM segment_events WHERE workspace_id = $1`, e.ws.ID) != before {
		t.Fatal("a page view changed memberships")
	}
	// Time alone: 31 days later the scheduled sweep takes ana out of the
	// buyers, and so out of the big spenders.
	out := e.recompute(t, time.Now().Add(31*24*time.Hour))
	if out.Exited != 2 || len(e.members(t, buyers["id"].(string))) != 0 || len(e.members(t, big["id"].(string))) != 0 {
		t.Fatalf("sweep %+v, want ana out of buyers and big spenders", out)
	}
	// Running the sweep again records nothing twice.
	if again := e.recompute(t, time.Now().Add(31*24*time.Hour)); again.Entered+again.Exited != 0 {
		t.Fatalf("second sweep %+v", again)
	}
	for seg, want := range map[string][2]int{buyers["id"].(string): {1, 1}, carts["id"].(string): {1, 1}, big["id"].(string): {1, 1}} {
		if in, out := e.segmentEvents(t, seg, "entered"), e.segmentEvents(t, seg, "exited"); in != want[0] || out != want[1] {
			t.Errorf("segment %s: %d entered / %d exited events, want %v", seg, in, out, want)
		}
	}
	// Size history and CSV export.
	status, _, sizes := e.call(t, "GET", "/v1/segments/"+buyers["id"].(string)+"/sizes", e.admin, nil)
	if status != 200 || len(sizes["data"].([]any)) == 0 {
		t.Fatalf("sizes: %d %v", status, sizes)
	}
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "bob", "traits": map[string]any{"email": "bob@example.com"}})
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "bob", "event": "Order Completed", "properties": map[string]any{"total": 20}})
	req, _ := http.NewRequest("GET", e.url+"/v1/segments/"+buyers["id"].(string)+"/export", nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	recs, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
	if err != nil || len(recs) != 2 || recs[1][2] != "bob@example.com" || recs[1][3] != "bob" {
		t.Fatalf("export: %v %q", err, raw)
	}
	// A segment others depend on cannot be deleted.
	if status, _, _ := e.call(t, "DELETE", "/v1/segments/"+buyers["id"].(string), e.admin, nil); status != 422 {
		t.Fatalf("deleting a segment in use: %d, want 422", status)
	}
}

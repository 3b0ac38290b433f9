package api_test

import (
	"strings"
	"testing"
)

func TestSimulateAJourneyThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, _, j := e.call(t, "POST", "/v1/journeys", e.admin, cartJourney)
	id := j["id"].(string)

	// The draft, for a profile made of traits, with no order: the cart is flagged after the hour.
	status, _, res := e.call(t, "POST", "/v1/journeys/"+id+"/simulate", e.admin, map[string]any{
		"start":   "2026-12-01T09:00:00Z",
		"traits":  map[string]any{"email": "zoe@example.com"},
		"trigger": map[string]any{"event": "Cart Updated", "properties": map[string]any{"cart_id": "c9"}},
	})
	if status != 200 || res["outcome"] != "completed" || res["traits_set"].(map[string]any)["abandoned_cart"] != true {
		t.Fatalf("simulate: %d %v", status, res)
	}
	waits := res["waits"].([]any)
	if w := waits[0].(map[string]any); w["resolution"] != "timeout" || w["to"] != "2026-12-01T10:00:00Z" {
		t.Fatalf("wait %v", w)
	}
	// The order of that cart 20 minutes in: the other way.
	_, _, res = e.call(t, "POST", "/v1/journeys/"+id+"/simulate", e.admin, map[string]any{
		"start":   "2026-12-01T09:00:00Z",
		"trigger": map[string]any{"event": "Cart Updated", "properties": map[string]any{"cart_id": "c9"}},
		"events":  []any{map[string]any{"after": "20m", "event": "Order Completed", "properties": map[string]any{"cart_id": "c9"}}},
	})
	if res["traits_set"].(map[string]any)["rescued"] != false {
		t.Fatalf("with the order: %v", res)
	}
	// Nothing ran for real.
	if runs := e.runs(t, id); len(runs) != 0 {
		t.Fatalf("a simulation left %d runs", len(runs))
	}

	// Bad input names the field.
	status, _, body := e.call(t, "POST", "/v1/journeys/"+id+"/simulate", e.admin, map[string]any{
		"trigger": map[string]any{"event": "Cart Updated"}, "events": []any{map[string]any{"after": "soon", "event": "Order Completed"}},
	})
	if status != 422 || body["errors"].([]any)[0].(map[string]any)["field"] != "events[0].after" {
		t.Fatalf("bad after: %d %v", status, body)
	}
	status, _, body = e.call(t, "POST", "/v1/journeys/"+id+"/simulate", e.admin, map[string]any{"version": 3, "trigger": map[string]any{"event": "Cart Updated"}})
	if status != 422 || body["errors"].([]any)[0].(map[string]any)["field"] != "version" {
		t.Fatalf("unknown version: %d %v", status, body)
	}
}

func TestPublishPreviewCountsRunsOnChangedNodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, _, j := e.call(t, "POST", "/v1/journeys", e.admin, cartJourney)
	id := j["id"].(string)
	status, _, p := e.call(t, "GET", "/v1/journeys/"+id+"/publish-preview", e.admin, nil)
	if status != 200 || p["to_version"] != 1.0 || p["from_version"] != nil || p["runs_in_flight"] != 0.0 {
		t.Fatalf("first preview: %d %v", status, p)
	}
	e.call(t, "POST", "/v1/journeys/"+id+"/publish", e.admin, nil)
	for _, cart := range []string{"c1", "c2"} {
		e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana-" + cart, "event": "Cart Updated", "properties": map[string]any{"cart_id": cart}})
	}
	e.waitFor(t, "two runs waiting for the order", func() bool {
		n := 0
		for _, r := range e.runs(t, id) {
			if r["node"] == "wait_order" {
				n++
			}
		}
		return n == 2
	})
	// The live inspector: who is at a step.
	for node, want := range map[string]int{"wait_order": 2, "flag": 0} {
		_, _, at := e.call(t, "GET", "/v1/journeys/"+id+"/runs?node="+node, e.admin, nil)
		if n := len(at["data"].([]any)); n != want {
			t.Fatalf("runs at %s: %d, want %d", node, n, want)
		}
	}
	// The new draft waits two hours instead of one, and no longer flags the cart.
	draft := strings.Replace(cartJourney, `"timeout": "1h"`, `"timeout": "2h"`, 1)
	draft = strings.Replace(draft, `"on_timeout": "flag"`, `"on_timeout": "done"`, 1)
	draft = strings.Replace(draft, `{"id": "flag", "type": "update_profile", "traits": {"abandoned_cart": true}, "next": "done"},`, "", 1)
	if status, _, body := e.call(t, "PUT", "/v1/journeys/"+id, e.admin, draft); status != 200 {
		t.Fatalf("update: %d %v", status, body)
	}
	_, _, p = e.call(t, "GET", "/v1/journeys/"+id+"/publish-preview", e.admin, nil)
	if p["from_version"] != 1.0 || p["to_version"] != 2.0 || p["runs_in_flight"] != 2.0 || p["runs_on_changed"] != 2.0 || p["runs_on_removed"] != 0.0 ||
		strings.Join(toStrings(p["removed"]), ",") != "flag" || strings.Join(toStrings(p["changed"]), ",") != "wait_order" {
		t.Fatalf("preview: %v", p)
	}
}

package api_test

import (
	"strings"
	"testing"
)

// A marketer's rule rejects bad store orders into quarantine; once the rule
// is fixed, replaying the quarantine stores them.
func TestValidationRulesQuarantineAndReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	store := e.newWriteKey(t, "store")

	// A rule that does not compile is refused with its position.
	status, _, body := e.call(t, "POST", "/v1/validation-rules", e.admin, map[string]any{"name": "positive totals", "source": "store", "rule": "event != \"Order Completed\" ||\n properties.total >"})
	if status != 422 {
		t.Fatalf("broken rule: %d %v", status, body)
	}
	fe := body["errors"].([]any)[0].(map[string]any)
	if fe["field"] != "rule" || fe["line"] != 2.0 || fe["column"] == nil {
		t.Fatalf("compile error %v lacks field, line or column", fe)
	}
	status, _, body = e.call(t, "POST", "/v1/validation-rules", e.admin, map[string]any{"name": "not a condition", "rule": "properties.total + 1"})
	if status != 422 || !strings.Contains(body["errors"].([]any)[0].(map[string]any)["reason"].(string), "condition") {
		t.Fatalf("non-boolean rule: %d %v", status, body)
	}
	// Too strict on purpose: orders must be over 100.
	status, _, rule := e.call(t, "POST", "/v1/validation-rules", e.admin, map[string]any{"name": "positive totals", "source": "store", "rule": `event != "Order Completed" || properties.total > 100`})
	if status != 201 {
		t.Fatalf("create rule: %d %v", status, rule)
	}

	out := e.mustSend(t, store, "/v1/batch", map[string]any{"batch": []any{
		map[string]any{"type": "track", "userId": "c1", "event": "Order Completed", "properties": map[string]any{"total": 250}, "messageId": "o-250"},
		map[string]any{"type": "track", "userId": "c1", "event": "Order Completed", "properties": map[string]any{"total": 40}, "messageId": "o-40"},
		map[string]any{"type": "track", "userId": "c1", "event": "Order Completed", "properties": map[string]any{"total": -5}, "messageId": "o-neg"},
		map[string]any{"type": "track", "userId": "c1", "event": "Store Visited", "messageId": "visit"},
	}})
	if out["accepted"] != 2.0 || out["rejected"] != 2.0 {
		t.Fatalf("batch: %v, want 2 accepted, 2 rejected", out)
	}
	if f := out["errors"].([]any)[0].(map[string]any); f["field"] != "batch[1].rule" || !strings.Contains(f["reason"].(string), "positive totals") {
		t.Fatalf("rejection %v does not name the record and the rule", f)
	}
	// The rule is for the store only: the web is not affected.
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "c1", "event": "Order Completed", "properties": map[string]any{"total": 1}, "messageId": "web-1"})

	// Fix the rule, replay: the 40 order passes, the negative one stays out.
	status, _, _ = e.call(t, "PATCH", "/v1/validation-rules/"+rule["id"].(string), e.admin, map[string]any{"rule": `event != "Order Completed" || properties.total > 0`})
	if status != 200 {
		t.Fatalf("update rule: %d", status)
	}
	status, _, res := e.call(t, "POST", "/v1/rejected/replay", e.admin, nil)
	if status != 200 || res["replayed"] != 1.0 || res["still_rejected"] != 1.0 {
		t.Fatalf("replay: %d %v", status, res)
	}
	// Replaying again changes nothing and stores nothing twice.
	if _, _, res := e.call(t, "POST", "/v1/rejected/replay", e.admin, nil); res["replayed"] != 0.0 {
		t.Fatalf("second replay: %v", res)
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE workspace_id = $1 AND message_id = 'o-40' AND source = 'store'`, e.ws.ID); n != 1 {
		t.Fatalf("replayed order stored %d times", n)
	}
	p := e.profileBy(t, "userId=c1")
	if c := p["computed"].(map[string]any); c["order_count"] != 3.0 || c["total_revenue"] != 291.0 {
		t.Fatalf("computed after replay %v", c)
	}
}

package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestExportHoldsEverythingAndEraseForgetsThePerson(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSend(t, e.write, "/v1/page", map[string]any{"anonymousId": "cookie-e", "name": "Home", "messageId": "e-pv"})
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"anonymousId": "cookie-e", "userId": "u-e", "messageId": "e-id",
		"traits": map[string]string{"email": "erin@example.com", "phone": "+33 6 12 34 56 78", "address": "1 rue de la Paix"}})
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "u-e", "event": "Order Completed", "messageId": "e-order", "properties": map[string]any{"total": 30}})
	// Someone else, who must be untouched.
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "u-f", "traits": map[string]string{"email": "fred@example.com"}, "messageId": "f-id"})
	p := e.profileBy(t, "email=erin@example.com")
	id := p["id"].(string)

	req, _ := http.NewRequest("GET", e.url+"/v1/profiles/"+id+"/export", nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var export struct {
		Profile map[string]any   `json:"profile"`
		Events  []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(raw, &export); err != nil || resp.StatusCode != 200 {
		t.Fatalf("export: %d %v %s", resp.StatusCode, err, raw)
	}
	if len(export.Events) != 3 || export.Profile["traits"].(map[string]any)["address"] != "1 rue de la Paix" || len(export.Profile["identities"].([]any)) != 4 {
		t.Fatalf("export lacks data: %d events, profile %v", len(export.Events), export.Profile)
	}
	if !strings.Contains(string(raw), `"+33 6 12 34 56 78"`) {
		t.Fatal("export does not hold the records as received")
	}

	// A write key cannot erase.
	if status, _, _ := e.call(t, "DELETE", "/v1/profiles/"+id, e.write, nil); status != 403 {
		t.Fatalf("write key erased: %d", status)
	}
	status, _, out := e.call(t, "DELETE", "/v1/profiles/"+id, e.admin, nil)
	if status != 200 || out["events"] != 3.0 || out["identities"] != 4.0 {
		t.Fatalf("erase: %d %v", status, out)
	}
	for _, q := range []string{"email=erin@example.com", "userId=u-e", "anonymousId=cookie-e", "phone=+33612345678"} {
		if status, _, _ := e.call(t, "GET", "/v1/profiles/lookup?"+q, e.admin, nil); status != 404 {
			t.Errorf("after erasure lookup %s: %d, want 404", q, status)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE workspace_id = $1 AND raw::text LIKE '%erin%'`, e.ws.ID); n != 0 {
		t.Fatalf("%d events still mention the erased person", n)
	}
	if n := e.count(t, `SELECT count(*) FROM suppressed_identities WHERE workspace_id = $1 AND encode(value_hash, 'escape') LIKE '%erin%'`, e.ws.ID); n != 0 {
		t.Fatal("suppression list keeps the email in clear")
	}
	// Later records about the erased person are dropped, not stored (and
	// answered as accepted: the write key's holder is not told).
	out2 := e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "u-e", "event": "Came Back", "messageId": "e-late"})
	if out2["accepted"] != 1.0 {
		t.Fatalf("late record about an erased person: %v", out2)
	}
	if status, _, _ := e.call(t, "GET", "/v1/profiles/lookup?userId=u-e", e.admin, nil); status != 404 {
		t.Fatal("a late record recreated the erased profile")
	}
	// Fred is untouched.
	if f := e.profileBy(t, "email=fred@example.com"); f["computed"].(map[string]any)["event_count"] != 1.0 {
		t.Fatalf("other profile changed: %v", f)
	}
}

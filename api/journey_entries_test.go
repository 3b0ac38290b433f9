package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/channel"
)

// An API-triggered journey whose webhook node posts the profile, signed, to
// a CRM: entered through the API once, the CRM receives one signed post,
// and the profile's journeys show the run and its path.
func TestAPITriggerAndWebhookNodeEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var mu sync.Mutex
	var posts []map[string]any
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !channel.VerifySignature("crm-secret-0123456789", r.Header.Get(channel.SignatureHeader), body, time.Now(), time.Minute) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		mu.Lock()
		posts = append(posts, m)
		mu.Unlock()
	}))
	t.Cleanup(crm.Close)
	if status, _, body := e.call(t, "PUT", "/v1/channels/webhook", e.admin, map[string]any{"url": crm.URL + "/default", "signing_secret": "crm-secret-0123456789"}); status != 200 {
		t.Fatalf("webhook channel: %d %v", status, body)
	}
	_, _, j := e.call(t, "POST", "/v1/journeys", e.admin, `{
	  "name": "Sync VIPs to the CRM", "trigger": {"type": "api"}, "entry": {"re_entry": "once"}, "start": "crm",
	  "nodes": [{"id": "crm", "type": "webhook", "url": "`+crm.URL+`/vip", "next": "done"}, {"id": "done", "type": "exit"}]}`)
	id := j["id"].(string)
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "traits": map[string]any{"email": "ana@example.com", "tier": "gold"}})
	ana := e.profileBy(t, "userId=ana")["id"].(string)

	// Not live yet.
	if status, _, body := e.call(t, "POST", "/v1/journeys/"+id+"/entries", e.admin, map[string]any{"profile_id": ana}); status != 409 {
		t.Fatalf("entry before publishing: %d %v", status, body)
	}
	e.call(t, "POST", "/v1/journeys/"+id+"/publish", e.admin, nil)
	if status, _, body := e.call(t, "POST", "/v1/journeys/"+id+"/entries", e.admin, map[string]any{"profile_id": "nope"}); status != 422 ||
		body["errors"].([]any)[0].(map[string]any)["field"] != "profile_id" {
		t.Fatalf("bad profile id: %d %v", status, body)
	}
	status, _, out := e.call(t, "POST", "/v1/journeys/"+id+"/entries", e.admin, map[string]any{"profile_id": ana})
	if status != 202 || out["entered"] != true {
		t.Fatalf("entry: %d %v", status, out)
	}
	e.waitForEnded(t, id, 1)
	// Entry is once: a second call says why nothing happened.
	status, _, out = e.call(t, "POST", "/v1/journeys/"+id+"/entries", e.admin, map[string]any{"profile_id": ana})
	if status != 200 || out["entered"] != false || !strings.Contains(out["reason"].(string), "once") {
		t.Fatalf("second entry: %d %v", status, out)
	}
	mu.Lock()
	got := posts
	mu.Unlock()
	if len(got) != 1 || got[0]["type"] != "journey_webhook" || got[0]["node_id"] != "crm" ||
		got[0]["profile"].(map[string]any)["traits"].(map[string]any)["tier"] != "gold" {
		t.Fatalf("CRM posts %v", got)
	}

	status, _, runs := e.call(t, "GET", "/v1/profiles/"+ana+"/journeys", e.admin, nil)
	if status != 200 || len(runs["data"].([]any)) != 1 {
		t.Fatalf("profile journeys: %d %v", status, runs)
	}
	run := runs["data"].([]any)[0].(map[string]any)["run"].(map[string]any)
	if run["journey_name"] != "Sync VIPs to the CRM" || strings.Join(toStrings(run["path"]), ",") != "crm,done" || run["end_reason"] != "completed" {
		t.Fatalf("run %v", run)
	}

	// A journey with another trigger cannot be entered this way.
	_, _, other := e.call(t, "POST", "/v1/journeys", e.admin, cartJourney)
	e.call(t, "POST", "/v1/journeys/"+other["id"].(string)+"/publish", e.admin, nil)
	if status, _, body := e.call(t, "POST", "/v1/journeys/"+other["id"].(string)+"/entries", e.admin, map[string]any{"profile_id": ana}); status != 409 ||
		!strings.Contains(body["detail"].(string), "api") {
		t.Fatalf("entering an event journey: %d %v", status, body)
	}
}

// A definition may be written in YAML.
func TestJourneyDefinitionInYAML(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := `
name: Cart follow-up (YAML)
trigger: {type: event, event: Cart Updated, correlation_key: properties.cart_id}
entry: {re_entry: every_time}
start: wait_order
nodes:
  - id: wait_order
    type: wait_for_event
    event: Order Completed
    match: properties.cart_id == trigger.properties.cart_id
    timeout: 1h
    on_event: done
    on_timeout: done
  - {id: done, type: exit}
`
	req, _ := http.NewRequest("POST", e.url+"/v1/journeys", strings.NewReader(doc))
	req.Header.Set("Content-Type", "application/yaml")
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	json.NewDecoder(resp.Body).Decode(&j)
	resp.Body.Close()
	if resp.StatusCode != 201 || j["draft"].(map[string]any)["nodes"].([]any)[0].(map[string]any)["timeout"] != "1h" {
		t.Fatalf("YAML journey: %d %v", resp.StatusCode, j)
	}
	// A YAML mistake is named like a JSON one.
	req, _ = http.NewRequest("POST", e.url+"/v1/journeys", strings.NewReader(strings.Replace(doc, "on_timeout: done", "on_timeout: nowhere", 1)))
	req.Header.Set("Content-Type", "application/yaml")
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if resp.StatusCode != 422 || p["errors"].([]any)[0].(map[string]any)["field"] != "nodes[wait_order].on_timeout" {
		t.Fatalf("bad YAML journey: %d %v", resp.StatusCode, p)
	}
}

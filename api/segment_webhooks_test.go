package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/segment"
)

// A marketer subscribes a tool to a segment through the API; entries that
// ingestion causes reach it signed, and the webhook's status says how
// delivery goes.
func TestSegmentWebhooksThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var mu sync.Mutex
	var bodies [][]byte
	var sigs []string
	fail := true
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if fail {
			http.Error(w, "maintenance", http.StatusBadGateway)
			return
		}
		bodies, sigs = append(bodies, raw), append(sigs, r.Header.Get(channel.SignatureHeader))
	}))
	defer recv.Close()
	vip := e.createSegment(t, "vip", `profile.traits.tier == "gold"`)
	segID := vip["id"].(string)
	base := "/v1/segments/" + segID + "/webhooks"

	// Bad input names the field; a missing segment or webhook is a 404.
	status, _, body := e.call(t, "POST", base, e.admin, map[string]any{"url": "ftp://tools.example.com", "kinds": []string{"entered"}})
	if status != 422 || fieldOf(body)["field"] != "url" {
		t.Fatalf("bad url: %d %v", status, body)
	}
	status, _, body = e.call(t, "POST", base, e.admin, map[string]any{"url": "https://tools.example.com", "kinds": []string{"joined"}})
	if status != 422 || fieldOf(body)["field"] != "kinds[0]" || !strings.Contains(fieldOf(body)["reason"].(string), `"entered"`) {
		t.Fatalf("bad kind: %d %v", status, body)
	}
	status, _, body = e.call(t, "POST", base, e.admin, map[string]any{"url": "https://tools.example.com", "secret": "x"})
	if status != 422 || fieldOf(body)["field"] != "secret" {
		t.Fatalf("unknown field: %d %v", status, body)
	}
	if status, _, _ := e.call(t, "POST", "/v1/segments/00000000-0000-0000-0000-000000000001/webhooks", e.admin, map[string]any{"url": "https://tools.example.com"}); status != 404 {
		t.Fatalf("webhook on a missing segment: %d", status)
	}
	if status, _, _ := e.call(t, "GET", base+"/not-an-id", e.admin, nil); status != 404 {
		t.Fatalf("malformed webhook id: %d", status)
	}
	if status, _, _ := e.call(t, "GET", base, e.write, nil); status != 403 && status != 401 {
		t.Fatalf("a write key listed webhooks: %d", status)
	}

	status, _, created := e.call(t, "POST", base, e.admin, map[string]any{"url": recv.URL + "/hooks/parcours"})
	if status != 201 || created["status"] != "active" || created["pending"] != 0.0 {
		t.Fatalf("create: %d %v", status, created)
	}
	secret, _ := created["signing_secret"].(string)
	hookID := created["id"].(string)
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("signing secret %q", secret)
	}

	// Ana becomes gold: the entry is queued in real time; the receiver is down.
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "traits": map[string]any{"email": "Ana@Example.com", "tier": "gold"}})
	ana := e.profileBy(t, "userId=ana")["id"].(string)
	d := &segment.Dispatcher{Pool: e.pool, Box: e.ledger.Settings.Box(), Webhook: channel.NewWebhook([]string{"127.0.0.1"}), Backoff: time.Hour}
	ctx := context.Background()
	if posted, err := d.DispatchOnce(ctx); !posted || err != nil {
		t.Fatalf("dispatch: %v %v", posted, err)
	}
	status, _, got := e.call(t, "GET", base+"/"+hookID, e.admin, nil)
	if status != 200 || got["status"] != "retrying" || got["pending"] != 1.0 || got["failures"] != 1.0 || !strings.Contains(got["last_error"].(string), "502") {
		t.Fatalf("after a failed attempt: %d %v", status, got)
	}
	if _, ok := got["signing_secret"]; ok {
		t.Fatal("GET returned the signing secret")
	}
	next, _ := time.Parse(time.RFC3339Nano, got["next_attempt_at"].(string))
	if time.Until(next) < 50*time.Minute {
		t.Fatalf("next attempt at %s, want about an hour away", next)
	}

	// The receiver is back: retry now instead of in an hour.
	mu.Lock()
	fail = false
	mu.Unlock()
	if status, _, got := e.call(t, "POST", base+"/"+hookID+"/retry", e.admin, nil); status != 200 || got["pending"] != 1.0 {
		t.Fatalf("retry: %d %v", status, got)
	}
	if posted, err := d.DispatchOnce(ctx); !posted || err != nil {
		t.Fatalf("dispatch: %v %v", posted, err)
	}
	mu.Lock()
	if len(bodies) != 1 || !channel.VerifySignature(secret, sigs[0], bodies[0], time.Now(), 5*time.Minute) {
		t.Fatalf("receiver got %d bodies; signature valid: %v", len(bodies), len(bodies) == 1 && channel.VerifySignature(secret, sigs[0], bodies[0], time.Now(), 5*time.Minute))
	}
	var payload segment.HookPayload
	if err := json.Unmarshal(bodies[0], &payload); err != nil {
		t.Fatal(err)
	}
	mu.Unlock()
	if len(payload.Events) != 1 {
		t.Fatalf("payload %+v", payload)
	}
	ev := payload.Events[0]
	if ev.Kind != "entered" || ev.Segment.Slug != "vip" || ev.Profile != (segment.HookProfile{ID: ana, UserID: "ana", Email: "ana@example.com"}) {
		t.Fatalf("event %+v", ev)
	}
	status, _, list := e.call(t, "GET", base, e.admin, nil)
	hooks, _ := list["data"].([]any)
	if status != 200 || len(hooks) != 1 {
		t.Fatalf("list: %d %v", status, list)
	}
	if h := hooks[0].(map[string]any); h["status"] != "active" || h["pending"] != 0.0 || h["delivered"] != 1.0 || h["last_error"] != nil {
		t.Fatalf("after delivery: %v", h)
	}

	if status, _, _ := e.call(t, "DELETE", base+"/"+hookID, e.admin, nil); status != 204 {
		t.Fatalf("delete: %d", status)
	}
	if status, _, body := e.call(t, "GET", base+"/"+hookID, e.admin, nil); status != 404 || !strings.Contains(body["detail"].(string), "webhook") {
		t.Fatalf("deleted webhook: %d %v", status, body)
	}
}

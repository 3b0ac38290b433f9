package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/workspace"
)

// send posts a Segment call with the write key as HTTP Basic user, as the
// official libraries do.
func (e *env) send(t *testing.T, key, path string, body any) (int, map[string]any) {
	t.Helper()
	raw, ok := body.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req, _ := http.NewRequest("POST", e.url+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (e *env) mustSend(t *testing.T, key, path string, body any) map[string]any {
	t.Helper()
	status, out := e.send(t, key, path, body)
	if status != 200 {
		t.Fatalf("POST %s: %d %v", path, status, out)
	}
	return out
}

// profileBy looks a profile up through the API.
func (e *env) profileBy(t *testing.T, query string) map[string]any {
	t.Helper()
	status, _, body := e.call(t, "GET", "/v1/profiles/lookup?"+query, e.admin, nil)
	if status != 200 {
		t.Fatalf("lookup %s: %d %v", query, status, body)
	}
	return body
}

func (e *env) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) newWriteKey(t *testing.T, source string) string {
	t.Helper()
	status, _, k := e.call(t, "POST", "/v1/api-keys", e.admin, map[string]string{"name": source, "scope": "write", "source": source})
	if status != 201 {
		t.Fatalf("create %s key: %d %v", source, status, k)
	}
	return k["secret"].(string)
}

func TestEveryCallTypeIsStoredWithItsAuditTrail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	calls := []struct{ path, body string }{
		{"/v1/identify", `{"userId":"u1","traits":{"name":"Ana"},"messageId":"c-identify"}`},
		{"/v1/track", `{"userId":"u1","event":"Signed Up","properties":{"plan":"pro"},"messageId":"c-track"}`},
		{"/v1/page", `{"anonymousId":"a1","name":"Pricing","messageId":"c-page"}`},
		{"/v1/screen", `{"userId":"u1","name":"Home","messageId":"c-screen"}`},
		{"/v1/group", `{"userId":"u1","groupId":"g1","traits":{"name":"Acme"},"messageId":"c-group"}`},
		{"/v1/alias", `{"userId":"u1","previousId":"a1","messageId":"c-alias"}`},
	}
	for _, c := range calls {
		e.mustSend(t, e.write, c.path, []byte(c.body))
	}
	// The write key can also travel as Bearer, or as writeKey in the body.
	e.mustSend(t, "", "/v1/track", []byte(`{"userId":"u1","event":"Body Key","messageId":"c-bodykey","writeKey":"`+e.write+`"}`))
	status, _, _ := e.call(t, "POST", "/v1/track", e.write, `{"userId":"u1","event":"Bearer Key","messageId":"c-bearer"}`)
	if status != 200 {
		t.Fatalf("bearer write key: %d", status)
	}
	for _, c := range calls {
		typ := strings.TrimPrefix(c.path, "/v1/")
		var raw, source string
		var received time.Time
		err := e.pool.QueryRow(context.Background(),
			`SELECT raw::text, source, received_at FROM events WHERE workspace_id = $1 AND message_id = $2 AND type = $3`,
			e.ws.ID, "c-"+typ, typ).Scan(&raw, &source, &received)
		if err != nil {
			t.Fatalf("%s not stored: %v", typ, err)
		}
		var got, sent map[string]any
		_ = json.Unmarshal([]byte(raw), &got)
		_ = json.Unmarshal([]byte(c.body), &sent)
		if fmt.Sprint(got) != fmt.Sprint(sent) || source != "web" || time.Since(received) > time.Minute {
			t.Errorf("%s: raw %s source %s received %v; want the record as sent, source web, received now", typ, raw, source, received)
		}
	}
	// Alias joined the anonymous visitor to the user: one profile, all eight records.
	p := e.profileBy(t, "anonymousId=a1")
	if p["id"] != e.profileBy(t, "userId=u1")["id"] {
		t.Fatal("alias did not join anonymousId a1 and userId u1")
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE workspace_id = $1 AND profile_id = $2 AND source = 'web'`, e.ws.ID, p["id"]); n != 8 {
		t.Fatalf("profile has %d events, want 8", n)
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE workspace_id = $1 AND profile_id = $2 AND source = 'parcours' AND name = 'Profile Merged'`, e.ws.ID, p["id"]); n != 1 {
		t.Fatalf("%d Profile Merged events on the timeline, want 1", n)
	}
}

func TestRetriedMessagesAreStoredOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := []byte(`{"userId":"u1","event":"Order Completed","properties":{"total":10},"messageId":"retry-me"}`)
	first := e.mustSend(t, e.write, "/v1/track", body)
	again := e.mustSend(t, e.write, "/v1/track", body)
	batch := e.mustSend(t, e.write, "/v1/batch", map[string]any{"batch": []json.RawMessage{
		json.RawMessage(`{"type":"track","userId":"u1","event":"Order Completed","properties":{"total":10},"messageId":"retry-me"}`),
		json.RawMessage(`{"type":"track","userId":"u1","event":"Order Completed","properties":{"total":5},"messageId":"new-one"}`),
		json.RawMessage(`{"type":"track","userId":"u1","event":"Order Completed","properties":{"total":5},"messageId":"new-one"}`),
	}})
	if first["accepted"] != 1.0 || again["duplicates"] != 1.0 || batch["accepted"] != 1.0 || batch["duplicates"] != 2.0 {
		t.Fatalf("answers %v / %v / %v", first, again, batch)
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE workspace_id = $1`, e.ws.ID); n != 2 {
		t.Fatalf("%d events stored, want 2", n)
	}
	p := e.profileBy(t, "userId=u1")
	c := p["computed"].(map[string]any)
	if c["order_count"] != 2.0 || c["total_revenue"] != 15.0 {
		t.Fatalf("computed traits count a duplicate: %v", c)
	}
}

func TestClientClockSkewIsCorrected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The device clock is a day ahead: it stamped the event 5 s before sending it.
	deviceNow := time.Now().Add(24 * time.Hour).UTC()
	e.mustSend(t, e.write, "/v1/track", map[string]any{
		"userId": "u1", "event": "Skewed", "messageId": "skewed",
		"timestamp": deviceNow.Add(-5 * time.Second).Format(time.RFC3339Nano), "sentAt": deviceNow.Format(time.RFC3339Nano),
	})
	// No sentAt and a timestamp in the future: clamped to the receive time.
	e.mustSend(t, e.write, "/v1/track", map[string]any{
		"userId": "u1", "event": "Future", "messageId": "future", "timestamp": "2099-01-01T00:00:00Z",
	})
	// No sentAt, a past timestamp: kept (a late upload from an offline device).
	e.mustSend(t, e.write, "/v1/track", map[string]any{
		"userId": "u1", "event": "Old", "messageId": "old", "timestamp": "2026-01-02T03:04:05Z",
	})
	var ts, received, original time.Time
	if err := e.pool.QueryRow(context.Background(), `SELECT timestamp, received_at, original_timestamp FROM events WHERE message_id = 'skewed' AND workspace_id = $1`, e.ws.ID).Scan(&ts, &received, &original); err != nil {
		t.Fatal(err)
	}
	if d := received.Sub(ts); d < 4900*time.Millisecond || d > 5100*time.Millisecond {
		t.Fatalf("corrected timestamp is %v before receipt, want 5s", d)
	}
	if !original.Equal(deviceNow.Add(-5 * time.Second).Truncate(time.Microsecond)) {
		t.Fatalf("originalTimestamp not kept: %v", original)
	}
	if err := e.pool.QueryRow(context.Background(), `SELECT timestamp, received_at FROM events WHERE message_id = 'future' AND workspace_id = $1`, e.ws.ID).Scan(&ts, &received); err != nil {
		t.Fatal(err)
	}
	if !ts.Equal(received) {
		t.Fatalf("future timestamp %v not clamped to receipt %v", ts, received)
	}
	if err := e.pool.QueryRow(context.Background(), `SELECT timestamp FROM events WHERE message_id = 'old' AND workspace_id = $1`, e.ws.ID).Scan(&ts); err != nil {
		t.Fatal(err)
	}
	if !ts.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("past timestamp changed to %v", ts)
	}
}

func TestLimitsAndRejectsNameTheRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	big := strings.Repeat("x", 33*1024)
	status, body := e.send(t, e.write, "/v1/track", map[string]any{"userId": "u1", "event": "Big", "properties": map[string]string{"blob": big}})
	if status != 413 || !strings.Contains(body["detail"].(string), "32 KB") {
		t.Fatalf("33 KB record: %d %v, want 413 naming the 32 KB limit", status, body)
	}
	var items []json.RawMessage
	for i := 0; i < 40; i++ {
		items = append(items, json.RawMessage(fmt.Sprintf(`{"type":"track","userId":"u1","event":"E","properties":{"pad":%q}}`, strings.Repeat("y", 14*1024))))
	}
	status, body = e.send(t, e.write, "/v1/batch", map[string]any{"batch": items})
	if status != 413 || !strings.Contains(body["detail"].(string), "500 KB") {
		t.Fatalf("560 KB batch: %d %v, want 413 naming the 500 KB limit", status, body)
	}
	// One bad record in a batch: the others are stored, the bad one is named and kept.
	out := e.mustSend(t, e.write, "/v1/batch", map[string]any{"batch": []any{
		map[string]any{"type": "track", "userId": "u1", "event": "Fine", "messageId": "ok-1"},
		map[string]any{"type": "track", "userId": "u1", "messageId": "no-event"},
		map[string]any{"type": "track", "userId": "u1", "event": "Big", "properties": map[string]string{"blob": big}},
		map[string]any{"type": "identify", "traits": map[string]string{"email": "x@example.com"}},
	}})
	if out["accepted"] != 1.0 || out["rejected"] != 3.0 {
		t.Fatalf("batch answer %v, want 1 accepted and 3 rejected", out)
	}
	errs := out["errors"].([]any)
	wantFields := []string{"batch[1].event", "batch[2].(record)", "batch[3].userId"}
	for i, w := range wantFields {
		if f := errs[i].(map[string]any)["field"]; f != w {
			t.Errorf("error %d names %v, want %s", i, f, w)
		}
	}
	// A bad single call answers 400 and is kept too.
	status, body = e.send(t, e.write, "/v1/track", []byte(`{"userId":"u1","messageId":"single-bad"}`))
	if status != 400 || body["errors"].([]any)[0].(map[string]any)["field"] != "event" {
		t.Fatalf("bad single call: %d %v", status, body)
	}
	status, _, list := e.call(t, "GET", "/v1/rejected", e.admin, nil)
	if status != 200 {
		t.Fatal(status)
	}
	recs := list["data"].([]any)
	if len(recs) != 4 {
		t.Fatalf("%d records in quarantine, want 4: %v", len(recs), recs)
	}
	newest := recs[0].(map[string]any)
	if newest["field"] != "event" || !strings.Contains(newest["raw"].(string), "single-bad") || newest["source"] != "web" {
		t.Fatalf("quarantined record %v lacks its reason, raw payload or source", newest)
	}
	// Nothing gets in without a valid write key, and the body's writeKey is checked too.
	if status, _ := e.send(t, "", "/v1/track", []byte(`{"userId":"u1","event":"E","writeKey":"pcs_write_forged"}`)); status != 401 {
		t.Fatalf("forged body writeKey: %d, want 401", status)
	}
}

// The white paper's path: anonymous page views on the web, identify with an
// email on the web, then a purchase in a store under the customer number.
// One profile, all history, state omnichannel.
func TestAnonymousToKnownToOmnichannel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	store := e.newWriteKey(t, "store")
	status, _, ws := e.call(t, "PATCH", "/v1/workspace", e.admin, map[string]any{"identity_traits": []string{"email", "phone", "customer_number"}})
	if status != 200 || ws["unique_identifier"] != "email" {
		t.Fatalf("settings: %d %v", status, ws)
	}
	for i, page := range []string{"Home", "Shoes", "Checkout"} {
		e.mustSend(t, e.write, "/v1/page", map[string]any{"anonymousId": "cookie-1", "name": page, "messageId": fmt.Sprintf("pv-%d", i),
			"context": map[string]any{"page": map[string]string{"url": "https://shop.example/" + page}}})
	}
	anon := e.profileBy(t, "anonymousId=cookie-1")
	if anon["state"] != "anonymous" {
		t.Fatalf("after page views: state %v, want anonymous", anon["state"])
	}
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"anonymousId": "cookie-1", "messageId": "id-1",
		"traits": map[string]any{"email": " Ana.Martin@Example.com", "first_name": "Ana", "customer_number": "C-1001"}})
	known := e.profileBy(t, "email=ana.martin@example.com")
	if known["state"] != "known" || known["id"] != anon["id"] {
		t.Fatalf("after identify: %v %v, want the same profile, known", known["id"], known["state"])
	}
	// The store knows the customer number only.
	e.mustSend(t, store, "/v1/track", map[string]any{"userId": "C-1001", "event": "Order Completed", "messageId": "pos-1",
		"properties": map[string]any{"total": 120.5, "store": "Lyon"}, "context": map[string]any{"traits": map[string]any{"customer_number": "C-1001"}}})
	omni := e.profileBy(t, "customer_number=C-1001")
	if omni["id"] != anon["id"] || omni["state"] != "omnichannel" {
		t.Fatalf("after the store purchase: %v %v, want the same profile, omnichannel", omni["id"], omni["state"])
	}
	c := omni["computed"].(map[string]any)
	if c["page_views"] != 3.0 || c["order_count"] != 1.0 || c["total_revenue"] != 120.5 || fmt.Sprint(c["sources"]) != "[store web]" {
		t.Fatalf("computed traits %v", c)
	}
	if src := omni["trait_sources"].(map[string]any)["email"].(map[string]any); src["source"] != "web" || src["message_id"] != "id-1" {
		t.Fatalf("email provenance %v", src)
	}
	if omni["traits"].(map[string]any)["email"] != "ana.martin@example.com" {
		t.Fatalf("email not normalised: %v", omni["traits"])
	}
	// The timeline holds all five records, newest first, paged by cursor.
	var all []any
	cursor := ""
	for page := 0; page < 5; page++ {
		status, _, body := e.call(t, "GET", fmt.Sprintf("/v1/profiles/%s/events?limit=2&cursor=%s", omni["id"], cursor), e.admin, nil)
		if status != 200 {
			t.Fatalf("timeline: %d %v", status, body)
		}
		all = append(all, body["data"].([]any)...)
		if cursor = body["next_cursor"].(string); cursor == "" {
			break
		}
	}
	if len(all) != 5 || all[0].(map[string]any)["message_id"] != "pos-1" || all[4].(map[string]any)["message_id"] != "pv-0" {
		t.Fatalf("timeline has %d records: %v", len(all), all)
	}
}

// Two people on one shared computer: the second identify must not merge
// into the first person's profile.
func TestTwoPeopleAreNeverMerged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"anonymousId": "shared-pc", "traits": map[string]string{"email": "ana@example.com"}})
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"anonymousId": "shared-pc", "traits": map[string]string{"email": "bob@example.com"}})
	ana, bob := e.profileBy(t, "email=ana@example.com"), e.profileBy(t, "email=bob@example.com")
	if ana["id"] == bob["id"] {
		t.Fatal("two emails merged into one profile")
	}
	// A record carrying both emails links two people: refused and recorded.
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "u-ana", "traits": map[string]string{"email": "ana@example.com"}})
	e.mustSend(t, e.write, "/v1/alias", map[string]any{"userId": "u-ana", "previousId": "shared-pc"})
	if e.profileBy(t, "email=ana@example.com")["id"] == e.profileBy(t, "email=bob@example.com")["id"] {
		t.Fatal("alias merged two people")
	}
	if n := e.count(t, `SELECT count(*) FROM identity_conflicts WHERE workspace_id = $1`, e.ws.ID); n == 0 {
		t.Fatal("no identity conflict recorded")
	}
}

func TestProfilesNeedAnAdminKeyOfTheirWorkspace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "u1", "traits": map[string]string{"email": "ana@example.com"}})
	p := e.profileBy(t, "email=ana@example.com")
	// A write key cannot read.
	if status, _, _ := e.call(t, "GET", "/v1/profiles/"+p["id"].(string), e.write, nil); status != 403 {
		t.Fatalf("write key read a profile: %d", status)
	}
	// An admin of another workspace sees nothing.
	store := workspace.NewStore(e.pool)
	other, err := store.Create(context.Background(), "other", "Other")
	if err != nil {
		t.Fatal(err)
	}
	k, err := store.CreateKey(context.Background(), other.ID, workspace.KeySpec{Name: "o", Scope: workspace.ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/profiles/" + p["id"].(string), "/v1/profiles/lookup?email=ana@example.com", "/v1/profiles/" + p["id"].(string) + "/events"} {
		if status, _, _ := e.call(t, "GET", path, k.Secret, nil); status != 404 {
			t.Errorf("other workspace GET %s: %d, want 404", path, status)
		}
	}
}

func TestMergeCanBeUndoneThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSend(t, e.write, "/v1/page", map[string]any{"anonymousId": "cookie-x", "name": "Home", "messageId": "pv"})
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "u-x", "traits": map[string]string{"email": "x@example.com"}, "messageId": "id"})
	anonID := e.profileBy(t, "anonymousId=cookie-x")["id"].(string)
	e.mustSend(t, e.write, "/v1/alias", map[string]any{"userId": "u-x", "previousId": "cookie-x", "messageId": "al"})
	p := e.profileBy(t, "email=x@example.com")
	merges := p["merges"].([]any)
	if p["id"] != e.profileBy(t, "anonymousId=cookie-x")["id"] || len(merges) != 1 {
		t.Fatalf("alias did not merge: %v", p)
	}
	// The merged profile's id still answers, with the survivor.
	if status, _, old := e.call(t, "GET", "/v1/profiles/"+anonID, e.admin, nil); status != 200 || old["id"] != p["id"] {
		t.Fatalf("merged id: %d %v", status, old["id"])
	}
	mergeID := merges[0].(map[string]any)["id"].(string)
	status, _, body := e.call(t, "POST", "/v1/profiles/"+p["id"].(string)+"/unmerge/"+mergeID, e.admin, nil)
	if status != 200 {
		t.Fatalf("unmerge: %d %v", status, body)
	}
	back := e.profileBy(t, "anonymousId=cookie-x")
	if back["id"] != anonID || back["state"] != "anonymous" || back["computed"].(map[string]any)["page_views"] != 1.0 {
		t.Fatalf("restored profile %v", back)
	}
	if status, _, _ := e.call(t, "POST", "/v1/profiles/"+p["id"].(string)+"/unmerge/"+mergeID, e.admin, nil); status != 409 {
		t.Fatalf("second unmerge: %d, want 409", status)
	}
}

package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/parcours/parcours/api"
	"github.com/parcours/parcours/pkg/ingest"
)

// sendRaw posts a Segment call with key as HTTP Basic user and returns the
// whole answer.
func (e *env) sendRaw(t *testing.T, key, path string, body any) (*http.Response, map[string]any) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", e.url+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(key, "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

// A write key sends at most its rate: past the burst the API answers 429
// with Retry-After and a problem document, stores nothing of that request,
// and other keys are not slowed down.
func TestWriteKeyIsRateLimited(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(d *api.Deps) { d.WriteKeyLimit = ingest.NewKeyLimiter(1, 20) })
	other := e.newWriteKey(t, "app")

	var batch []any
	for i := range 20 {
		batch = append(batch, map[string]any{"type": "track", "anonymousId": fmt.Sprintf("a%d", i), "event": "Viewed", "messageId": fmt.Sprintf("m-%d", i)})
	}
	if out := e.mustSend(t, e.write, "/v1/batch", map[string]any{"batch": batch}); out["accepted"] != 20.0 {
		t.Fatalf("the burst: %v", out)
	}
	for _, path := range []string{"/v1/track", "/v1/batch"} {
		body := map[string]any{"anonymousId": "late", "event": "Viewed", "messageId": "late-" + path}
		if path == "/v1/batch" {
			body = map[string]any{"batch": []any{map[string]any{"type": "track", "anonymousId": "late", "event": "Viewed", "messageId": "late-batch"}}}
		}
		resp, out := e.sendRaw(t, e.write, path, body)
		secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != http.StatusTooManyRequests || err != nil || secs < 1 || secs > 2 {
			t.Fatalf("%s past the burst: %d Retry-After %q %v", path, resp.StatusCode, resp.Header.Get("Retry-After"), out)
		}
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") || !strings.Contains(fmt.Sprint(out["detail"]), "nothing of this request was stored") {
			t.Fatalf("%s: the 429 does not say what happened: %s %v", path, resp.Header.Get("Content-Type"), out)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE workspace_id = $1 AND anonymous_id = 'late'`, e.ws.ID); n != 0 {
		t.Fatalf("a refused request stored %d records", n)
	}
	if n := e.count(t, `SELECT count(*) FROM rejected_records WHERE workspace_id = $1`, e.ws.ID); n != 0 {
		t.Fatalf("a refused request quarantined %d records", n)
	}
	// Another key of the same workspace has its own bucket.
	if out := e.mustSend(t, other, "/v1/track", map[string]any{"anonymousId": "late", "event": "Viewed", "messageId": "other-1"}); out["accepted"] != 1.0 {
		t.Fatalf("another key: %v", out)
	}
}

// One person (a userId or an anonymousId) brings at most the cap of records
// a minute; the records over it are not stored but kept in quarantine with
// their reason, and other people are not held back.
func TestRecordsOverThePerProfileCapAreQuarantined(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(d *api.Deps) { d.ProfileCap = ingest.NewProfileCap(5) })
	var batch []any
	for i := range 8 {
		batch = append(batch, map[string]any{"type": "page", "anonymousId": "hammer", "name": "Home", "messageId": fmt.Sprintf("h-%d", i)})
	}
	batch = append(batch, map[string]any{"type": "page", "anonymousId": "someone-else", "name": "Home", "messageId": "s-1"})
	out := e.mustSend(t, e.write, "/v1/batch", map[string]any{"batch": batch})
	if out["accepted"] != 6.0 || out["rejected"] != 3.0 {
		t.Fatalf("a batch over the cap: %v", out)
	}
	errs, _ := out["errors"].([]any)
	if len(errs) != 3 || errs[0].(map[string]any)["field"] != "batch[5].anonymousId" || !strings.Contains(errs[0].(map[string]any)["reason"].(string), "more than 5 records a minute") {
		t.Fatalf("errors: %v", out["errors"])
	}
	// A single call over the cap: refused, kept in quarantine.
	status, single := e.send(t, e.write, "/v1/page", map[string]any{"anonymousId": "hammer", "name": "Home", "messageId": "h-single"})
	if status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(single["detail"]), "quarantine") {
		t.Fatalf("a single call over the cap: %d %v", status, single)
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE workspace_id = $1 AND anonymous_id = 'hammer'`, e.ws.ID); n != 5 {
		t.Fatalf("%d records of the hammered identifier stored, want 5", n)
	}
	status, _, q := e.call(t, "GET", "/v1/rejected", e.admin, nil)
	if status != 200 {
		t.Fatalf("quarantine: %d %v", status, q)
	}
	kept := 0
	for _, r := range q["data"].([]any) {
		r := r.(map[string]any)
		if strings.Contains(r["raw"].(string), "hammer") && strings.Contains(r["reason"].(string), "more than 5 records a minute") {
			kept++
		}
		if strings.Contains(r["reason"].(string), "hammer") {
			t.Errorf("the reason quotes the identifier: %v", r["reason"])
		}
	}
	if kept != 4 {
		t.Fatalf("%d records over the cap in quarantine, want 4: %v", kept, q["data"])
	}
}

package api_test

import (
	"encoding/csv"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/channel/channeltest"
)

// Reports through the API count what a real run did, as JSON and CSV, and
// refuse a period they cannot read.
func TestJourneyReportThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := channeltest.NewSendGrid(t, "SG.report")
	e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{"api_key": "SG.report", "from_email": "hello@shop.example", "base_url": fake.URL})
	e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": "welcome", "name": "Welcome", "channel": "email", "subject": "Welcome", "html": "<p>Hi</p>", "text": "Hi"})
	_, _, j := e.call(t, "POST", "/v1/journeys", e.admin, welcomeJourney)
	id := j["id"].(string)
	e.call(t, "POST", "/v1/journeys/"+id+"/publish", e.admin, nil)
	for _, u := range []string{"ana", "bob"} {
		e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": u, "traits": map[string]any{"email": u + "@example.com"}})
		e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": u, "event": "Signed Up"})
	}
	e.waitForEnded(t, id, 2)

	status, _, r := e.call(t, "GET", "/v1/reports/journeys/"+id, e.admin, nil)
	if status != 200 {
		t.Fatalf("report: %d %v", status, r)
	}
	total := r["total"].(map[string]any)
	if total["entered"] != 2.0 || total["sent"] != 2.0 || total["delivered"] != 0.0 {
		t.Fatalf("total %v", total)
	}
	if n := r["nodes"].([]any)[0].(map[string]any); n["key"] != "send_welcome" || n["sent"] != 2.0 || n["entered"] != 2.0 {
		t.Fatalf("first node %v", n)
	}

	req, _ := http.NewRequest("GET", e.url+"/v1/reports/journeys/"+id+"?format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	rows, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
	if err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || len(rows) != 4 ||
		strings.Join(rows[0][:4], ",") != "node,entered,sent,delivered" || rows[1][0] != "send_welcome" || rows[1][2] != "2" || rows[3][0] != "total" {
		t.Fatalf("CSV %q %v", raw, err)
	}

	status, _, list := e.call(t, "GET", "/v1/reports/journeys", e.admin, nil)
	if status != 200 || len(list["data"].([]any)) != 1 {
		t.Fatalf("journeys report: %d %v", status, list)
	}
	for _, q := range []struct{ query, field string }{
		{"from=yesterday", "from"}, {"tz=Mars/Olympus", "tz"}, {"from=2026-11-05&to=2026-11-01", "from"},
	} {
		status, _, body := e.call(t, "GET", "/v1/reports/journeys/"+id+"?"+q.query, e.admin, nil)
		if status != 422 || body["errors"].([]any)[0].(map[string]any)["field"] != q.field {
			t.Fatalf("%s: %d %v", q.query, status, body)
		}
	}
	if status, _, body := e.call(t, "GET", "/v1/reports/new-customers?lookback=ages", e.admin, nil); status != 422 {
		t.Fatalf("bad lookback: %d %v", status, body)
	}
	if status, _, body := e.call(t, "GET", "/v1/reports/touchpoints?limit=0", e.admin, nil); status != 422 {
		t.Fatalf("bad limit: %d %v", status, body)
	}
	if status, _, body := e.call(t, "GET", "/v1/reports/new-customers", e.admin, nil); status != 200 || body["new_customers"] != 0.0 {
		t.Fatalf("new customers: %d %v", status, body)
	}
}

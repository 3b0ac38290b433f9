package api_test

import (
	"context"
	"encoding/json"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/parcours/parcours/pkg/channel/channeltest"
	"github.com/parcours/parcours/pkg/workspace"
)

// R14: every authenticated route, called by another workspace's admin with
// this workspace's ids, answers 404 and changes nothing. Console routes and
// ids inside bodies, forms and queries: isolation_console_test.go. The routes come
// from /openapi.json, which a test keeps equal to the route table, so a new
// route is covered when it lands.
func TestEveryRouteRefusesAnotherWorkspacesIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()

	// Workspace A: one of everything a route can name.
	fake := channeltest.NewSendGrid(t, "SG.iso")
	e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{"api_key": "SG.iso", "from_email": "hello@shop.example", "base_url": fake.URL})
	_, _, tpl := e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": "hello", "name": "Hello", "channel": "email", "subject": "Hi", "html": "<p>Hi</p>"})
	seg := e.createSegment(t, "everyone", `profile.state != ""`)
	_, _, j := e.call(t, "POST", "/v1/journeys", e.admin, cartJourney)
	e.call(t, "POST", "/v1/journeys/"+j["id"].(string)+"/publish", e.admin, nil)
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "traits": map[string]any{"email": "ana@example.com"}})
	ana := e.profileBy(t, "userId=ana")["id"].(string)
	_, _, hook := e.call(t, "POST", "/v1/segments/"+seg["id"].(string)+"/webhooks", e.admin, map[string]any{"url": fake.URL + "/hook"})
	_, _, sup := e.call(t, "POST", "/v1/suppressions", e.admin, map[string]any{"channel": "email", "address": "bounced@example.com"})
	_, _, bc := e.call(t, "POST", "/v1/broadcasts", e.admin, map[string]any{"name": "News", "segment": "everyone", "template": "hello",
		"schedule": map[string]any{"at": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)}})
	_, _, keys := e.call(t, "GET", "/v1/api-keys", e.admin, nil)
	_, _, rule := e.call(t, "POST", "/v1/validation-rules", e.admin, map[string]any{"name": "no blocked", "source": "web", "rule": `event != "Blocked"`})
	q := url.Values{"mapping": {`{"columns":{"email":{"identifier":"email"}},"event":{"name":"Imported"},"id_column":"n"}`}, "source": {"crm"}, "name": {"A import"}}
	_, _, im := e.do(t, e.admin, "/v1/imports?"+q.Encode(), "text/csv", strings.NewReader("n,email\n1,ana@example.com\n"))
	ids := map[string]string{
		"/v1/templates/": str(tpl["id"]), "/v1/segments/": str(seg["id"]), "/v1/journeys/": str(j["id"]), "/v1/reports/journeys/": str(j["id"]),
		"/v1/profiles/": ana, "/v1/suppressions/": str(sup["id"]), "/v1/broadcasts/": str(bc["id"]),
		"/v1/api-keys/":         str(keys["data"].([]any)[0].(map[string]any)["id"]),
		"/v1/validation-rules/": str(rule["id"]), "/v1/imports/": str(im["id"]),
	}
	for prefix, id := range ids {
		if id == "" {
			t.Fatalf("workspace A has no resource for %s (setup failed)", prefix)
		}
	}
	others := map[string]string{"webhookId": str(hook["id"]), "mergeId": uuid.NewString(), "channel": "email", "name": "welcome"}
	if others["webhookId"] == "" {
		t.Fatalf("segment webhook: %v", hook)
	}

	// Workspace B's admin.
	_, bkeys, _, err := workspace.NewStore(e.pool).Bootstrap(ctx, "intruder", "Intruder")
	if err != nil {
		t.Fatal(err)
	}
	var intruder string
	for _, k := range bkeys {
		if k.Scope == workspace.ScopeAdmin {
			intruder = k.Secret
		}
	}

	status, _, doc := e.call(t, "GET", "/openapi.json", "", nil)
	if status != 200 {
		t.Fatalf("openapi: %d", status)
	}
	param := regexp.MustCompile(`\{([a-zA-Z_]+)\}`)
	var paths []string
	for p := range doc["paths"].(map[string]any) {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	checked := 0
	for _, p := range paths {
		if !strings.HasPrefix(p, "/v1/") || !strings.Contains(p, "{id}") {
			continue
		}
		id := uuid.NewString() // a route naming a kind A has none of: any id
		for prefix, v := range ids {
			if strings.HasPrefix(p, prefix) && len(prefix) > 0 {
				id = v
			}
		}
		if strings.HasPrefix(p, "/v1/reports/journeys/") {
			id = ids["/v1/reports/journeys/"]
		}
		path := param.ReplaceAllStringFunc(p, func(m string) string {
			name := m[1 : len(m)-1]
			if name == "id" {
				return id
			}
			return others[name]
		})
		for method := range doc["paths"].(map[string]any)[p].(map[string]any) {
			method = strings.ToUpper(method)
			// A body the route would accept in A: the refusal must come
			// from the id, not from the body.
			var body any
			switch {
			case method == "PUT" && p == "/v1/journeys/{id}":
				body = cartJourney
			case p == "/v1/segments/{id}/webhooks":
				body = map[string]any{"url": fake.URL + "/hook"}
			case strings.HasSuffix(p, "/test-send"):
				body = map[string]any{"email": "me@example.com"}
			case method != "GET" && method != "DELETE":
				body = map[string]any{}
			}
			status, _, out := e.call(t, method, path, intruder, body)
			raw, _ := json.Marshal(out)
			if status != 404 || strings.Contains(string(raw), id) && !strings.Contains(string(raw), "/"+id) {
				t.Errorf("%s %s by another workspace: %d %s; want 404 and nothing of A", method, p, status, raw)
			}
			checked++
		}
	}
	if checked < 40 {
		t.Fatalf("only %d routes checked", checked)
	}
	if n := fake.Calls(); n != 0 {
		t.Errorf("the intruder's calls sent %d emails through A's channel", n)
	}
	// And A's things are all still there, unchanged.
	for prefix, id := range ids {
		if prefix == "/v1/reports/journeys/" || prefix == "/v1/suppressions/" || prefix == "/v1/api-keys/" || prefix == "/v1/validation-rules/" {
			continue
		}
		if status, _, body := e.call(t, "GET", prefix+id, e.admin, nil); status != 200 {
			t.Errorf("A's %s%s after the intruder: %d %v", prefix, id, status, body)
		}
	}
	if _, _, jj := e.call(t, "GET", "/v1/journeys/"+ids["/v1/journeys/"], e.admin, nil); jj["status"] != "live" {
		t.Errorf("A's journey is %v after the intruder", jj["status"])
	}
	if _, _, b := e.call(t, "GET", "/v1/broadcasts/"+ids["/v1/broadcasts/"], e.admin, nil); b["status"] == "cancelled" {
		t.Errorf("A's broadcast was cancelled by the intruder")
	}
	if _, _, rules := e.call(t, "GET", "/v1/validation-rules", e.admin, nil); len(rules["data"].([]any)) != 1 || rules["data"].([]any)[0].(map[string]any)["enabled"] != true {
		t.Errorf("A's validation rule after the intruder: %v", rules)
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/parcours/parcours/pkg/channel/channeltest"
	"github.com/parcours/parcours/pkg/user"
	"github.com/parcours/parcours/pkg/workspace"
)

// isolation is two workspaces: A holds one of everything a route, a form or
// a body can name; B is the intruder, with its own admin key, write key,
// console admin and a few things of its own to hang A's ids on.
type isolation struct {
	e    *env
	fake *channeltest.SendGrid
	// A's ids.
	tpl, seg, journey, ana, merge, user, writeKeyID, rule, imp, hook, run string
	rejected                                                              int64
	// B's credentials and things.
	bAdmin, bWrite                 string
	bTpl, bSeg, bJourney, bProfile string
	bFake                          *channeltest.SendGrid
	bBrowser                       *browser
	bCSRF                          string
}

// A's words that must never show in an answer to B.
var aMarkers = []string{"A-SUBJECT-SECRET", "A-SEGMENT-SECRET", "A-JOURNEY-SECRET", "Anastasia Secret", "ana@a.example"}

func newIsolation(t *testing.T) *isolation {
	t.Helper()
	ctx := context.Background()
	e := newEnv(t)
	x := &isolation{e: e, fake: channeltest.NewSendGrid(t, "SG.iso")}

	// Workspace A.
	e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{"api_key": "SG.iso", "from_email": "hello@a.example", "base_url": x.fake.URL})
	_, _, tpl := e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": "hello-a", "name": "Hello A", "channel": "email", "subject": "A-SUBJECT-SECRET", "html": "<p>A-SUBJECT-SECRET {{ profile.traits.name }}</p>"})
	_, _, seg := e.call(t, "POST", "/v1/segments", e.admin, map[string]any{"slug": "everyone-a", "name": "A-SEGMENT-SECRET", "rule": `profile.state != ""`})
	_, _, j := e.call(t, "POST", "/v1/journeys", e.admin, strings.Replace(cartJourney, "Cart follow-up", "A-JOURNEY-SECRET", 1))
	x.tpl, x.seg, x.journey = str(tpl["id"]), str(seg["id"]), str(j["id"])
	if status, _, out := e.call(t, "POST", "/v1/journeys/"+x.journey+"/publish", e.admin, nil); status != 200 {
		t.Fatalf("publish A's journey: %d %v", status, out)
	}
	// Ana, with a merge: a visitor's cookie, then her account, then both.
	e.mustSend(t, e.write, "/v1/page", map[string]any{"anonymousId": "cookie-a", "name": "Home", "messageId": "a-pv"})
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "messageId": "a-id", "traits": map[string]any{"email": "ana@a.example", "name": "Anastasia Secret"}})
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "anonymousId": "cookie-a", "messageId": "a-link"})
	p := e.profileBy(t, "userId=ana")
	x.ana = str(p["id"])
	if ms, _ := p["merges"].([]any); len(ms) == 1 {
		x.merge = str(ms[0].(map[string]any)["id"])
	}
	// A run of A's journey, waiting for an order.
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Cart Updated", "messageId": "a-cart", "properties": map[string]any{"cart_id": "c1"}})
	e.waitFor(t, "A's run", func() bool { return len(e.runs(t, x.journey)) == 1 })
	x.run = str(e.runs(t, x.journey)[0]["workflow_id"])
	// A record A's validation rule rejected (B has no rule: it would pass there).
	_, _, rule := e.call(t, "POST", "/v1/validation-rules", e.admin, map[string]any{"name": "no blocked", "source": "web", "rule": `event != "Blocked"`})
	x.rule = str(rule["id"])
	if status, out := e.send(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Blocked", "messageId": "a-blocked"}); status != 400 {
		t.Fatalf("A's rule did not reject: %d %v", status, out)
	}
	_, _, rej := e.call(t, "GET", "/v1/rejected", e.admin, nil)
	if data, _ := rej["data"].([]any); len(data) == 1 {
		x.rejected = int64(data[0].(map[string]any)["id"].(float64))
	}
	_, _, keys := e.call(t, "GET", "/v1/api-keys", e.admin, nil)
	for _, k := range keys["data"].([]any) {
		if k := k.(map[string]any); k["scope"] == "write" {
			x.writeKeyID = str(k["id"])
		}
	}
	u, err := user.NewStore(e.pool).Create(ctx, e.ws.ID, "boss@a.example", "Boss", user.RoleAdmin, "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	x.user = u.ID
	q := url.Values{"mapping": {`{"columns":{"email":{"identifier":"email"}},"event":{"name":"Imported"},"id_column":"n"}`}, "source": {"crm"}, "name": {"A import"}}
	_, _, im := e.do(t, e.admin, "/v1/imports?"+q.Encode(), "text/csv", strings.NewReader("n,email\n1,ana@a.example\n"))
	x.imp = str(im["id"])
	_, _, hook := e.call(t, "POST", "/v1/segments/"+x.seg+"/webhooks", e.admin, map[string]any{"url": x.fake.URL + "/hook"})
	x.hook = str(hook["id"])
	for name, v := range map[string]string{"template": x.tpl, "segment": x.seg, "journey": x.journey, "profile": x.ana, "merge": x.merge, "run": x.run,
		"rule": x.rule, "write key": x.writeKeyID, "import": x.imp, "hook": x.hook} {
		if v == "" {
			t.Fatalf("workspace A has no %s (setup failed)", name)
		}
	}
	if x.rejected == 0 {
		t.Fatal("workspace A has no rejected record (setup failed)")
	}

	// Workspace B.
	wsB, bkeys, _, err := workspace.NewStore(e.pool).Bootstrap(ctx, "intruder", "Intruder")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range bkeys {
		switch k.Scope {
		case workspace.ScopeAdmin:
			x.bAdmin = k.Secret
		case workspace.ScopeWrite:
			x.bWrite = k.Secret
		}
	}
	x.bFake = channeltest.NewSendGrid(t, "SG.b")
	e.call(t, "PUT", "/v1/channels/email", x.bAdmin, map[string]any{"api_key": "SG.b", "from_email": "hello@b.example", "base_url": x.bFake.URL})
	_, _, btpl := e.call(t, "POST", "/v1/templates", x.bAdmin, map[string]any{"slug": "hello-b", "name": "Hello B", "channel": "email", "subject": "Hi B", "html": "<p>Hi {{ profile.traits.name }}</p>"})
	_, _, bseg := e.call(t, "POST", "/v1/segments", x.bAdmin, map[string]any{"slug": "everyone-b", "name": "Everyone B", "rule": `profile.state != ""`})
	// B's journey sends A's template, by its slug.
	_, _, bj := e.call(t, "POST", "/v1/journeys", x.bAdmin, `{"name": "B journey", "trigger": {"type": "api"}, "entry": {"re_entry": "every_time"}, "start": "mail",
		"nodes": [{"id": "mail", "type": "send", "channel": "email", "template": "hello-a", "next": "done"}, {"id": "done", "type": "exit"}]}`)
	x.bTpl, x.bSeg, x.bJourney = str(btpl["id"]), str(bseg["id"]), str(bj["id"])
	if status, _, out := e.call(t, "POST", "/v1/journeys/"+x.bJourney+"/publish", x.bAdmin, nil); status != 200 {
		t.Fatalf("publish B's journey: %d %v", status, out)
	}
	e.mustSend(t, x.bWrite, "/v1/identify", map[string]any{"userId": "bob", "messageId": "b-id", "traits": map[string]any{"email": "bob@b.example", "name": "Bob"}})
	if status, _, bp := e.call(t, "GET", "/v1/profiles/lookup?userId=bob", x.bAdmin, nil); status == 200 {
		x.bProfile = str(bp["id"])
	}
	for name, v := range map[string]string{"template": x.bTpl, "segment": x.bSeg, "journey": x.bJourney, "profile": x.bProfile} {
		if v == "" {
			t.Fatalf("workspace B has no %s (setup failed)", name)
		}
	}
	if _, err := user.NewStore(e.pool).Create(ctx, wsB.ID, "mallory@b.example", "Mallory", user.RoleAdmin, "a long enough password"); err != nil {
		t.Fatal(err)
	}
	x.bBrowser = newBrowser(t, e)
	_, page := x.bBrowser.do(t, "GET", "/login", nil)
	resp, body := x.bBrowser.do(t, "POST", "/login", url.Values{"email": {"mallory@b.example"}, "password": {"a long enough password"},
		"workspace": {"intruder"}, "csrf": {csrfOf(t, page)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("B's sign-in: %d\n%.1500s", resp.StatusCode, body)
	}
	_, home := x.bBrowser.do(t, "GET", "/", nil)
	x.bCSRF = csrfOf(t, home)
	return x
}

// leaks names the first of A's markers that body holds, but for those the
// request itself typed (a form shows back what was entered).
func leaks(body string, typed ...string) string {
	for _, m := range aMarkers {
		if strings.Contains(body, m) && !slices.Contains(typed, m) {
			return m
		}
	}
	return ""
}

// unchanged checks that A still has everything as it was, and that nothing
// was sent through A's channel since calls.
func (x *isolation) unchanged(t *testing.T, calls int) {
	t.Helper()
	e := x.e
	ctx := context.Background()
	status, _, p := e.call(t, "GET", "/v1/profiles/"+x.ana, e.admin, nil)
	if status != 200 || str(p["id"]) != x.ana {
		t.Errorf("A's profile after the intruder: %d %v", status, p)
	} else if ms, _ := p["merges"].([]any); len(ms) != 1 || ms[0].(map[string]any)["undone_at"] != nil {
		t.Errorf("A's merge after the intruder: %v", p["merges"])
	}
	if _, _, sg := e.call(t, "GET", "/v1/segments/"+x.seg, e.admin, nil); sg["name"] != "A-SEGMENT-SECRET" || sg["rule"] != `profile.state != ""` {
		t.Errorf("A's segment after the intruder: %v", sg)
	}
	if _, _, tp := e.call(t, "GET", "/v1/templates/"+x.tpl, e.admin, nil); tp["subject"] != "A-SUBJECT-SECRET" {
		t.Errorf("A's template after the intruder: %v", tp)
	}
	if _, _, j := e.call(t, "GET", "/v1/journeys/"+x.journey, e.admin, nil); j["status"] != "live" || j["name"] != "A-JOURNEY-SECRET" {
		t.Errorf("A's journey after the intruder: %v %v", j["status"], j["name"])
	}
	if runs := e.runs(t, x.journey); len(runs) != 1 || runs[0]["ended_at"] != nil {
		t.Errorf("A's run after the intruder: %v", runs)
	}
	if status, out := e.send(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Still Here", "messageId": "a-still-" + uuid.NewString()}); status != 200 {
		t.Errorf("A's write key after the intruder: %d %v", status, out)
	}
	if u, err := user.NewStore(e.pool).Get(ctx, e.ws.ID, x.user); err != nil || u.Role != user.RoleAdmin || u.DisabledAt != nil {
		t.Errorf("A's user after the intruder: %+v %v", u, err)
	}
	if _, _, rules := e.call(t, "GET", "/v1/validation-rules", e.admin, nil); fmt.Sprint(rules["data"].([]any)[0].(map[string]any)["enabled"]) != "true" {
		t.Errorf("A's validation rule after the intruder: %v", rules)
	}
	if n := e.count(t, `SELECT count(*) FROM rejected_records WHERE id = $1 AND replayed_at IS NULL AND workspace_id = $2`, x.rejected, e.ws.ID); n != 1 {
		t.Error("A's quarantined record was replayed by the intruder")
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE name = 'Blocked'`); n != 0 {
		t.Errorf("A's quarantined record was stored (%d)", n)
	}
	if status, _, hook := e.call(t, "GET", "/v1/segments/"+x.seg+"/webhooks/"+x.hook, e.admin, nil); status != 200 {
		t.Errorf("A's segment webhook after the intruder: %d %v", status, hook)
	}
	if n := x.fake.Calls(); n != calls {
		t.Errorf("the intruder sent %d emails through A's channel", n-calls)
	}
	if n := x.bFake.Calls(); n != 0 {
		t.Errorf("the intruder's own channel sent %d emails (with A's data?)", n)
	}
}

// R14, console: every console route that names something, called from
// another workspace's admin session with this workspace's ids, answers 404,
// shows nothing of it and changes nothing. The routes come from the router,
// so a new console route is covered when it lands.
func TestEveryConsoleRouteRefusesAnotherWorkspacesIDs(t *testing.T) {
	t.Parallel()
	x := newIsolation(t)
	calls := x.fake.Calls()

	// The id each console route's :id names in A (longest prefix first).
	byPrefix := map[string]string{
		"/profiles/": x.ana, "/segments/": x.seg, "/journeys/": x.journey, "/templates/": x.tpl,
		"/settings/users/": x.user, "/data/keys/": x.writeKeyID, "/data/imports/": x.imp,
		"/data/quarantine/rules/": x.rule, "/mailbox/": uuid.NewString(),
	}
	// A form each POST would accept in A: the refusal must come from the id.
	forms := map[string]url.Values{
		"/profiles/:id/erase":                {"confirm": {"ana@a.example"}},
		"/segments/:id":                      {"name": {"Taken over"}, "rule": {`profile.state == "known"`}},
		"/journeys/:id/publish":              {"confirm": {"yes"}},
		"/journeys/:id/edit":                 {"action": {"save"}, "name": {"Taken over"}},
		"/journeys/:id/simulate":             {"person": {"ana@a.example"}},
		"/templates/:id":                     {"name": {"Taken over"}, "subject": {"Taken over"}, "html": {"<p>x</p>"}},
		"/templates/:id/preview":             {"subject": {"x"}, "html": {"<p>{{ profile.traits.name }}</p>"}, "preview_for": {"ana@a.example"}},
		"/templates/:id/test-send":           {"email": {"me@b.example"}},
		"/settings/users/:id/role":           {"role": {"viewer"}},
		"/data/keys/:id/revoke":              {"confirm": {"yes"}},
		"/data/quarantine/rules/:id":         {"enabled": {""}},
		"/mailbox/:id/events":                {"event": {"open"}},
		"/profiles/:id/merges/:mergeId/undo": {},
	}
	type route struct{ method, path string }
	var routes []route
	for _, r := range x.e.server.Echo().Routes() {
		if strings.HasPrefix(r.Path, "/v1/") || strings.HasPrefix(r.Path, "/dev/") || strings.HasPrefix(r.Path, "/assets/") || !strings.Contains(r.Path, ":") {
			continue
		}
		routes = append(routes, route{r.Method, r.Path})
	}
	sort.Slice(routes, func(i, j int) bool { return routes[i].path+routes[i].method < routes[j].path+routes[j].method })
	checked := 0
	for _, r := range routes {
		id, best := uuid.NewString(), ""
		for prefix, v := range byPrefix {
			if strings.HasPrefix(r.path, prefix) && len(prefix) > len(best) {
				id, best = v, prefix
			}
		}
		if best == "" {
			t.Errorf("console route %s %s: no id of A for it; add its prefix to the test", r.method, r.path)
			continue
		}
		path := strings.NewReplacer(":id", id, ":mergeId", x.merge).Replace(r.path)
		var form url.Values
		if r.method == http.MethodPost {
			form = url.Values{"csrf": {x.bCSRF}}
			for k, v := range forms[r.path] {
				form[k] = v
			}
		}
		resp, body := x.bBrowser.do(t, r.method, path, form)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s from another workspace's session: %d, want 404\n%.600s", r.method, r.path, resp.StatusCode, body)
		}
		if m := leaks(body); m != "" {
			t.Errorf("%s %s from another workspace's session shows %q", r.method, r.path, m)
		}
		checked++
	}
	if checked < 30 {
		t.Fatalf("only %d console routes checked", checked)
	}
	x.unchanged(t, calls)
}

// R14, ids in bodies, forms and queries: another workspace's admin names
// this workspace's profiles, segments, templates, merges, runs, quarantined
// records and webhooks inside its own requests (on its own journeys,
// templates, segments and profiles). Each is refused as unknown — 404, or
// 422 naming the field — shows nothing of A, and changes nothing in A.
func TestIDsInBodiesAndFormsStayInTheirWorkspace(t *testing.T) {
	t.Parallel()
	x := newIsolation(t)
	e := x.e
	calls := x.fake.Calls()
	later := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)

	api := []struct {
		name, method, path string
		body               any
		status             int
		field              string // of a 422
	}{
		{"preview B's template for A's profile", "POST", "/v1/templates/" + x.bTpl + "/preview", map[string]any{"profile_id": x.ana}, 422, "profile_id"},
		{"test-send B's template to A's profile", "POST", "/v1/templates/" + x.bTpl + "/test-send", map[string]any{"profile_id": x.ana}, 422, "profile_id"},
		{"enter A's profile in B's journey", "POST", "/v1/journeys/" + x.bJourney + "/entries", map[string]any{"profile_id": x.ana}, 422, "profile_id"},
		{"simulate B's journey for A's profile", "POST", "/v1/journeys/" + x.bJourney + "/simulate", map[string]any{"profile_id": x.ana}, 422, "profile_id"},
		{"broadcast to A's segment", "POST", "/v1/broadcasts", map[string]any{"name": "x", "segment": "everyone-a", "template": "hello-b", "channel": "email", "schedule": map[string]any{"at": later}}, 422, "segment"},
		{"broadcast to A's segment id", "POST", "/v1/broadcasts", map[string]any{"name": "x", "segment": x.seg, "template": "hello-b", "channel": "email", "schedule": map[string]any{"at": later}}, 422, "segment"},
		{"broadcast A's template", "POST", "/v1/broadcasts", map[string]any{"name": "x", "segment": "everyone-b", "template": "hello-a", "channel": "email", "schedule": map[string]any{"at": later}}, 422, "template"},
		{"undo A's merge on B's profile", "POST", "/v1/profiles/" + x.bProfile + "/unmerge/" + x.merge, nil, 404, ""},
		{"A's webhook under B's segment", "GET", "/v1/segments/" + x.bSeg + "/webhooks/" + x.hook, nil, 404, ""},
		{"delete A's webhook under B's segment", "DELETE", "/v1/segments/" + x.bSeg + "/webhooks/" + x.hook, nil, 404, ""},
		{"retry A's webhook under B's segment", "POST", "/v1/segments/" + x.bSeg + "/webhooks/" + x.hook + "/retry", map[string]any{}, 404, ""},
		{"A's run under B's journey", "GET", "/v1/journeys/" + x.bJourney + "/runs?workflow_id=" + url.QueryEscape(x.run), nil, 404, ""},
		{"remove A's run under B's journey", "DELETE", "/v1/journeys/" + x.bJourney + "/runs?workflow_id=" + url.QueryEscape(x.run), nil, 404, ""},
	}
	for _, tt := range api {
		status, _, out := e.call(t, tt.method, tt.path, x.bAdmin, tt.body)
		raw, _ := json.Marshal(out)
		if status != tt.status {
			t.Errorf("%s: %d %s; want %d", tt.name, status, raw, tt.status)
			continue
		}
		if tt.field != "" {
			errs, _ := out["errors"].([]any)
			if len(errs) == 0 || errs[0].(map[string]any)["field"] != tt.field {
				t.Errorf("%s: 422 names %v, want the field %s", tt.name, out["errors"], tt.field)
			}
		}
		if m := leaks(string(raw)); m != "" {
			t.Errorf("%s: the answer shows %q", tt.name, m)
		}
	}

	// Answers that succeed, about nothing of A.
	status, _, res := e.call(t, "POST", "/v1/rejected/replay", x.bAdmin, map[string]any{"ids": []int64{x.rejected}})
	if status != 200 || res["replayed"] != 0.0 || res["still_rejected"] != 0.0 {
		t.Errorf("B replays A's quarantined record: %d %v", status, res)
	}
	status, _, dl := e.call(t, "GET", "/v1/deliveries?profile_id="+x.ana, x.bAdmin, nil)
	if data, _ := dl["data"].([]any); status != 200 || len(data) != 0 {
		t.Errorf("B lists A's profile's deliveries: %d %v", status, dl)
	}
	status, _, pv := e.call(t, "POST", "/v1/segments/preview", x.bAdmin, map[string]any{"rule": `in_segment("everyone-a")`})
	if raw, _ := json.Marshal(pv); status == 200 && (pv["count"] != 0.0 || leaks(string(raw)) != "" || strings.Contains(string(raw), x.ana)) {
		t.Errorf("B previews membership of A's segment: %s", raw)
	} else if status != 200 && status != 422 {
		t.Errorf("B previews membership of A's segment: %d %s", status, raw)
	}
	// B's journey names A's template by its slug: the simulation renders
	// nothing of it.
	status, _, sim := e.call(t, "POST", "/v1/journeys/"+x.bJourney+"/simulate", x.bAdmin, map[string]any{"traits": map[string]any{"email": "bob@b.example"}})
	if raw, _ := json.Marshal(sim); leaks(string(raw)) != "" || status >= 500 {
		t.Errorf("B's journey naming A's template: %d %s", status, raw)
	}

	// Console forms and queries from B's admin session.
	b, csrf := x.bBrowser, x.bCSRF
	console := []struct {
		name, method, path string
		form               url.Values
		status             int
	}{
		{"preview with A's segment id", "POST", "/segments/preview", url.Values{"id": {x.seg}, "rule": {`profile.state != ""`}}, 404},
		{"simulate B's journey for A's profile", "POST", "/journeys/" + x.bJourney + "/simulate", url.Values{"profile_id": {x.ana}}, 422},
		{"simulate B's journey for A's email", "POST", "/journeys/" + x.bJourney + "/simulate", url.Values{"person": {"ana@a.example"}}, 422},
		{"reports of A's journey", "GET", "/reports?journey=" + x.journey, nil, 404},
		{"undo A's merge on B's profile (page)", "GET", "/profiles/" + x.bProfile + "/merges/" + x.merge + "/undo", nil, 404},
		{"undo A's merge on B's profile", "POST", "/profiles/" + x.bProfile + "/merges/" + x.merge + "/undo", url.Values{}, 404},
		{"a journey thanking A's segment", "POST", "/journeys/new", url.Values{"scenario": {"thank_you"}, "name": {"Thanks"}, "segment": {"everyone-a"}, "template_thank_you": {"hello-a"}}, 422},
		{"B's profile split from A's", "GET", "/profiles/" + x.bProfile + "?split=" + x.ana, nil, 200},
		{"B's template previewed for A's email", "GET", "/templates/" + x.bTpl + "?preview_for=" + url.QueryEscape("ana@a.example"), nil, 200},
		{"B's template previewed for A's email (form)", "POST", "/templates/" + x.bTpl + "/preview", url.Values{"subject": {"x"}, "html": {"<p>{{ profile.traits.name }}</p>"}, "preview_for": {"ana@a.example"}}, 422},
	}
	for _, tt := range console {
		if tt.form != nil {
			tt.form.Set("csrf", csrf)
		}
		resp, body := b.do(t, tt.method, tt.path, tt.form)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: %d, want %d\n%.600s", tt.name, resp.StatusCode, tt.status, body)
		}
		if m := leaks(body, tt.form.Get("person"), tt.form.Get("preview_for"), mustQuery(t, tt.path).Get("preview_for")); m != "" {
			t.Errorf("%s: the page shows %q", tt.name, m)
		}
	}
	// Replaying A's quarantined record from B's console: nothing replayed.
	resp, _ := b.do(t, "POST", "/data/quarantine/replay", url.Values{"id": {fmt.Sprint(x.rejected)}, "csrf": {csrf}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusNotFound && !(resp.StatusCode == http.StatusSeeOther && strings.Contains(loc, "accepted=0")) {
		t.Errorf("B's console replays A's quarantined record: %d %s", resp.StatusCode, loc)
	}
	if n := e.count(t, `SELECT count(*) FROM journeys j JOIN workspaces w ON w.id = j.workspace_id WHERE w.slug = 'intruder'`); n != 1 {
		t.Errorf("B has %d journeys, want its own one only", n)
	}
	x.unchanged(t, calls)
}

func mustQuery(t *testing.T, path string) url.Values {
	t.Helper()
	u, err := url.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

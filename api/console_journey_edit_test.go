package api_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/user"
)

// A marketer builds a journey from scratch in the console: a step saved
// without its template is refused with the error at that step; fixed, it
// is saved and drawn; published, a run waits at the wait step, listed on
// the step's page with a link to the Temporal UI; a changed wait is
// published only after the preview shows the run on the changed step; a
// simulation for a profile shows the email's subject as rendered for her.
func TestConsoleJourneyFromScratchToSimulation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := newBrowser(t, e)
	token := b.signIn(t, "mia@shop.example", e.consoleUser(t, "mia@shop.example", user.RoleMarketer))
	if status, _, body := e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": "welcome", "name": "Welcome", "channel": "email",
		"subject": `Welcome, {{ profile.traits.first_name | default: "friend" }}!`, "html": "<p>Hello</p>"}); status != 201 {
		t.Fatalf("template: %d %v", status, body)
	}
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "traits": map[string]any{"email": "ana@shop.example", "first_name": "Ana"}})

	// From scratch: a draft that only ends, opened in the editor.
	_, page := b.do(t, "GET", "/journeys/new", nil)
	if !strings.Contains(page, `id="scratch-form"`) {
		t.Fatal("no “Start from scratch” on /journeys/new")
	}
	resp, body := b.do(t, "POST", "/journeys/scratch", url.Values{"csrf": {token}, "name": {"Onboarding"}, "trigger_event": {"Signed Up"}})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(loc, "/edit?done=created") {
		t.Fatalf("create from scratch: %d %s\n%.2000s", resp.StatusCode, loc, body)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(loc, "/journeys/"), "/edit?done=created")
	base := url.Values{"csrf": {token}, "name": {"Onboarding"}, "trigger.type": {"event"}, "trigger.event": {"Signed Up"},
		"entry.re_entry": {"once"}, "start": {"end"}, "nodes": {"1"}, "n0.id": {"end"}, "n0.type": {"exit"}}

	// Adding a step after the start re-renders the form with it wired in, unsaved.
	add := cloneValues(base)
	add.Set("action", "add")
	add.Set("add_kind", "send")
	add.Set("add_after", "")
	resp, body = b.do(t, "POST", "/journeys/"+id+"/edit", add)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="n1.template"`) || !regexp.MustCompile(`<option value="send" selected>`).MatchString(body) {
		t.Fatalf("add a step: %d\n%.3000s", resp.StatusCode, body)
	}

	// Saved without a template: refused, the error at the send step's field.
	form := cloneValues(base)
	form.Set("action", "save")
	form.Set("start", "send")
	form.Set("nodes", "3")
	for k, v := range map[string]string{"n1.id": "send", "n1.type": "send", "n1.channel": "email", "n1.template": "", "n1.next": "wait",
		"n2.id": "wait", "n2.type": "wait", "n2.wait_mode": "duration", "n2.duration": "1d", "n2.next": "end"} {
		form.Set(k, v)
	}
	resp, body = b.do(t, "POST", "/journeys/"+id+"/edit", form)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("save without template: %d\n%.2000s", resp.StatusCode, body)
	}
	node := body[strings.Index(body, `id="node-1"`):]
	node = node[:strings.Index(node, "</fieldset>")]
	if !strings.Contains(node, `id="f-n1-template-error">choose the template this step sends`) || !strings.Contains(node, `aria-invalid="true"`) {
		t.Errorf("the send step does not say what is wrong:\n%s", node)
	}
	if !strings.Contains(body, `href="#node-1">Step send (Send a message), template</a>`) {
		t.Error("the error summary does not point at the step")
	}
	if j := getJourney(t, e, id); len(j.Draft.Nodes) != 1 {
		t.Fatalf("a refused form changed the draft: %+v", j.Draft.Nodes)
	}

	// Fixed: saved, and the diagram shows the saved draft.
	form.Set("n1.template", "welcome")
	resp, body = b.do(t, "POST", "/journeys/"+id+"/edit", form)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(resp.Header.Get("Location"), "/edit?done=saved") {
		t.Fatalf("save: %d\n%.2000s", resp.StatusCode, body)
	}
	if j := getJourney(t, e, id); len(j.Draft.Nodes) != 3 || j.Draft.Start != "send" || j.Draft.Nodes[1].Template != "welcome" {
		t.Fatalf("saved draft %+v", j.Draft)
	}
	_, page = b.do(t, "GET", "/journeys/"+id+"/edit?done=saved", nil)
	if d := pagePart(page, `id="diagram"`, "</svg>"); !strings.Contains(d, "Send “Welcome”") || !strings.Contains(d, "1 day") {
		t.Errorf("the diagram is not the saved draft:\n%s", d)
	}

	// The YAML is checked the same way, and its errors name the step.
	resp, body = b.do(t, "POST", "/journeys/"+id+"/edit", url.Values{"csrf": {token}, "action": {"yaml"},
		"yaml": {"name: Onboarding\ntrigger: {type: event, event: Signed Up}\nentry: {re_entry: once}\nstart: send\nnodes:\n- {id: send, type: send, channel: email, next: end}\n- {id: end, type: exit}\n"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Step send › template</a>: a send needs a template slug") {
		t.Errorf("bad YAML: %d\n%.3000s", resp.StatusCode, pagePart(body, `id="problems"`, "</div>"))
	}

	// Published at once (nothing runs yet); a sign-up waits at the wait.
	resp, _ = b.do(t, "POST", "/journeys/"+id+"/publish", url.Values{"csrf": {token}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(resp.Header.Get("Location"), "?done=publish") {
		t.Fatalf("first publish: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Signed Up"})
	e.waitFor(t, "the run to wait", func() bool {
		rs := e.runs(t, id)
		return len(rs) == 1 && rs[0]["node"] == "wait"
	})
	_, page = b.do(t, "GET", "/journeys/"+id, nil)
	if !strings.Contains(page, `href="/journeys/`+id+`/runs?node=wait"`) {
		t.Error("the journey page does not link the wait step to who is there")
	}
	resp, page = b.do(t, "GET", "/journeys/"+id+"/runs?node=wait", nil)
	table := pagePart(page, `id="node-runs"`, "</table>")
	if resp.StatusCode != http.StatusOK || !strings.Contains(table, ">Ana</a>") || !strings.Contains(table, `href="http://localhost:8233/namespaces/`) {
		t.Fatalf("runs at the wait: %d\n%s", resp.StatusCode, table)
	}
	if _, page = b.do(t, "GET", "/journeys/"+id+"/runs?node=send", nil); !strings.Contains(page, "Nobody is at this step now.") {
		t.Error("the send step lists runs that moved on")
	}

	// The wait becomes two days: publishing asks first, showing the run on it.
	form.Set("n2.duration", "2d")
	if resp, body = b.do(t, "POST", "/journeys/"+id+"/edit", form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save 2d: %d\n%.2000s", resp.StatusCode, body)
	}
	resp, _ = b.do(t, "POST", "/journeys/"+id+"/publish", url.Values{"csrf": {token}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/journeys/"+id+"/publish" {
		t.Fatalf("publish without the preview: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if j := getJourney(t, e, id); *j.PublishedVersion != 1 {
		t.Fatal("published without confirmation")
	}
	_, page = b.do(t, "GET", "/journeys/"+id+"/publish", nil)
	changed := pagePart(page, `id="changed"`, "</ul>")
	if !strings.Contains(changed, "2 days") || !strings.Contains(changed, "Was: Wait: 1 day") ||
		!strings.Contains(page, "<strong>1 runs in flight</strong>") || !strings.Contains(page, "1 of them are on steps this change modifies") {
		t.Fatalf("preview:\n%.4000s", pagePart(page, `<main`, "</main>"))
	}
	seen := regexp.MustCompile(`name="seen" value="([^"]+)"`).FindStringSubmatch(page)[1]
	resp, body = b.do(t, "POST", "/journeys/"+id+"/publish", url.Values{"csrf": {token}, "confirm": {"yes"}, "seen": {"2001-01-01T00:00:00Z"}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "changed since you opened this preview") {
		t.Fatalf("stale confirmation: %d", resp.StatusCode)
	}
	resp, _ = b.do(t, "POST", "/journeys/"+id+"/publish", url.Values{"csrf": {token}, "confirm": {"yes"}, "seen": {seen}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirmed publish: %d", resp.StatusCode)
	}
	if j := getJourney(t, e, id); *j.PublishedVersion != 2 {
		t.Fatalf("version %d after confirming", *j.PublishedVersion)
	}

	// Simulate for Ana, found by her email: the subject as she would read it.
	resp, body = b.do(t, "POST", "/journeys/"+id+"/simulate", url.Values{"csrf": {token}, "person": {"ANA@shop.example"}, "traits": {"plan = pro"}})
	result := pagePart(body, `id="simulation"`, "</section>")
	for _, want := range []string{"Enters the journey", "reached the end", `class="sim-subject">Welcome, Ana!<`, "waited 2 days", "to ana@shop.example"} {
		if !strings.Contains(result, want) {
			t.Errorf("simulation lacks %q: %d\n%s", want, resp.StatusCode, result)
		}
	}
	resp, body = b.do(t, "POST", "/journeys/"+id+"/simulate", url.Values{"csrf": {token}, "person": {"nobody@shop.example"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "no profile has this identifier") {
		t.Errorf("simulate for nobody: %d", resp.StatusCode)
	}
	if rs := e.runs(t, id); len(rs) != 1 {
		t.Errorf("simulations started runs: %d", len(rs))
	}

	// A viewer may simulate and look, not edit.
	v := newBrowser(t, e)
	v.signIn(t, "vic@shop.example", e.consoleUser(t, "vic@shop.example", user.RoleViewer))
	if resp, _ := v.do(t, "GET", "/journeys/"+id+"/edit", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("viewer opens the editor: %d", resp.StatusCode)
	}
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func getJourney(t *testing.T, e *env, id string) journey.Journey {
	t.Helper()
	j, err := e.server.Journeys.Get(context.Background(), e.ws.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// pagePart cuts s from the first from to the next to ("" when absent).
func pagePart(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s, to); j >= 0 {
		return s[:j]
	}
	return s
}

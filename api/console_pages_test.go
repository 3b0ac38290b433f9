package api_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/user"
)

// The scenario form refuses what it cannot use, says why next to the
// field, and creates nothing; a viewer cannot create journeys or change
// templates; outside `parcours dev` the mailbox does not exist.
func TestConsoleJourneyAndTemplateForms(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := newBrowser(t, e)
	token := b.signIn(t, "mia@shop.example", e.consoleUser(t, "mia@shop.example", user.RoleMarketer))

	form := url.Values{"csrf": {token}, "scenario": {"abandoned_cart"}, "name": {"Cart rescue"},
		"trigger_event": {"Cart Updated"}, "duration_wait_order": {"90 minutes"}, "duration_wait_day": {"1d"},
		"template_rescue_1": {"__create__"}, "template_rescue_2": {"no-such-template"}}
	resp, body := b.do(t, "POST", "/journeys/new", form)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad scenario form: %d\n%.2000s", resp.StatusCode, body)
	}
	for _, want := range []string{"write a duration such as 30m, 2h, 2d or 1w", "choose one of the templates, or the starter template", `value="90 minutes"`, `aria-invalid="true"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the form's answer lacks %q", want)
		}
	}
	if js, err := journeysOf(e); err != nil || len(js) != 0 {
		t.Fatalf("a refused form created journeys: %v %v", js, err)
	}

	// Fixed: created as a draft with the chosen wait and starter emails.
	form.Set("duration_wait_order", "2h")
	form.Set("template_rescue_2", "__create__")
	resp, body = b.do(t, "POST", "/journeys/new", form)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/journeys/") {
		t.Fatalf("scenario form: %d %s\n%.2000s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	js, err := journeysOf(e)
	if err != nil || len(js) != 1 || js[0].Name != "Cart rescue" || js[0].Status != "draft" || js[0].Draft.Nodes[0].Timeout != "2h" {
		t.Fatalf("created %+v %v", js, err)
	}
	ts, err := e.ledger.Templates.List(context.Background(), e.ws.ID)
	if err != nil || len(ts) != 2 {
		t.Fatalf("starter templates %+v %v", ts, err)
	}
	_, page := b.do(t, "GET", resp.Header.Get("Location"), nil)
	for _, want := range []string{"Wait for an event", "“Order Completed”, up to 2 hours", "if “Order Completed” comes", "after 2 hours", "Send “Cart reminder”", "Send “Cart coupon”"} {
		if !strings.Contains(page, want) {
			t.Errorf("journey page lacks %q", want)
		}
	}

	// A template that does not compile is not saved; the field says where.
	tpl := ts[0]
	resp, body = b.do(t, "POST", "/templates/"+tpl.ID, url.Values{"csrf": {token}, "name": {tpl.Name}, "subject": {"Hi {% if profile.traits.first_name %}there"}, "html": {tpl.HTML}, "text": {tpl.Text}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `id="subject-error"`) || !strings.Contains(body, "The template was not saved") {
		t.Fatalf("broken subject: %d\n%.3000s", resp.StatusCode, body)
	}
	if got, _ := e.ledger.Templates.Get(context.Background(), e.ws.ID, tpl.ID); got.Subject != tpl.Subject {
		t.Fatalf("a broken subject was saved: %q", got.Subject)
	}
	// Previewing for someone unknown says so next to the field.
	resp, body = b.do(t, "POST", "/templates/"+tpl.ID+"/preview", url.Values{"csrf": {token}, "name": {tpl.Name}, "subject": {tpl.Subject}, "html": {tpl.HTML}, "preview_for": {"nobody@example.com"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "no profile has this identifier") {
		t.Fatalf("preview for nobody: %d\n%.3000s", resp.StatusCode, body)
	}
	// Previewing a template that renders a partial that does not exist says
	// so next to the field (it answered 500 before R21 found it).
	resp, body = b.do(t, "POST", "/templates/"+tpl.ID+"/preview", url.Values{"csrf": {token}, "name": {tpl.Name}, "subject": {tpl.Subject}, "html": {"<p>{% render 'nowhere' %}</p>"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "which is not a partial of this workspace") {
		t.Fatalf("preview with a missing partial: %d\n%.3000s", resp.StatusCode, body)
	}

	// A viewer reads but does not change.
	v := newBrowser(t, e)
	vtoken := v.signIn(t, "vic@shop.example", e.consoleUser(t, "vic@shop.example", user.RoleViewer))
	for _, path := range []string{"/journeys/new", "/templates/" + tpl.ID, "/journeys/" + js[0].ID + "/publish"} {
		resp, body := v.do(t, "POST", path, url.Values{"csrf": {vtoken}, "scenario": {"welcome"}, "name": {"x"}})
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Your role (viewer)") {
			t.Errorf("viewer POST %s: %d", path, resp.StatusCode)
		}
	}
	if resp, _ := v.do(t, "GET", "/journeys/"+js[0].ID, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("viewer reads the journey: %d", resp.StatusCode)
	}

	// No dev mailbox here: its pages and its SendGrid endpoint are 404,
	// the endpoint with a problem document, and the menu has no Mailbox.
	if resp, body := b.do(t, "GET", "/mailbox", nil); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "only in `parcours dev`") {
		t.Errorf("GET /mailbox outside dev: %d", resp.StatusCode)
	}
	if _, home := b.do(t, "GET", "/", nil); strings.Contains(home, `href="/mailbox"`) {
		t.Error("the menu offers the mailbox outside dev")
	}
	status, hdr, p := e.call(t, "POST", "/dev/sendgrid/v3/mail/send", "", `{}`)
	if status != http.StatusNotFound || !strings.HasPrefix(hdr.Get("Content-Type"), "application/problem+json") || !strings.Contains(p["detail"].(string), "dev mailbox") {
		t.Errorf("fake SendGrid outside dev: %d %v %v", status, hdr.Get("Content-Type"), p)
	}
}

// The scenario API takes the same choices as the form: the trigger's
// event, the template of each send, and refuses a node that is not there.
func TestScenarioAdjustmentsThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	status, _, out := e.call(t, "POST", "/v1/journeys/scenarios/welcome", e.admin, map[string]any{
		"trigger_event": "identify", "templates": map[string]string{"welcome": "hello", "nope": "x"}, "segment": "customers"})
	if status != http.StatusUnprocessableEntity {
		t.Fatalf("bad adjustments: %d %v", status, out)
	}
	fields := map[string]bool{}
	for _, f := range out["errors"].([]any) {
		fields[f.(map[string]any)["field"].(string)] = true
	}
	if !fields["templates.nope"] || !fields["segment"] || len(fields) != 2 {
		t.Fatalf("errors %v, want templates.nope and segment", out["errors"])
	}
	status, _, out = e.call(t, "POST", "/v1/journeys/scenarios/welcome", e.admin, map[string]any{
		"trigger_event": "identify", "templates": map[string]string{"welcome": "hello"}})
	if status != http.StatusCreated {
		t.Fatalf("adjusted scenario: %d %v", status, out)
	}
	j := out["journey"].(map[string]any)["draft"].(map[string]any)
	if j["trigger"].(map[string]any)["event"] != "identify" || j["nodes"].([]any)[0].(map[string]any)["template"] != "hello" {
		t.Fatalf("draft %v", j)
	}
	if got := toStrings(out["missing"]); strings.Join(got, ",") != "template hello,template welcome-tips" {
		t.Fatalf("missing %v", got)
	}
}

func journeysOf(e *env) ([]journey.Journey, error) {
	return e.server.Journeys.List(context.Background(), e.ws.ID)
}

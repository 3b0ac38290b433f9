package api_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
)

// consentEnv is an env whose email channel points at a fake SendGrid, with
// a "promo" template linking to the preference page, and profile ana.
type consentEnv struct {
	*env
	fake *channeltest.SendGrid
	ana  string
}

func newConsentEnv(t *testing.T) *consentEnv {
	t.Helper()
	e := newEnv(t)
	fake := channeltest.NewSendGrid(t, "SG.k")
	if status, _, body := e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{"api_key": "SG.k", "from_email": "news@shop.example", "base_url": fake.URL}); status != 200 {
		t.Fatalf("configure: %d %v", status, body)
	}
	if status, _, body := e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": "promo", "name": "Promo", "subject": "Sale",
		"html": `<p>Sale</p><a href="{{ preferences_url }}">Your preferences</a>`}); status != 201 {
		t.Fatalf("template: %d %v", status, body)
	}
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "traits": map[string]any{"email": "ana@example.com"}})
	return &consentEnv{env: e, fake: fake, ana: e.profileBy(t, "userId=ana")["id"].(string)}
}

func (e *consentEnv) send(t *testing.T, key, class string) channel.Delivery {
	t.Helper()
	d, err := e.ledger.Send(context.Background(), channel.SendRequest{BusinessKey: key, WorkspaceID: e.ws.ID, ProfileID: e.ana,
		TemplateSlug: "promo", Channel: "email", Class: class, OnPolicy: channel.PolicyDrop})
	if err != nil {
		t.Fatalf("send %s: %v", key, err)
	}
	return d
}

func (e *consentEnv) subscription(t *testing.T, ch, purpose string) map[string]any {
	t.Helper()
	status, _, body := e.call(t, "GET", "/v1/profiles/"+e.ana+"/subscriptions", e.admin, nil)
	if status != 200 {
		t.Fatalf("subscriptions: %d %v", status, body)
	}
	for _, s := range body["data"].([]any) {
		if s := s.(map[string]any); s["channel"] == ch && s["purpose"] == purpose {
			return s
		}
	}
	t.Fatalf("no %s %s subscription in %v", ch, purpose, body)
	return nil
}

func (e *consentEnv) timeline(t *testing.T, event string) []map[string]any {
	t.Helper()
	_, _, body := e.call(t, "GET", "/v1/profiles/"+e.ana+"/events", e.admin, nil)
	var out []map[string]any
	for _, ev := range body["data"].([]any) {
		if ev := ev.(map[string]any); ev["name"] == event {
			out = append(out, ev)
		}
	}
	return out
}

func postForm(t *testing.T, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// The hosted preference page: reached through the email's signed link, no
// sign-in; a tampered token changes nothing; opting out stops the next
// marketing email (reason recorded) but not transactional ones; the change
// is audited and on the profile's timeline; opting back in works.
func TestPreferencePage(t *testing.T) {
	t.Parallel()
	e := newConsentEnv(t)
	if d := e.send(t, "promo/1", "marketing"); d.Status != "sent" {
		t.Fatalf("first promo: %+v", d)
	}
	m := regexp.MustCompile(`href="([^"]+)"`).FindStringSubmatch(e.fake.Accepted()[0].Body("text/html"))
	if m == nil || !strings.HasPrefix(m[1], e.url+"/v1/preferences?token=") {
		t.Fatalf("no preference link in %s", e.fake.Accepted()[0].Body("text/html"))
	}
	link := m[1]
	u, _ := url.Parse(link)
	token := u.Query().Get("token")

	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`<html lang="en">`, `<label for="marketing_email">By email</label>`, `id="marketing_email" name="marketing_email" value="on" checked`,
		`name="token" value="` + token + `"`, `<legend>`} {
		if resp.StatusCode != 200 || !strings.Contains(string(page), want) {
			t.Fatalf("page %d lacks %q:\n%s", resp.StatusCode, want, page)
		}
	}
	if strings.Contains(string(page), "marketing_sms") {
		t.Fatalf("the page offers SMS to a profile without a phone:\n%s", page)
	}

	// A tampered token: refused, nothing changes.
	status, body := postForm(t, e.url+"/v1/preferences", url.Values{"token": {token[:len(token)-2] + "xx"}, "shown": {"email"}})
	if status != 400 || !strings.Contains(body, `"field":"token"`) {
		t.Fatalf("tampered token: %d %s", status, body)
	}
	if resp, _ := http.Get(e.url + "/v1/preferences?token=" + url.QueryEscape(token+"x")); resp.StatusCode != 400 {
		t.Fatalf("tampered GET: %d", resp.StatusCode)
	}
	if s := e.subscription(t, "email", "marketing"); s["status"] != "subscribed" || s["source"] != "default" {
		t.Fatalf("after a tampered post: %v", s)
	}
	if d := e.send(t, "promo/2", "marketing"); d.Status != "sent" {
		t.Fatalf("after a tampered post: %+v", d)
	}

	// Opt out: the box unticked.
	status, body = postForm(t, e.url+"/v1/preferences", url.Values{"token": {token}, "shown": {"email"}})
	if status != 200 || !strings.Contains(body, `role="status"`) || strings.Contains(body, "checked") {
		t.Fatalf("opt out: %d %s", status, body)
	}
	if d := e.send(t, "promo/3", "marketing"); d.Status != "skipped" || d.Reason != "unsubscribed from marketing email" {
		t.Fatalf("marketing after opting out: %+v", d)
	}
	if d := e.send(t, "receipt/1", "transactional"); d.Status != "sent" {
		t.Fatalf("transactional after opting out: %+v", d)
	}
	if s := e.subscription(t, "email", "marketing"); s["status"] != "unsubscribed" || s["source"] != "preferences_page" || s["updated_at"] == nil {
		t.Fatalf("subscription %v", s)
	}
	evs := e.timeline(t, "Subscription Changed")
	if len(evs) != 1 {
		t.Fatalf("%d Subscription Changed events, want 1", len(evs))
	}
	if p := evs[0]["properties"].(map[string]any); p["status"] != "unsubscribed" || p["source"] != "preferences_page" || p["channel"] != "email" || p["purpose"] != "marketing" {
		t.Fatalf("event %v", evs[0])
	}
	// Saving the same choice again records nothing new.
	postForm(t, e.url+"/v1/preferences", url.Values{"token": {token}, "shown": {"email"}})
	if n := len(e.timeline(t, "Subscription Changed")); n != 1 {
		t.Fatalf("%d events after saving the same choice", n)
	}

	// Back in, with the box ticked.
	status, body = postForm(t, e.url+"/v1/preferences", url.Values{"token": {token}, "shown": {"email"}, "marketing_email": {"on"}})
	if status != 200 || !strings.Contains(body, "checked") {
		t.Fatalf("opt in: %d %s", status, body)
	}
	if d := e.send(t, "promo/4", "marketing"); d.Status != "sent" {
		t.Fatalf("marketing after opting in: %+v", d)
	}
	if n := len(e.fake.Accepted()); n != 4 {
		t.Fatalf("%d emails, want 4", n)
	}
}

// One-click unsubscribe puts the profile in an unsubscribe suppression;
// opting back in on the preference page lifts it (bounces would stay).
func TestPreferencePageOptInLiftsTheUnsubscribeSuppression(t *testing.T) {
	t.Parallel()
	e := newConsentEnv(t)
	e.send(t, "promo/1", "marketing")
	mail := e.fake.Accepted()[0]
	if status, _ := postForm(t, strings.Trim(mail.Headers["List-Unsubscribe"], "<>"), url.Values{"List-Unsubscribe": {"One-Click"}}); status != 200 {
		t.Fatalf("one-click: %d", status)
	}
	if d := e.send(t, "promo/2", "marketing"); d.Status != "skipped" {
		t.Fatalf("after one-click: %+v", d)
	}
	if evs := e.timeline(t, "Subscription Changed"); len(evs) != 1 || evs[0]["properties"].(map[string]any)["source"] != "unsubscribe_link" {
		t.Fatalf("timeline after one-click: %v", evs)
	}
	link := regexp.MustCompile(`href="([^"]+)"`).FindStringSubmatch(mail.Body("text/html"))[1]
	u, _ := url.Parse(link)
	postForm(t, e.url+"/v1/preferences", url.Values{"token": {u.Query().Get("token")}, "shown": {"email"}, "marketing_email": {"on"}})
	if d := e.send(t, "promo/3", "marketing"); d.Status != "sent" {
		t.Fatalf("after opting back in: %+v", d)
	}
	_, _, body := e.call(t, "GET", "/v1/profiles/"+e.ana+"/subscriptions", e.admin, nil)
	var actions []string
	for _, h := range body["history"].([]any) {
		h := h.(map[string]any)
		actions = append(actions, h["action"].(string)+"/"+h["source"].(string))
	}
	// Newest first; the opt-in and the lift are one transaction.
	want := "lifted/preferences_page subscribed/preferences_page suppressed/unsubscribe_link unsubscribed/unsubscribe_link"
	if strings.Join(actions, " ") != want {
		t.Fatalf("history %v, want %s", actions, want)
	}
}

// The consent API: every channel and purpose with its state, source and
// time; changes audited with the API key and on the timeline.
func TestProfileSubscriptionsAPI(t *testing.T) {
	t.Parallel()
	e := newConsentEnv(t)
	if s := e.subscription(t, "sms", "transactional"); s["status"] != "subscribed" || s["source"] != "default" || s["updated_at"] != nil {
		t.Fatalf("default: %v", s)
	}
	status, _, sub := e.call(t, "PUT", "/v1/profiles/"+e.ana+"/subscriptions/email", e.admin, map[string]any{"purpose": "marketing", "status": "unsubscribed"})
	if status != 200 || sub["status"] != "unsubscribed" || sub["source"] != "api" {
		t.Fatalf("opt out: %d %v", status, sub)
	}
	status, _, body := e.call(t, "GET", "/v1/profiles/"+e.ana+"/subscriptions", e.admin, nil)
	if status != 200 || len(body["data"].([]any)) != 6 {
		t.Fatalf("subscriptions: %d %v", status, body)
	}
	if s := e.subscription(t, "email", "marketing"); s["status"] != "unsubscribed" || s["source"] != "api" || s["updated_at"] == nil {
		t.Fatalf("email marketing: %v", s)
	}
	h := body["history"].([]any)[0].(map[string]any)
	if h["action"] != "unsubscribed" || h["source"] != "api" || !strings.HasPrefix(h["actor"].(string), "key:") || h["channel"] != "email" {
		t.Fatalf("history %v", body["history"])
	}
	if evs := e.timeline(t, "Subscription Changed"); len(evs) != 1 {
		t.Fatalf("%d timeline events, want 1", len(evs))
	}
	if status, _, body := e.call(t, "PUT", "/v1/profiles/"+e.ana+"/subscriptions/fax", e.admin, map[string]any{"purpose": "marketing", "status": "unsubscribed"}); status != 422 || fieldOf(body)["field"] != "channel" {
		t.Fatalf("bad channel: %d %v", status, body)
	}
	if status, _, _ := e.call(t, "GET", "/v1/profiles/00000000-0000-0000-0000-000000000000/subscriptions", e.admin, nil); status != 404 {
		t.Fatalf("unknown profile: %d", status)
	}
}

// Suppressions: added by hand, listed with filters and a cursor, lifted
// (recorded), and checked at send time.
func TestSuppressionsAPI(t *testing.T) {
	t.Parallel()
	e := newConsentEnv(t)
	status, _, sup := e.call(t, "POST", "/v1/suppressions", e.admin, map[string]any{"channel": "email", "address": "Ana@Example.com"})
	if status != 201 || sup["reason"] != "manual" || sup["source"] != "api" {
		t.Fatalf("suppress: %d %v", status, sup)
	}
	if status, _, again := e.call(t, "POST", "/v1/suppressions", e.admin, map[string]any{"address": "ana@example.com"}); status != 200 || again["id"] != sup["id"] {
		t.Fatalf("suppress again: %d %v", status, again)
	}
	if d := e.send(t, "receipt/1", "transactional"); d.Status != "skipped" || d.Reason != "address suppressed (manual)" {
		t.Fatalf("send to a suppressed address: %+v", d)
	}
	for _, tt := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"address": "not an email"}, "address"},
		{map[string]any{"channel": "sms", "address": "0612345678"}, "address"},
		{map[string]any{"channel": "fax", "address": "x"}, "channel"},
		{map[string]any{"address": "bob@example.com", "reason": "dislike"}, "reason"},
	} {
		if status, _, body := e.call(t, "POST", "/v1/suppressions", e.admin, tt.body); status != 422 || fieldOf(body)["field"] != tt.field {
			t.Errorf("%v: %d %v, want 422 on %s", tt.body, status, body, tt.field)
		}
	}
	e.call(t, "POST", "/v1/suppressions", e.admin, map[string]any{"address": "bob@example.com", "reason": "bounce"})
	e.call(t, "POST", "/v1/suppressions", e.admin, map[string]any{"address": "cy@example.com", "reason": "bounce"})

	status, _, page := e.call(t, "GET", "/v1/suppressions?channel=email&reason=bounce&limit=1", e.admin, nil)
	if status != 200 || len(page["data"].([]any)) != 1 || page["next_cursor"] == "" {
		t.Fatalf("page 1: %d %v", status, page)
	}
	status, _, page2 := e.call(t, "GET", "/v1/suppressions?channel=email&reason=bounce&limit=1&cursor="+url.QueryEscape(page["next_cursor"].(string)), e.admin, nil)
	if status != 200 || len(page2["data"].([]any)) != 1 || page2["next_cursor"] != "" ||
		page2["data"].([]any)[0].(map[string]any)["id"] == page["data"].([]any)[0].(map[string]any)["id"] {
		t.Fatalf("page 2: %d %v", status, page2)
	}
	if status, _, all := e.call(t, "GET", "/v1/suppressions", e.admin, nil); status != 200 || len(all["data"].([]any)) != 3 {
		t.Fatalf("all: %d %v", status, all)
	}
	for q, field := range map[string]string{"cursor=nope": "cursor", "reason=dislike": "reason", "address=ana@example.com": "channel", "channel=fax": "channel"} {
		if status, _, body := e.call(t, "GET", "/v1/suppressions?"+q, e.admin, nil); status != 422 || fieldOf(body)["field"] != field {
			t.Errorf("%s: %d %v", q, status, body)
		}
	}

	// Lift: recorded, and sends go again.
	status, _, lifted := e.call(t, "DELETE", "/v1/suppressions/"+sup["id"].(string), e.admin, nil)
	if status != 200 || lifted["lifted_by"] != "api" || lifted["lifted_at"] == nil {
		t.Fatalf("lift: %d %v", status, lifted)
	}
	if status, _, _ := e.call(t, "DELETE", "/v1/suppressions/"+sup["id"].(string), e.admin, nil); status != 404 {
		t.Fatalf("lift twice: %d", status)
	}
	if d := e.send(t, "receipt/2", "transactional"); d.Status != "sent" {
		t.Fatalf("after the lift: %+v", d)
	}
	status, _, one := e.call(t, "GET", "/v1/suppressions?channel=email&address=ana@example.com", e.admin, nil)
	hist, _ := one["history"].([]any)
	if status != 200 || len(one["data"].([]any)) != 0 || len(hist) != 2 ||
		hist[0].(map[string]any)["action"] != "lifted" || hist[1].(map[string]any)["action"] != "suppressed" ||
		!strings.HasPrefix(hist[0].(map[string]any)["actor"].(string), "key:") {
		t.Fatalf("address history: %d %v", status, one)
	}
}

// Delivery policy API: validated with every field at fault named; a cap
// applies to a journey's send node at send time (drop: skipped, reason
// recorded), transactional nodes exempt.
func TestDeliveryPolicyAPIAndJourneyCap(t *testing.T) {
	t.Parallel()
	e := newConsentEnv(t)
	status, _, body := e.call(t, "PUT", "/v1/policies/delivery", e.admin, map[string]any{
		"frequency_caps":   []any{map[string]any{"channel": "email", "max": 0, "per": "7 days"}},
		"quiet_hours":      map[string]any{"start": "9pm", "end": "08:00", "channels": []any{"email"}},
		"default_timezone": "Paris",
	})
	var fields []string
	for _, f := range body["errors"].([]any) {
		fields = append(fields, f.(map[string]any)["field"].(string))
	}
	if status != 422 || strings.Join(fields, ",") != "frequency_caps[0].max,frequency_caps[0].per,quiet_hours.start,default_timezone" {
		t.Fatalf("invalid policy: %d %v", status, body)
	}
	if status, _, p := e.call(t, "GET", "/v1/policies/delivery", e.admin, nil); status != 200 || len(p["frequency_caps"].([]any)) != 0 || p["quiet_hours"] != nil {
		t.Fatalf("nothing saved: %d %v", status, p)
	}
	status, _, p := e.call(t, "PUT", "/v1/policies/delivery", e.admin, map[string]any{
		"frequency_caps":   []any{map[string]any{"channel": "email", "max": 1, "per": "7d"}},
		"default_timezone": "Europe/Paris",
	})
	if status != 200 || p["frequency_caps"].([]any)[0].(map[string]any)["purpose"] != "marketing" {
		t.Fatalf("save: %d %v", status, p)
	}
	if status, _, got := e.call(t, "GET", "/v1/policies/delivery", e.admin, nil); status != 200 || got["default_timezone"] != "Europe/Paris" {
		t.Fatalf("get: %d %v", status, got)
	}

	if d := e.send(t, "promo/1", "marketing"); d.Status != "sent" {
		t.Fatalf("first: %+v", d)
	}
	_, _, j := e.call(t, "POST", "/v1/journeys", e.admin, `{
	  "name": "Promo and receipt", "trigger": {"type": "event", "event": "Order Completed"}, "entry": {"re_entry": "once"},
	  "start": "promo", "nodes": [
	    {"id": "promo", "type": "send", "channel": "email", "template": "promo", "on_policy": "drop", "next": "receipt"},
	    {"id": "receipt", "type": "send", "channel": "email", "template": "promo", "class": "transactional", "next": "done"},
	    {"id": "done", "type": "exit"}]}`)
	id := j["id"].(string)
	if status, _, body := e.call(t, "POST", "/v1/journeys/"+id+"/publish", e.admin, nil); status != 200 {
		t.Fatalf("publish: %d %v", status, body)
	}
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Order Completed"})
	e.waitForEnded(t, id, 1)
	status, _, ds := e.call(t, "GET", "/v1/deliveries?profile_id="+e.ana, e.admin, nil)
	byNode := map[string]map[string]any{}
	for _, d := range ds["data"].([]any) {
		d := d.(map[string]any)
		if n, _ := d["node_id"].(string); n != "" {
			byNode[n] = d
		}
	}
	if status != 200 || byNode["promo"]["status"] != "skipped" || byNode["promo"]["reason"] != "frequency_cap" ||
		byNode["receipt"]["status"] != "sent" || byNode["receipt"]["class"] != "transactional" {
		t.Fatalf("deliveries %v", byNode)
	}
	if status, _, body := e.call(t, "POST", "/v1/journeys", e.admin, `{
	  "name": "Bad", "trigger": {"type": "api"}, "entry": {"re_entry": "once"}, "start": "s",
	  "nodes": [{"id": "s", "type": "send", "channel": "email", "template": "promo", "on_policy": "later", "class": "promo", "next": "d"}, {"id": "d", "type": "exit"}]}`); status != 422 ||
		!strings.Contains(stringify(body), "nodes[s].on_policy") || !strings.Contains(stringify(body), "nodes[s].class") {
		t.Fatalf("bad node options: %d %v", status, body)
	}
}

func stringify(v any) string {
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				b.WriteString(k + "=")
				walk(e)
				b.WriteString(" ")
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case string:
			b.WriteString(x)
		}
	}
	walk(v)
	return b.String()
}

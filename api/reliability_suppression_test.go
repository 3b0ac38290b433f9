package api_test

import (
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/channel/channeltest"
)

// twoTouchJourney sends a marketing email, waits for "Continue", then sends
// a second marketing email, a marketing SMS and a transactional email.
const twoTouchJourney = `{
  "name": "Two touches", "trigger": {"type": "event", "event": "Joined"}, "entry": {"re_entry": "once"}, "start": "first",
  "nodes": [
    {"id": "first", "type": "send", "channel": "email", "template": "news", "next": "pause"},
    {"id": "pause", "type": "wait_for_event", "event": "Continue", "timeout": "1d", "on_event": "second", "on_timeout": "end"},
    {"id": "second", "type": "send", "channel": "email", "template": "news", "next": "text"},
    {"id": "text", "type": "send", "channel": "sms", "template": "news-sms", "next": "receipt"},
    {"id": "receipt", "type": "send", "channel": "email", "template": "receipt", "class": "transactional", "next": "end"},
    {"id": "end", "type": "exit"}
  ]
}`

// R10: an unsubscribe (through the API, or the preference page), a bounce
// or a spam report reported by SendGrid's Event Webhook, arriving while a
// run waits between two sends, suppresses the next send, and the reason is
// on the delivery (/v1/deliveries). What each one covers:
//   - an unsubscribe covers the channels it names: the API call names
//     email, so the SMS still goes; the preference page with every box
//     unticked covers email and SMS. Transactional messages still go.
//   - a bounce or a spam report is about an email address: every email to
//     it stops, transactional included (as SendGrid's own suppression lists
//     do); the person's phone is untouched, so the SMS still goes.
func TestR10SuppressionDuringAWaitStopsTheNextSend(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := newSGKey(t)
	fake := channeltest.NewSendGrid(t, "SG.r10")
	if status, _, body := e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{
		"api_key": "SG.r10", "from_email": "news@shop.example", "base_url": fake.URL, "event_webhook_public_key": k.public,
	}); status != 200 {
		t.Fatalf("email channel: %d %v", status, body)
	}
	twilio := channeltest.NewTwilio(t)
	e.putSMSChannel(t, twilio, "")
	for _, tpl := range []map[string]any{
		{"slug": "news", "name": "News", "channel": "email", "subject": "News", "html": `<p>News</p><a href="{{ preferences_url }}">Preferences</a>`},
		{"slug": "news-sms", "name": "News by SMS", "channel": "sms", "text": "News from the shop"},
		{"slug": "receipt", "name": "Receipt", "channel": "email", "subject": "Your receipt", "html": "<p>Receipt</p>"},
	} {
		if status, _, body := e.call(t, "POST", "/v1/templates", e.admin, tpl); status != 201 {
			t.Fatalf("template %s: %d %v", tpl["slug"], status, body)
		}
	}
	status, _, j := e.call(t, "POST", "/v1/journeys", e.admin, twoTouchJourney)
	if status != 201 {
		t.Fatalf("journey: %d %v", status, j)
	}
	id := j["id"].(string)
	if status, _, body := e.call(t, "POST", "/v1/journeys/"+id+"/publish", e.admin, nil); status != 200 {
		t.Fatalf("publish: %d %v", status, body)
	}
	people := []string{"ana", "bea", "cy", "dan"}
	phones := map[string]string{"ana": "+33612345601", "bea": "+33612345602", "cy": "+33612345603", "dan": "+33612345604"}
	ids := map[string]string{}
	for _, u := range people {
		e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": u, "traits": map[string]any{"email": u + "@example.com", "phone": phones[u]}})
		ids[u] = e.profileBy(t, "userId="+u)["id"].(string)
		e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": u, "event": "Joined"})
	}
	e.waitFor(t, "the first emails", func() bool { return len(fake.Accepted()) == len(people) })
	byNode := func(u string) map[string]map[string]any {
		_, _, ds := e.call(t, "GET", "/v1/deliveries?profile_id="+ids[u], e.admin, nil)
		out := map[string]map[string]any{}
		for _, d := range ds["data"].([]any) {
			d := d.(map[string]any)
			out[str(d["node_id"])] = d
		}
		return out
	}

	// While every run waits for "Continue":
	// ana unsubscribes from marketing email through the API;
	if status, _, body := e.call(t, "PUT", "/v1/profiles/"+ids["ana"]+"/subscriptions/email", e.admin,
		map[string]any{"purpose": "marketing", "status": "unsubscribed"}); status != 200 {
		t.Fatalf("unsubscribe ana: %d %v", status, body)
	}
	// bea unticks every box on the preference page her email links to;
	var link string
	for _, m := range fake.Accepted() {
		if m.Personalizations[0].To[0].Email == "bea@example.com" {
			if h := regexp.MustCompile(`href="([^"]+)"`).FindStringSubmatch(m.Body("text/html")); h != nil {
				link = strings.ReplaceAll(h[1], "&amp;", "&")
			}
		}
	}
	u, err := url.Parse(link)
	if err != nil || u.Query().Get("token") == "" {
		t.Fatalf("no preference link in bea's email: %q", link)
	}
	if status, body := postForm(t, e.url+"/v1/preferences", url.Values{"token": {u.Query().Get("token")}, "shown": {"email", "sms"}}); status != 200 {
		t.Fatalf("preference page: %d %s", status, body)
	}
	// SendGrid reports cy's email bounced and dan's reported as spam.
	event := func(who, kind string, extra map[string]any) map[string]any {
		first := byNode(who)["first"]
		ev := map[string]any{
			"email": who + "@example.com", "timestamp": time.Now().Unix(), "event": kind, "sg_event_id": kind + "-" + who,
			"sg_message_id": str(first["provider_message_id"]) + ".filterdrecv-1", "parcours_delivery_id": first["id"], "parcours_workspace_id": e.ws.ID,
		}
		for k, v := range extra {
			ev[k] = v
		}
		return ev
	}
	batch := mustJSON(t, []map[string]any{
		event("cy", "bounce", map[string]any{"type": "bounce", "reason": "550 5.1.1 The email account does not exist", "status": "5.1.1"}),
		event("dan", "spamreport", nil),
	})
	if status, out := e.postSigned(t, k, batch); status != 200 || out["stored"] != 2.0 {
		t.Fatalf("event webhook: %d %v", status, out)
	}

	for _, u := range people {
		e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": u, "event": "Continue"})
	}
	e.waitForEnded(t, id, len(people))

	want := map[string]map[string]string{ // node: "sent" or the reason it was skipped
		"ana": {"second": "unsubscribed from marketing email", "text": "sent", "receipt": "sent"},
		"bea": {"second": "unsubscribed from marketing email", "text": "unsubscribed from marketing sms", "receipt": "sent"},
		"cy":  {"second": "address suppressed (bounce)", "text": "sent", "receipt": "address suppressed (bounce)"},
		"dan": {"second": "address suppressed (spamreport)", "text": "sent", "receipt": "address suppressed (spamreport)"},
	}
	for _, u := range people {
		got := byNode(u)
		if got["first"]["status"] != "sent" {
			t.Errorf("%s's first email: %v", u, got["first"])
		}
		for node, w := range want[u] {
			d := got[node]
			switch {
			case d == nil:
				t.Errorf("%s: no delivery for %s", u, node)
			case w == "sent" && d["status"] != "sent":
				t.Errorf("%s's %s: %v %v, want sent", u, node, d["status"], d["reason"])
			case w != "sent" && (d["status"] != "skipped" || d["reason"] != w):
				t.Errorf("%s's %s: %v %q, want skipped: %s", u, node, d["status"], d["reason"], w)
			}
		}
	}
	// What reached the providers: the four first emails and ana's and bea's
	// receipts; SMS to ana, cy and dan.
	emails := inbox(fake)
	if len(fake.Accepted()) != 6 || len(emails["ana@example.com"]) != 2 || len(emails["bea@example.com"]) != 2 ||
		len(emails["cy@example.com"]) != 1 || len(emails["dan@example.com"]) != 1 {
		t.Errorf("emails %v", emails)
	}
	var texts []string
	for _, m := range twilio.Accepted() {
		texts = append(texts, m.To)
	}
	sort.Strings(texts)
	if strings.Join(texts, ",") != strings.Join([]string{phones["ana"], phones["cy"], phones["dan"]}, ",") {
		t.Errorf("SMS to %v, want ana, cy and dan", texts)
	}
}

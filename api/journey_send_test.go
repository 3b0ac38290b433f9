package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/channel/channeltest"
)

const welcomeJourney = `{
  "name": "Welcome",
  "trigger": {"type": "event", "event": "Signed Up"},
  "entry": {"re_entry": "once"},
  "start": "send_welcome",
  "nodes": [
    {"id": "send_welcome", "type": "send", "channel": "email", "template": "welcome", "next": "done"},
    {"id": "done", "type": "exit"}
  ]
}`

// The welcome scenario end to end: a real Temporal workflow, the delivery
// ledger, and SendGrid's wire format on a local fake. Each new sign-up gets
// one email; a second sign-up of the same person gets none (entry once); an
// unsubscribed person gets none and the reason is recorded.
func TestWelcomeJourneySendsOneEmailPerPerson(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := channeltest.NewSendGrid(t, "SG.welcome")
	if status, _, body := e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{"api_key": "SG.welcome", "from_email": "hello@shop.example", "base_url": fake.URL}); status != 200 {
		t.Fatalf("email channel: %d %v", status, body)
	}
	if status, _, body := e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": "welcome", "name": "Welcome", "channel": "email",
		"subject": "Welcome {{ profile.traits.first_name }}", "html": "<p>Hello {{ profile.traits.first_name }}</p>", "text": "Hello {{ profile.traits.first_name }}"}); status != 201 {
		t.Fatalf("template: %d %v", status, body)
	}
	_, _, j := e.call(t, "POST", "/v1/journeys", e.admin, welcomeJourney)
	id := j["id"].(string)
	if status, _, body := e.call(t, "POST", "/v1/journeys/"+id+"/publish", e.admin, nil); status != 200 {
		t.Fatalf("publish: %d %v", status, body)
	}

	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "traits": map[string]any{"email": "ana@example.com", "first_name": "Ana"}})
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "bob", "traits": map[string]any{"email": "bob@example.com", "first_name": "Bob"}})
	bob := e.profileBy(t, "userId=bob")["id"].(string)
	if status, _, body := e.call(t, "PUT", "/v1/profiles/"+bob+"/subscriptions/email", e.admin, map[string]any{"purpose": "marketing", "status": "unsubscribed"}); status != 200 {
		t.Fatalf("unsubscribe bob: %d %v", status, body)
	}
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Signed Up"})
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "bob", "event": "Signed Up"})
	e.waitFor(t, "both runs to end", func() bool {
		rs := e.runs(t, id)
		return len(rs) == 2 && rs[0]["ended_at"] != nil && rs[1]["ended_at"] != nil
	})
	// Ana signs up again: entry is once, no second run, no second email.
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Signed Up"})
	mails := fake.Accepted()
	if len(mails) != 1 || mails[0].Personalizations[0].To[0].Email != "ana@example.com" || mails[0].Subject != "Welcome Ana" {
		t.Fatalf("mails %+v, want one welcome to ana", mails)
	}
	if args := mails[0].Personalizations[0].CustomArgs; args["parcours_journey_id"] != id || strings.Contains(strings.Join(values(args), " "), "ana@") {
		t.Fatalf("custom_args %v: want ids only", args)
	}
	if n := len(e.runs(t, id)); n != 2 {
		t.Fatalf("%d runs, want 2 (entry once)", n)
	}
	// R19: no email address in Temporal histories (they cannot be erased).
	checked := 0
	for _, r := range e.runs(t, id) {
		it := e.tc.GetWorkflowHistory(context.Background(), r["workflow_id"].(string), r["run_id"].(string), false, 0)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			if text := historyText(ev); strings.Contains(text, "example.com") || strings.Contains(text, "Ana") {
				t.Fatalf("personal data in the history of %s: %s", r["workflow_id"], text)
			}
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("only %d history events checked", checked)
	}
	status, _, ds := e.call(t, "GET", "/v1/deliveries?profile_id="+bob, e.admin, nil)
	if status != 200 {
		t.Fatalf("deliveries: %d %v", status, ds)
	}
	d := ds["data"].([]any)[0].(map[string]any)
	if d["status"] != "skipped" || !strings.Contains(d["reason"].(string), "unsubscribed") {
		t.Fatalf("bob's delivery %v, want skipped because unsubscribed", d)
	}
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// Prospect to customer: entering the segment "customers" sends one thank-you.
func TestThankYouWhenAProspectBecomesACustomer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := channeltest.NewSendGrid(t, "SG.thanks")
	e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{"api_key": "SG.thanks", "from_email": "hello@shop.example", "base_url": fake.URL})
	e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": "thank-you", "name": "Thank you", "channel": "email",
		"subject": "Thank you for your first order", "html": "<p>Thank you</p>", "text": "Thank you"})
	e.createSegment(t, "customers", `profile.order_count >= 1`)
	_, _, j := e.call(t, "POST", "/v1/journeys", e.admin, `{
	  "name": "Thank you", "trigger": {"type": "segment_entered", "segment": "customers"}, "entry": {"re_entry": "once"},
	  "start": "thank", "nodes": [{"id": "thank", "type": "send", "channel": "email", "template": "thank-you", "next": "done"}, {"id": "done", "type": "exit"}]}`)
	id := j["id"].(string)
	if status, _, body := e.call(t, "POST", "/v1/journeys/"+id+"/publish", e.admin, nil); status != 200 {
		t.Fatalf("publish: %d %v", status, body)
	}
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "traits": map[string]any{"email": "ana@example.com"}})
	e.mustSend(t, e.write, "/v1/page", map[string]any{"userId": "ana", "name": "Home"}) // a prospect: nothing
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Order Completed", "properties": map[string]any{"total": 30}})
	e.waitFor(t, "the thank-you run to end", func() bool { rs := e.runs(t, id); return len(rs) == 1 && rs[0]["ended_at"] != nil })
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Order Completed", "properties": map[string]any{"total": 40}})
	if mails := fake.Accepted(); len(mails) != 1 || mails[0].Personalizations[0].To[0].Email != "ana@example.com" {
		t.Fatalf("mails %+v, want one thank-you to ana", mails)
	}
	if n := len(e.runs(t, id)); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
}

// historyText renders a history event with its payloads decoded (they are
// base64 in the JSON form), to search it for personal data.
func historyText(ev any) string {
	raw, _ := json.Marshal(ev)
	text := string(raw)
	for _, m := range regexp.MustCompile(`"data":"([A-Za-z0-9+/=]+)"`).FindAllStringSubmatch(text, -1) {
		if b, err := base64.StdEncoding.DecodeString(m[1]); err == nil {
			text += "\n" + string(b)
		}
	}
	return text
}

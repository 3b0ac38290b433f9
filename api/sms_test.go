package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
)

func (e *env) putSMSChannel(t *testing.T, fake *channeltest.Twilio, callbackBase string) map[string]any {
	t.Helper()
	status, _, body := e.call(t, "PUT", "/v1/channels/sms", e.admin, map[string]any{
		"account_sid": fake.AccountSID, "auth_token": fake.AuthToken, "from_number": channeltest.TwilioFrom,
		"base_url": fake.URL, "status_callback_base_url": callbackBase,
	})
	if status != 200 {
		t.Fatalf("sms channel: %d %v", status, body)
	}
	return body
}

func TestSMSChannelSettingsAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := channeltest.NewTwilio(t)

	status, _, body := e.call(t, "GET", "/v1/channels/sms", e.admin, nil)
	if status != 404 {
		t.Fatalf("before configuration: %d %v", status, body)
	}
	// Every wrong field is named, with why.
	status, _, body = e.call(t, "PUT", "/v1/channels/sms", e.admin, map[string]any{
		"account_sid": "ACnope", "auth_token": "hunter2", "from_number": "06 12 34 56 78", "base_url": "file:///etc/passwd",
	})
	if status != 422 {
		t.Fatalf("invalid settings: %d %v", status, body)
	}
	reasons := map[string]string{}
	for _, x := range body["errors"].([]any) {
		f := x.(map[string]any)
		reasons[f["field"].(string)] = f["reason"].(string)
	}
	if len(reasons) != 4 || !strings.Contains(reasons["account_sid"], "AC followed by 32") || !strings.Contains(reasons["from_number"], "E.164") ||
		!strings.Contains(reasons["auth_token"], "32 hexadecimal") || !strings.Contains(reasons["base_url"], "http or https") {
		t.Fatalf("field errors %v", reasons)
	}
	status, _, body = e.call(t, "PUT", "/v1/channels/sms", e.admin, map[string]any{"account_sid": fake.AccountSID, "from_number": channeltest.TwilioFrom})
	if status != 422 || body["errors"].([]any)[0].(map[string]any)["field"] != "auth_token" {
		t.Fatalf("first configuration without a token: %d %v", status, body)
	}
	status, _, body = e.call(t, "PUT", "/v1/channels/sms", e.admin, `{"account_sid":"`+fake.AccountSID+`","auth_tokn":"x"}`)
	if status != 422 || body["errors"].([]any)[0].(map[string]any)["field"] != "auth_tokn" {
		t.Fatalf("misspelt field: %d %v", status, body)
	}

	body = e.putSMSChannel(t, fake, "")
	wantCallback := e.url + "/v1/webhooks/twilio/" + e.ws.ID
	if body["auth_token_set"] != true || body["account_sid"] != fake.AccountSID || body["status_callback_url"] != wantCallback {
		t.Fatalf("settings %v", body)
	}
	// The token is never returned.
	req, _ := http.NewRequest("GET", e.url+"/v1/channels/sms", nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(raw), fake.AuthToken) || !strings.Contains(string(raw), `"auth_token_set":true`) {
		t.Fatalf("GET: %d %s", resp.StatusCode, raw)
	}
	// Behind a proxy: the callback URL is the configured public one.
	body = e.putSMSChannel(t, fake, "https://sms.parcours.example/")
	if body["status_callback_url"] != "https://sms.parcours.example/v1/webhooks/twilio/"+e.ws.ID {
		t.Fatalf("status_callback_url %v", body["status_callback_url"])
	}
}

// smsSetup configures the SMS channel at a fake Twilio, an sms template and
// a profile with a phone number, and sends one SMS through the ledger.
func smsSetup(t *testing.T, e *env, callbackBase string) (*channeltest.Twilio, string, channel.Delivery, channeltest.SMSMessage) {
	t.Helper()
	fake := channeltest.NewTwilio(t)
	e.putSMSChannel(t, fake, callbackBase)
	if status, _, body := e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": "shipped", "name": "Shipped", "channel": "sms",
		"text": "Hi {{ profile.traits.first_name }}, your order is on its way."}); status != 201 {
		t.Fatalf("template: %d %v", status, body)
	}
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "traits": map[string]any{"phone": "+33 6 12 34 56 78", "first_name": "Ana"}})
	ana := e.profileBy(t, "userId=ana")["id"].(string)
	d, err := e.ledger.Send(context.Background(), channel.SendRequest{BusinessKey: "sms/1", WorkspaceID: e.ws.ID, ProfileID: ana,
		TemplateSlug: "shipped", Channel: "sms", Class: "marketing"})
	if err != nil || d.Status != "sent" || len(fake.Accepted()) != 1 {
		t.Fatalf("send: %+v %v", d, err)
	}
	return fake, ana, d, fake.Accepted()[0]
}

func TestTwilioStatusCallbacksAreVerifiedAndStoredOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake, ana, d, m := smsSetup(t, e, "")
	if m.StatusCallback != e.url+"/v1/webhooks/twilio/"+e.ws.ID+"?delivery="+d.ID {
		t.Fatalf("StatusCallback %q", m.StatusCallback)
	}
	stored := func() int {
		return e.count(t, `SELECT count(*) FROM delivery_events WHERE workspace_id = $1`, e.ws.ID)
	}
	post := func(t *testing.T, target, signedURL, token string, params url.Values) (int, map[string]any) {
		t.Helper()
		resp, err := channeltest.PostSigned(target, signedURL, token, params)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	delivered := fake.StatusParams(m, "delivered", "")
	tampered := fake.StatusParams(m, "delivered", "")
	refused := []struct {
		name, target, signedURL, token string
		params                         url.Values
		modify                         func(url.Values)
	}{
		{"missing signature", m.StatusCallback, m.StatusCallback, "", delivered, nil},
		{"wrong token", m.StatusCallback, m.StatusCallback, strings.Repeat("0", 32), delivered, nil},
		{"tampered after signing", m.StatusCallback, m.StatusCallback, fake.AuthToken, tampered, func(p url.Values) { p.Set("MessageStatus", "failed") }},
		{"signed over another URL", m.StatusCallback, "https://elsewhere.example/v1/webhooks/twilio/" + e.ws.ID + "?delivery=" + d.ID, fake.AuthToken, delivered, nil},
		{"other workspace in the path", e.url + "/v1/webhooks/twilio/00000000-0000-0000-0000-000000000000", e.url + "/v1/webhooks/twilio/00000000-0000-0000-0000-000000000000", fake.AuthToken, delivered, nil},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			var status int
			var body map[string]any
			if tt.modify == nil {
				status, body = post(t, tt.target, tt.signedURL, tt.token, tt.params)
			} else {
				// Sign the genuine parameters, send modified ones.
				sig := channel.TwilioSignature(tt.token, tt.signedURL, tt.params)
				p := url.Values{}
				for k, v := range tt.params {
					p[k] = append([]string(nil), v...)
				}
				tt.modify(p)
				req, _ := http.NewRequest("POST", tt.target, strings.NewReader(p.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Twilio-Signature", sig)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				status = resp.StatusCode
			}
			if status != 401 || body["errors"].([]any)[0].(map[string]any)["field"] != "X-Twilio-Signature" {
				t.Fatalf("%d %v, want 401 naming X-Twilio-Signature", status, body)
			}
			if n := stored(); n != 0 {
				t.Fatalf("%d events stored after a refused post", n)
			}
		})
	}

	// Genuine, posted twice (Twilio retries): stored once, one profile event.
	for i, want := range []bool{true, false} {
		resp, err := fake.PostStatus(m, "delivered", "")
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 200 || body["stored"] != want || body["delivery_id"] != d.ID {
			t.Fatalf("post %d: %d %v", i+1, resp.StatusCode, body)
		}
	}
	if n := stored(); n != 1 {
		t.Fatalf("%d events stored, want 1", n)
	}
	status, _, ds := e.call(t, "GET", "/v1/deliveries?profile_id="+ana, e.admin, nil)
	got := ds["data"].([]any)[0].(map[string]any)
	if status != 200 || got["status"] != "sent" || got["delivered_at"] == nil || got["segments"] != float64(1) || got["channel"] != "sms" {
		t.Fatalf("delivery after delivered: %d %v", status, got)
	}
	status, _, tl := e.call(t, "GET", "/v1/profiles/"+ana+"/events", e.admin, nil)
	names := map[string]int{}
	for _, x := range tl["data"].([]any) {
		ev := x.(map[string]any)
		if ev["source"] == "parcours" {
			names[ev["name"].(string)]++
			if props := ev["properties"].(map[string]any); props["delivery_id"] != d.ID || props["template"] != "shipped" {
				t.Fatalf("%s properties %v", ev["name"], props)
			}
		}
	}
	if status != 200 || names["SMS Delivered"] != 1 || len(names) != 1 {
		t.Fatalf("profile events %v", names)
	}
}

// Behind a proxy, Twilio signs the public URL; the server sees another
// host. A failed status records the delivery failed with Twilio's code.
func TestTwilioStatusCallbackBehindAProxy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const public = "https://sms.parcours.example"
	fake, ana, d, m := smsSetup(t, e, public)
	if !strings.HasPrefix(m.StatusCallback, public+"/v1/webhooks/twilio/"+e.ws.ID+"?delivery=") {
		t.Fatalf("StatusCallback %q", m.StatusCallback)
	}
	local := e.url + strings.TrimPrefix(m.StatusCallback, public)
	params := fake.StatusParams(m, "undelivered", "30003")
	// Signed over the local URL (what a naive check would use): refused.
	resp, err := channeltest.PostSigned(local, local, fake.AuthToken, params)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("signed over the local URL: %d, want 401", resp.StatusCode)
	}
	// Signed over the public URL, as Twilio does: accepted.
	resp, err = channeltest.PostSigned(local, m.StatusCallback, fake.AuthToken, params)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("signed over the public URL: %d", resp.StatusCode)
	}
	status, _, ds := e.call(t, "GET", "/v1/deliveries?profile_id="+ana, e.admin, nil)
	got := ds["data"].([]any)[0].(map[string]any)
	if status != 200 || got["id"] != d.ID || got["status"] != "failed" || got["error_code"] != "30003" || !strings.Contains(got["reason"].(string), "undelivered") {
		t.Fatalf("delivery after undelivered: %v", got)
	}
	_, _, tl := e.call(t, "GET", "/v1/profiles/"+ana+"/events", e.admin, nil)
	found := false
	for _, x := range tl["data"].([]any) {
		ev := x.(map[string]any)
		if ev["name"] == "SMS Failed" && ev["properties"].(map[string]any)["error_code"] == "30003" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no SMS Failed event in %v", tl["data"])
	}
}

const smsJourney = `{
  "name": "Shipping notice",
  "trigger": {"type": "event", "event": "Order Shipped"},
  "entry": {"re_entry": "once"},
  "start": "text",
  "nodes": [
    {"id": "text", "type": "send", "channel": "sms", "template": "shipped", "next": "done"},
    {"id": "done", "type": "exit"}
  ]
}`

// A journey's sms send node end to end: a real Temporal workflow, the
// ledger and Twilio's wire format on a local fake that first answers 429.
// One SMS reaches the person; the number never enters Temporal history.
func TestSMSJourneyEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := channeltest.NewTwilio(t)
	e.putSMSChannel(t, fake, "")
	if status, _, body := e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": "shipped", "name": "Shipped", "channel": "sms",
		"text": "Hi {{ profile.traits.first_name }}, your order shipped."}); status != 201 {
		t.Fatalf("template: %d %v", status, body)
	}
	status, _, j := e.call(t, "POST", "/v1/journeys", e.admin, smsJourney)
	if status != 201 {
		t.Fatalf("journey: %d %v", status, j)
	}
	id := j["id"].(string)
	if status, _, body := e.call(t, "POST", "/v1/journeys/"+id+"/publish", e.admin, nil); status != 200 {
		t.Fatalf("publish: %d %v", status, body)
	}
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "traits": map[string]any{"phone": "+33612345678", "first_name": "Ana"}})
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "bob", "traits": map[string]any{"first_name": "Bob"}})
	fake.Then(channeltest.TwilioAnswer{Status: 429, RetryAfter: time.Second}, channeltest.TwilioAnswer{Status: 429, RetryAfter: time.Second})
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Order Shipped"})
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "bob", "event": "Order Shipped"})
	e.waitFor(t, "both runs to end", func() bool {
		rs := e.runs(t, id)
		return len(rs) == 2 && rs[0]["ended_at"] != nil && rs[1]["ended_at"] != nil
	})
	msgs := fake.Accepted()
	if len(msgs) != 1 || msgs[0].To != "+33612345678" || msgs[0].Body != "Hi Ana, your order shipped." || fake.Calls() != 3 {
		t.Fatalf("messages %+v in %d calls, want one to ana after two 429s", msgs, fake.Calls())
	}
	ana := e.profileBy(t, "userId=ana")["id"].(string)
	bob := e.profileBy(t, "userId=bob")["id"].(string)
	_, _, ds := e.call(t, "GET", "/v1/deliveries?profile_id="+ana, e.admin, nil)
	if got := ds["data"].([]any)[0].(map[string]any); got["status"] != "sent" || got["provider_message_id"] != msgs[0].SID || got["attempts"] != float64(3) || got["journey_id"] != id {
		t.Fatalf("ana's delivery %v", got)
	}
	_, _, ds = e.call(t, "GET", "/v1/deliveries?profile_id="+bob, e.admin, nil)
	if got := ds["data"].([]any)[0].(map[string]any); got["status"] != "skipped" || got["reason"] != "the profile has no phone number" {
		t.Fatalf("bob's delivery %v", got)
	}
	// Twilio reports the delivery; it lands on ana's timeline.
	resp, err := fake.PostStatus(msgs[0], "delivered", "")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status callback: %d", resp.StatusCode)
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE workspace_id = $1 AND profile_id = $2 AND name = 'SMS Delivered'`, e.ws.ID, ana); n != 1 {
		t.Fatalf("%d SMS Delivered events, want 1", n)
	}
	// No phone number in Temporal histories (they cannot be erased).
	for _, r := range e.runs(t, id) {
		it := e.tc.GetWorkflowHistory(context.Background(), r["workflow_id"].(string), r["run_id"].(string), false, 0)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			if text := historyText(ev); strings.Contains(text, "612345678") {
				t.Fatalf("phone number in the history of %s", r["workflow_id"])
			}
		}
	}
}

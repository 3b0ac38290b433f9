package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
)

func fieldOf(body map[string]any) map[string]any {
	errs, _ := body["errors"].([]any)
	if len(errs) == 0 {
		return nil
	}
	return errs[0].(map[string]any)
}

func TestTemplateCompileErrorsNameFieldAndLine(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name  string
		body  map[string]any
		field string
		line  float64
	}{
		{"html syntax", map[string]any{"slug": "a", "name": "A", "subject": "Hi", "html": "<p>\n{% if profile.traits.vip %}\n</p>"}, "html", 2},
		{"subject filter", map[string]any{"slug": "b", "name": "B", "subject": "Hi {{ profile.id | shout }}", "text": "x"}, "subject", 1},
		{"text tag", map[string]any{"slug": "c", "name": "C", "subject": "Hi", "text": "a\nb\n{% frob %}"}, "text", 3},
		{"no subject", map[string]any{"slug": "d", "name": "D", "html": "x"}, "subject", 0},
		{"bad slug", map[string]any{"slug": "Not OK", "name": "E", "subject": "s", "html": "x"}, "slug", 0},
	}
	for _, tt := range tests {
		status, _, body := e.call(t, "POST", "/v1/templates", e.admin, tt.body)
		f := fieldOf(body)
		if status != 422 || f == nil || f["field"] != tt.field || f["reason"] == "" {
			t.Errorf("%s: %d %v, want 422 on %s", tt.name, status, body, tt.field)
			continue
		}
		if tt.line > 0 && f["line"] != tt.line {
			t.Errorf("%s: line %v, want %v", tt.name, f["line"], tt.line)
		}
	}
}

func TestChannelTestSendReachesSendGrid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := channeltest.NewSendGrid(t, "SG.api-test")

	// Sending before the channel exists says what to do.
	if status, _, body := e.call(t, "GET", "/v1/channels/email", e.admin, nil); status != 404 {
		t.Fatalf("unconfigured channel: %d %v", status, body)
	}
	if status, _, body := e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{"from_email": "news@shop.example"}); status != 422 || fieldOf(body)["field"] != "api_key" {
		t.Fatalf("no key: %d %v", status, body)
	}
	status, _, body := e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{"api_key": "SG.api-test", "from_email": "news@shop.example", "from_name": "The Shop", "base_url": fake.URL})
	if status != 200 || body["api_key_set"] != true {
		t.Fatalf("configure email: %d %v", status, body)
	}
	status, hdr, _ := e.call(t, "GET", "/v1/channels/email", e.admin, nil)
	raw := e.rawGet(t, "/v1/channels/email")
	if status != 200 || strings.Contains(raw, "SG.api-test") || !strings.Contains(raw, `"api_key_set":true`) {
		t.Fatalf("GET email channel reveals the key or lacks api_key_set: %d %s %v", status, raw, hdr)
	}
	// The key is encrypted at rest.
	if e.count(t, `SELECT count(*) FROM channel_settings WHERE workspace_id = $1 AND position('SG.api-test'::bytea in secret_ciphertext) > 0`, e.ws.ID) != 0 {
		t.Fatal("the API key is stored in clear")
	}
	// Changing the from name keeps the key.
	if status, _, body := e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{"from_email": "news@shop.example", "from_name": "The Shop Team", "base_url": fake.URL}); status != 200 || body["api_key_set"] != true {
		t.Fatalf("update without key: %d %v", status, body)
	}

	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "traits": map[string]any{"email": "ana@example.com", "first_name": "<b>Ana</b> {{ profile.id }}"}})
	ana := e.profileBy(t, "userId=ana")["id"].(string)

	status, _, tpl := e.call(t, "POST", "/v1/templates", e.admin, map[string]any{
		"slug": "welcome", "name": "Welcome", "subject": "Welcome {{ profile.traits.first_name }}", "preheader": "Glad you are here",
		"html": "<h1>Hi {{ profile.traits.first_name }}</h1>", "text": "Hi {{ profile.traits.first_name }}",
	})
	if status != 201 {
		t.Fatalf("create template: %d %v", status, tpl)
	}
	id := tpl["id"].(string)

	// Preview: values are escaped in HTML and never run as Liquid.
	status, _, prev := e.call(t, "POST", "/v1/templates/"+id+"/preview", e.admin, map[string]any{"profile_id": ana})
	if status != 200 || prev["html"] != "<h1>Hi &lt;b&gt;Ana&lt;/b&gt; {{ profile.id }}</h1>" || prev["text"] != "Hi <b>Ana</b> {{ profile.id }}" {
		t.Fatalf("preview: %d %v", status, prev)
	}
	if status, _, body := e.call(t, "POST", "/v1/templates/"+id+"/preview", e.admin, map[string]any{"profile_id": "00000000-0000-0000-0000-000000000000"}); status != 422 || fieldOf(body)["field"] != "profile_id" {
		t.Fatalf("preview of an unknown profile: %d %v", status, body)
	}

	// Test send to the profile.
	status, _, d := e.call(t, "POST", "/v1/templates/"+id+"/test-send", e.admin, map[string]any{"profile_id": ana})
	if status != 200 || d["status"] != "sent" || d["provider_message_id"] != "sg-msg-1" || !strings.HasPrefix(d["business_key"].(string), "test/welcome/") {
		t.Fatalf("test send: %d %v", status, d)
	}
	mails := fake.Accepted()
	if len(mails) != 1 {
		t.Fatalf("%d mails reached SendGrid", len(mails))
	}
	m := mails[0]
	p := m.Personalizations[0]
	if m.From.Email != "news@shop.example" || m.From.Name != "The Shop Team" || p.To[0].Email != "ana@example.com" || m.Subject != "Welcome <b>Ana</b> {{ profile.id }}" {
		t.Fatalf("mail: %+v", m)
	}
	if p.CustomArgs["parcours_delivery_id"] != d["id"] || p.CustomArgs["parcours_workspace_id"] != e.ws.ID {
		t.Fatalf("custom_args %v", p.CustomArgs)
	}
	for k, v := range p.CustomArgs {
		if strings.Contains(v, "@") || strings.Contains(v, "Ana") {
			t.Fatalf("custom_args carry personal data: %s=%s", k, v)
		}
	}
	if !strings.Contains(m.Body("text/html"), "Glad you are here") {
		t.Fatalf("no preheader in %q", m.Body("text/html"))
	}
	if !strings.HasPrefix(m.Headers["List-Unsubscribe"], "<"+e.url+"/v1/unsubscribe?token=") || m.Headers["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click" {
		t.Fatalf("List-Unsubscribe headers %v", m.Headers)
	}

	// Test send to a bare address, and a permanent refusal recorded as failed.
	fake.Then(channeltest.Answer{Status: 400})
	status, _, d = e.call(t, "POST", "/v1/templates/"+id+"/test-send", e.admin, map[string]any{"email": "bad@example.com"})
	if status != 200 || d["status"] != "failed" || !strings.Contains(d["reason"].(string), "valid address") {
		t.Fatalf("refused test send: %d %v", status, d)
	}
	if status, _, body := e.call(t, "POST", "/v1/templates/"+id+"/test-send", e.admin, map[string]any{"email": "nope"}); status != 422 || fieldOf(body)["field"] != "email" {
		t.Fatalf("bad address: %d %v", status, body)
	}

	status, _, list := e.call(t, "GET", "/v1/deliveries?profile_id="+ana, e.admin, nil)
	if status != 200 || len(list["data"].([]any)) != 1 {
		t.Fatalf("deliveries of ana: %d %v", status, list)
	}
}

func (e *env) rawGet(t *testing.T, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return string(raw)
}

func TestUnsubscribeOneClickAndConsent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	fake := channeltest.NewSendGrid(t, "SG.k")
	if status, _, body := e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{"api_key": "SG.k", "from_email": "news@shop.example", "base_url": fake.URL}); status != 200 {
		t.Fatalf("configure: %d %v", status, body)
	}
	if status, _, body := e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": "promo", "name": "Promo", "subject": "Sale", "html": "<p>Sale</p>"}); status != 201 {
		t.Fatalf("template: %d %v", status, body)
	}
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "traits": map[string]any{"email": "ana@example.com"}})
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "bob", "traits": map[string]any{"email": "bob@example.com"}})
	ana := e.profileBy(t, "userId=ana")["id"].(string)
	bob := e.profileBy(t, "userId=bob")["id"].(string)
	send := func(key, profileID string) channel.Delivery {
		t.Helper()
		d, err := e.ledger.Send(ctx, channel.SendRequest{BusinessKey: key, WorkspaceID: e.ws.ID, ProfileID: profileID, TemplateSlug: "promo", Channel: "email", Class: "marketing"})
		if err != nil {
			t.Fatalf("send %s: %v", key, err)
		}
		return d
	}
	if d := send("promo/1/ana", ana); d.Status != "sent" {
		t.Fatalf("first promo: %+v", d)
	}
	link := strings.Trim(fake.Accepted()[0].Headers["List-Unsubscribe"], "<>")
	u, _ := url.Parse(link)

	// GET shows a confirmation page and changes nothing.
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `name="List-Unsubscribe" value="One-Click"`) {
		t.Fatalf("unsubscribe page: %d %s", resp.StatusCode, page)
	}
	if d := send("promo/2/ana", ana); d.Status != "sent" {
		t.Fatalf("a GET of the link opted ana out: %+v", d)
	}
	// A tampered token is refused.
	resp, err = http.PostForm(e.url+"/v1/unsubscribe?token="+url.QueryEscape(u.Query().Get("token")+"x"), url.Values{"List-Unsubscribe": {"One-Click"}})
	if err != nil {
		t.Fatal(err)
	}
	var prob map[string]any
	json.NewDecoder(resp.Body).Decode(&prob)
	resp.Body.Close()
	if resp.StatusCode != 400 || fieldOf(prob)["field"] != "token" {
		t.Fatalf("tampered token: %d %v", resp.StatusCode, prob)
	}
	// RFC 8058 one-click POST, as a mailbox provider sends it.
	resp, err = http.PostForm(link, url.Values{"List-Unsubscribe": {"One-Click"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("one-click: %d", resp.StatusCode)
	}
	d := send("promo/3/ana", ana)
	if d.Status != "skipped" || d.Reason != "unsubscribed from marketing email" {
		t.Fatalf("after one-click: %+v, want skipped", d)
	}
	status, _, list := e.call(t, "GET", "/v1/deliveries?profile_id="+ana, e.admin, nil)
	if status != 200 || list["data"].([]any)[0].(map[string]any)["status"] != "skipped" {
		t.Fatalf("ledger: %v", list)
	}

	// Consent through the API: bob opts out of marketing, then back in.
	status, _, sub := e.call(t, "PUT", "/v1/profiles/"+bob+"/subscriptions/email", e.admin, map[string]any{"purpose": "marketing", "status": "unsubscribed"})
	if status != 200 || sub["status"] != "unsubscribed" {
		t.Fatalf("opt out: %d %v", status, sub)
	}
	if d := send("promo/1/bob", bob); d.Status != "skipped" {
		t.Fatalf("bob after opt-out: %+v", d)
	}
	e.call(t, "PUT", "/v1/profiles/"+bob+"/subscriptions/email", e.admin, map[string]any{"purpose": "marketing", "status": "subscribed"})
	if d := send("promo/2/bob", bob); d.Status != "sent" {
		t.Fatalf("bob after opt-in: %+v", d)
	}
	if status, _, body := e.call(t, "PUT", "/v1/profiles/"+bob+"/subscriptions/email", e.admin, map[string]any{"purpose": "news", "status": "unsubscribed"}); status != 422 || fieldOf(body)["field"] != "purpose" {
		t.Fatalf("bad purpose: %d %v", status, body)
	}
	if n := len(fake.Accepted()); n != 3 {
		t.Fatalf("%d mails sent, want 3", n)
	}
}

func TestChannelWebhookSettingsHideTheSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if status, _, body := e.call(t, "PUT", "/v1/channels/webhook", e.admin, map[string]any{"url": "ftp://x"}); status != 422 || fieldOf(body)["field"] != "url" {
		t.Fatalf("bad url: %d %v", status, body)
	}
	status, _, body := e.call(t, "PUT", "/v1/channels/webhook", e.admin, map[string]any{"url": "https://hooks.example.com/parcours", "signing_secret": "0123456789abcdef-secret"})
	if status != 200 || body["signing_secret_set"] != true {
		t.Fatalf("configure webhook: %d %v", status, body)
	}
	if raw := e.rawGet(t, "/v1/channels/webhook"); strings.Contains(raw, "0123456789abcdef-secret") || !strings.Contains(raw, `"signing_secret_set":true`) {
		t.Fatalf("GET webhook channel: %s", raw)
	}
}

package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/channel/channeltest"
	"github.com/parcours/parcours/pkg/user"
)

// reasons maps each field of a problem to its reason.
func reasons(body map[string]any) map[string]string {
	out := map[string]string{}
	errs, _ := body["errors"].([]any)
	for _, x := range errs {
		f := x.(map[string]any)
		out[f["field"].(string)] = f["reason"].(string)
	}
	return out
}

// A stored SendGrid key or Twilio token is never sent to a host it was not
// entered for: changing the base URL needs the secret again, and the host
// must be one the operator allows (PARCOURS_PROVIDER_URL_ALLOW).
func TestStoredProviderSecretsStayWithTheirHost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := channeltest.NewSendGrid(t, "SG.real")
	elsewhere := channeltest.NewSendGrid(t, "SG.real") // accepts the key too: it would record it
	put := func(body map[string]any) (int, map[string]any) {
		status, _, out := e.call(t, "PUT", "/v1/channels/email", e.admin, body)
		return status, out
	}
	if status, body := put(map[string]any{"api_key": "SG.real", "from_email": "news@shop.example", "base_url": fake.URL}); status != 200 {
		t.Fatalf("configure email: %d %v", status, body)
	}
	// Same URL (a trailing slash is the same URL): the key is kept.
	if status, body := put(map[string]any{"from_email": "news@shop.example", "from_name": "Shop", "base_url": fake.URL + "/"}); status != 200 || body["api_key_set"] != true {
		t.Fatalf("same URL without the key: %d %v", status, body)
	}
	// Another URL without the key: refused, nothing changes.
	status, body := put(map[string]any{"from_email": "news@shop.example", "base_url": elsewhere.URL})
	if r := reasons(body); status != 422 || r["api_key"] != "enter the API key again: the provider URL changed, and a stored key is never sent to a new host" {
		t.Fatalf("new URL without the key: %d %v", status, body)
	}
	// Going back to SendGrid's default host is a change of URL too.
	if status, body := put(map[string]any{"from_email": "news@shop.example"}); status != 422 || reasons(body)["api_key"] == "" {
		t.Fatalf("default URL without the key: %d %v", status, body)
	}
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "traits": map[string]any{"email": "ana@example.com"}})
	ana := e.profileBy(t, "userId=ana")["id"].(string)
	status, _, tpl := e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": "hello", "name": "Hello", "subject": "Hi", "html": "<p>Hi</p>", "text": "Hi"})
	if status != 201 {
		t.Fatalf("template: %d %v", status, tpl)
	}
	if status, _, d := e.call(t, "POST", "/v1/templates/"+tpl["id"].(string)+"/test-send", e.admin, map[string]any{"profile_id": ana}); status != 200 || d["status"] != "sent" {
		t.Fatalf("test send: %d %v", status, d)
	}
	if len(fake.Accepted()) != 1 || elsewhere.Calls() != 0 {
		t.Fatalf("the test send reached the configured host %d times and the other %d times", len(fake.Accepted()), elsewhere.Calls())
	}

	// A host the operator does not allow is refused, with the setting to change.
	status, body = put(map[string]any{"api_key": "SG.real", "from_email": "news@shop.example", "base_url": "https://sendgrid.attacker.example"})
	if r := reasons(body)["base_url"]; status != 422 || !strings.Contains(r, "sendgrid.attacker.example") || !strings.Contains(r, "PARCOURS_PROVIDER_URL_ALLOW") {
		t.Fatalf("host not allowed: %d %v", status, body)
	}
	// Plain http sends the key in clear: only to this machine.
	if status, body := put(map[string]any{"api_key": "SG.real", "from_email": "news@shop.example", "base_url": "http://api.sendgrid.com"}); status != 422 || !strings.Contains(reasons(body)["base_url"], "https") {
		t.Fatalf("plain http to SendGrid: %d %v", status, body)
	}
	// SendGrid's own hosts are allowed by default, with a new key.
	if status, body := put(map[string]any{"api_key": "SG.other", "from_email": "news@shop.example", "base_url": "https://api.eu.sendgrid.com"}); status != 200 {
		t.Fatalf("SendGrid EU: %d %v", status, body)
	}

	// The same for Twilio's auth token.
	twilio := channeltest.NewTwilio(t)
	other := channeltest.NewTwilio(t)
	e.putSMSChannel(t, twilio, "")
	status, _, body = e.call(t, "PUT", "/v1/channels/sms", e.admin, map[string]any{
		"account_sid": twilio.AccountSID, "from_number": channeltest.TwilioFrom, "base_url": other.URL})
	if r := reasons(body); status != 422 || r["auth_token"] != "enter the Auth Token again: the provider URL changed, and a stored token is never sent to a new host" {
		t.Fatalf("new Twilio URL without the token: %d %v", status, body)
	}
	status, _, body = e.call(t, "PUT", "/v1/channels/sms", e.admin, map[string]any{
		"account_sid": twilio.AccountSID, "auth_token": twilio.AuthToken, "from_number": channeltest.TwilioFrom, "base_url": "https://twilio.attacker.example"})
	if r := reasons(body)["base_url"]; status != 422 || !strings.Contains(r, "PARCOURS_PROVIDER_URL_ALLOW") {
		t.Fatalf("Twilio host not allowed: %d %v", status, body)
	}
}

// The console's form says why the key must be typed again.
func TestConsoleAsksForTheKeyWhenTheProviderURLChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, token := settingsSignIn(t, e, "ana@shop.example", user.RoleAdmin)
	resp, _ := admin.settingsPost(t, "/settings/channels/email", token, url.Values{"api_key": {"SG.first-secret-key-7a1c"}, "from_email": {"news@shop.example"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save email: %d", resp.StatusCode)
	}
	resp, page := admin.settingsPost(t, "/settings/channels/email", token, url.Values{"from_email": {"news@shop.example"}, "base_url": {"https://api.eu.sendgrid.com"}})
	wantSettingsPage(t, "new URL without the key", resp, page, 422,
		`id="email-api-key-error">Enter the API key again: the provider URL changed, and a stored key is never sent to a new host.`)
	resp, page = admin.settingsPost(t, "/settings/channels/email", token, url.Values{"api_key": {"SG.k"}, "from_email": {"news@shop.example"}, "base_url": {"https://mail.attacker.example"}})
	wantSettingsPage(t, "host not allowed", resp, page, 422, `The API address must name a provider host this server allows`, "PARCOURS_PROVIDER_URL_ALLOW")
}

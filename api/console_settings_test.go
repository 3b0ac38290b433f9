package api_test

import (
	"context"
	"errors"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/user"
	"github.com/parcours/parcours/pkg/workspace"
)

// post sends a console form with the session's CSRF token and returns the
// status and the page as text (HTML entities decoded, so that assertions
// read like the page).
func (b *browser) settingsPost(t *testing.T, path, csrf string, form url.Values) (*http.Response, string) {
	t.Helper()
	form.Set("csrf", csrf)
	resp, body := b.do(t, "POST", path, form)
	return resp, html.UnescapeString(body)
}

func (b *browser) settingsGet(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, body := b.do(t, "GET", path, nil)
	return resp, html.UnescapeString(body)
}

// signedIn creates a user with role and signs a new browser in as them.
func settingsSignIn(t *testing.T, e *env, email string, role user.Role) (*browser, string) {
	t.Helper()
	password := e.consoleUser(t, email, role)
	b := newBrowser(t, e)
	return b, b.signIn(t, email, password)
}

func wantSettingsPage(t *testing.T, what string, resp *http.Response, body string, status int, says ...string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s: %d, want %d\n%.3000s", what, resp.StatusCode, status, body)
	}
	for _, s := range says {
		if !strings.Contains(body, s) {
			t.Fatalf("%s: the page does not say %q\n%.6000s", what, s, body)
		}
	}
}

// refusedToRole checks the 403 page a role too low gets.
func wantRoleRefused(t *testing.T, what string, resp *http.Response, body string) {
	t.Helper()
	wantSettingsPage(t, what, resp, body, http.StatusForbidden, "can look but not change this", "admin role")
}

func TestConsoleSettingsIdentity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, token := settingsSignIn(t, e, "ana@shop.example", user.RoleAdmin)
	viewer, viewerToken := settingsSignIn(t, e, "vic@shop.example", user.RoleViewer)

	resp, page := admin.settingsGet(t, "/settings")
	wantSettingsPage(t, "GET /settings", resp, page, 200, "Unique identifier", "What a change means", e.ws.Name)
	if !regexp.MustCompile(`id="unique-email" name="unique_identifier" value="email" checked`).MatchString(page) {
		t.Fatalf("email is not shown as the current unique identifier:\n%.4000s", page)
	}

	// A trait name that is not one: the field says why, nothing changes.
	resp, page = admin.settingsPost(t, "/settings", token, url.Values{"unique_identifier": {"other"}, "other_identifier": {"Customer Number"}, "identity_traits": {"email, phone"}})
	wantSettingsPage(t, "bad trait", resp, page, 422, `id="other-identifier-error">The unique identifier must be User ID or a trait name`, `value="Customer Number"`)
	if _, _, w := e.call(t, "GET", "/v1/workspace", e.admin, nil); w["unique_identifier"] != "email" {
		t.Fatalf("a refused form changed the workspace: %v", w)
	}
	resp, page = admin.settingsPost(t, "/settings", token, url.Values{"unique_identifier": {"email"}, "identity_traits": {"email, Phone Number"}})
	wantSettingsPage(t, "bad identity trait", resp, page, 422, `id="identity-traits-error">"Phone Number" is not a usable trait name`)

	// A new trait as the unique identifier: the API reports it.
	resp, _ = admin.settingsPost(t, "/settings", token, url.Values{"unique_identifier": {"other"}, "other_identifier": {"customer_number"}, "identity_traits": {"email, phone"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/settings?saved=1" {
		t.Fatalf("save: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, _, w := e.call(t, "GET", "/v1/workspace", e.admin, nil)
	if w["unique_identifier"] != "customer_number" || !strings.Contains(strings.Join(stringList(w["identity_traits"]), ","), "customer_number") {
		t.Fatalf("after save the API reports %v", w)
	}
	resp, page = admin.settingsGet(t, "/settings?saved=1")
	wantSettingsPage(t, "after save", resp, page, 200, "Saved.", `value="customer_number" checked`)

	// A viewer sees the rules, without a way to change them, and is refused a change.
	resp, page = viewer.settingsGet(t, "/settings")
	wantSettingsPage(t, "viewer GET /settings", resp, page, 200, "changing them needs the admin role")
	if strings.Contains(page, "Save identity rules") || strings.Contains(page, "Check the system") {
		t.Fatalf("a viewer is offered the admin's buttons:\n%.4000s", page)
	}
	resp, page = viewer.settingsPost(t, "/settings", viewerToken, url.Values{"unique_identifier": {"user_id"}, "identity_traits": {"email"}})
	wantRoleRefused(t, "viewer POST /settings", resp, page)
	if _, _, w := e.call(t, "GET", "/v1/workspace", e.admin, nil); w["unique_identifier"] != "customer_number" {
		t.Fatalf("a viewer's form changed the workspace: %v", w)
	}

	// The system check runs the diagnostic workflow on the env's worker.
	resp, page = admin.settingsPost(t, "/settings/check", token, url.Values{})
	wantSettingsPage(t, "system check", resp, page, 200, "Everything answers")
}

func stringList(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestConsoleSettingsChannels(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, token := settingsSignIn(t, e, "ana@shop.example", user.RoleAdmin)
	marketer, marketerToken := settingsSignIn(t, e, "mia@shop.example", user.RoleMarketer)

	resp, page := admin.settingsGet(t, "/settings/channels")
	wantSettingsPage(t, "GET /settings/channels", resp, page, 200, "Not configured yet: journeys and broadcasts cannot send email", "/v1/webhooks/sendgrid/"+e.ws.ID)

	// Email: the first configuration needs a key; a wrong address is named.
	resp, page = admin.settingsPost(t, "/settings/channels/email", token, url.Values{"api_key": {"SG.first-secret-key-7a1c"}, "from_email": {"news at shop"}, "from_name": {"Shop"}})
	wantSettingsPage(t, "bad sender", resp, page, 422, `id="email-from-email-error">The sender's address must be a bare email address`, "type it again")
	if strings.Contains(page, "first-secret-key") {
		t.Fatal("the page shows back the API key typed in")
	}
	if status, _, _ := e.call(t, "GET", "/v1/channels/email", e.admin, nil); status != http.StatusNotFound {
		t.Fatalf("a refused form configured the channel: %d", status)
	}
	resp, page = admin.settingsPost(t, "/settings/channels/email", token, url.Values{"from_email": {"news@shop.example"}})
	wantSettingsPage(t, "no key", resp, page, 422, `id="email-api-key-error">The API key is required to configure the channel`)

	resp, _ = admin.settingsPost(t, "/settings/channels/email", token, url.Values{"api_key": {"SG.first-secret-key-7a1c"}, "from_email": {"news@shop.example"}, "from_name": {"Shop"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save email: %d", resp.StatusCode)
	}
	_, _, ch := e.call(t, "GET", "/v1/channels/email", e.admin, nil)
	if ch["from_email"] != "news@shop.example" || ch["from_name"] != "Shop" || ch["api_key_set"] != true {
		t.Fatalf("the API reports %v", ch)
	}
	resp, page = admin.settingsGet(t, "/settings/channels?saved=email")
	wantSettingsPage(t, "after save", resp, page, 200, "Email settings saved", "Set, ends in <code>…7a1c</code>", `value="news@shop.example"`)
	if strings.Contains(page, "first-secret-key") {
		t.Fatal("the Channels page shows the API key")
	}
	// An empty key field keeps the key.
	resp, _ = admin.settingsPost(t, "/settings/channels/email", token, url.Values{"from_email": {"hello@shop.example"}, "from_name": {"The Shop"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save without a key: %d", resp.StatusCode)
	}
	if _, page = admin.settingsGet(t, "/settings/channels"); !strings.Contains(page, "…7a1c</code>") || !strings.Contains(page, `value="hello@shop.example"`) {
		t.Fatalf("the key was not kept, or the sender not changed:\n%.5000s", page)
	}

	// SMS: every wrong field at once, in words.
	resp, page = admin.settingsPost(t, "/settings/channels/sms", token, url.Values{"account_sid": {"AC123"}, "auth_token": {"0123456789abcdef0123456789abcdef"}})
	wantSettingsPage(t, "bad SMS", resp, page, 422, `id="sms-account-sid-error">The Account SID must be a Twilio Account SID`,
		`id="sms-from-number-error">Give the number to send from, or a Messaging Service SID.`)
	sid := "AC" + strings.Repeat("0123456789abcdef", 2)
	resp, _ = admin.settingsPost(t, "/settings/channels/sms", token, url.Values{"account_sid": {sid}, "auth_token": {"0123456789abcdef0123456789abcd9f"}, "from_number": {"+14155550100"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save SMS: %d", resp.StatusCode)
	}
	if _, _, sms := e.call(t, "GET", "/v1/channels/sms", e.admin, nil); sms["account_sid"] != sid || sms["from_number"] != "+14155550100" || sms["auth_token_set"] != true {
		t.Fatalf("the API reports %v", sms)
	}
	if _, page = admin.settingsGet(t, "/settings/channels"); !strings.Contains(page, "…cd9f</code>") {
		t.Fatalf("the auth token's end is not shown:\n%.5000s", page)
	}

	// Webhook.
	resp, page = admin.settingsPost(t, "/settings/channels/webhook", token, url.Values{"url": {"https://hooks.shop.example/parcours"}, "signing_secret": {"short"}})
	wantSettingsPage(t, "short secret", resp, page, 422, `id="webhook-secret-error">The signing secret must be at least 16 characters`)
	resp, _ = admin.settingsPost(t, "/settings/channels/webhook", token, url.Values{"url": {"https://hooks.shop.example/parcours"}, "signing_secret": {"a shared secret of some length"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save webhook: %d", resp.StatusCode)
	}
	if _, _, hook := e.call(t, "GET", "/v1/channels/webhook", e.admin, nil); hook["url"] != "https://hooks.shop.example/parcours" || hook["signing_secret_set"] != true {
		t.Fatalf("the API reports %v", hook)
	}

	// A marketer sees the channels but cannot change them.
	resp, page = marketer.settingsGet(t, "/settings/channels")
	wantSettingsPage(t, "marketer GET", resp, page, 200, "…7a1c</code>", "changing them needs the admin role")
	for _, path := range []string{"/settings/channels/email", "/settings/channels/sms", "/settings/channels/webhook"} {
		resp, page = marketer.settingsPost(t, path, marketerToken, url.Values{"api_key": {"SG.marketer"}, "from_email": {"evil@shop.example"}, "url": {"https://evil.example"}})
		wantRoleRefused(t, "marketer POST "+path, resp, page)
	}
	if _, _, ch := e.call(t, "GET", "/v1/channels/email", e.admin, nil); ch["from_email"] != "hello@shop.example" {
		t.Fatalf("a marketer's form changed the channel: %v", ch)
	}
}

func TestConsoleSettingsDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, token := settingsSignIn(t, e, "ana@shop.example", user.RoleAdmin)
	viewer, viewerToken := settingsSignIn(t, e, "vic@shop.example", user.RoleViewer)

	resp, page := admin.settingsGet(t, "/settings/delivery")
	wantSettingsPage(t, "GET /settings/delivery", resp, page, 200, "Transactional messages", "are never held back", `name="cap_max_0" value=""`)

	good := url.Values{
		"cap_rows": {"3"}, "cap_max_0": {"2"}, "cap_channel_0": {"email"}, "cap_per_n_0": {"1"}, "cap_per_unit_0": {"d"},
		"cap_max_1": {""}, "cap_channel_1": {"email"}, "cap_per_n_1": {"1"}, "cap_per_unit_1": {"d"},
		"cap_max_2": {"1"}, "cap_channel_2": {"sms"}, "cap_per_n_2": {"7"}, "cap_per_unit_2": {"d"},
		"quiet_on": {"on"}, "quiet_start": {"21:00"}, "quiet_end": {"08:00"}, "quiet_channel": {"email", "sms"},
		"default_timezone": {"Europe/Paris"},
	}
	resp, _ = admin.settingsPost(t, "/settings/delivery", token, good)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save: %d", resp.StatusCode)
	}
	_, _, p := e.call(t, "GET", "/v1/policies/delivery", e.admin, nil)
	caps := p["frequency_caps"].([]any)
	if len(caps) != 2 || caps[0].(map[string]any)["max"] != 2.0 || caps[0].(map[string]any)["per"] != "1d" ||
		caps[1].(map[string]any)["channel"] != "sms" || caps[1].(map[string]any)["per"] != "7d" || caps[0].(map[string]any)["purpose"] != "marketing" {
		t.Fatalf("caps: %v", caps)
	}
	q := p["quiet_hours"].(map[string]any)
	if q["start"] != "21:00" || q["end"] != "08:00" || len(q["channels"].([]any)) != 2 || p["default_timezone"] != "Europe/Paris" {
		t.Fatalf("quiet hours: %v", p)
	}
	resp, page = admin.settingsGet(t, "/settings/delivery?saved=1")
	wantSettingsPage(t, "after save", resp, page, 200, "Saved.", `name="cap_max_0" value="2"`, `name="cap_max_1" value="1"`, `value="Europe/Paris"`)

	// Wrong values: each next to its field, nothing saved.
	bad := url.Values{}
	for k, v := range good {
		bad[k] = v
	}
	bad.Set("cap_max_0", "0")
	bad.Set("cap_per_n_2", "two")
	bad.Set("quiet_start", "25:00")
	bad.Set("default_timezone", "Mars/Olympus")
	resp, page = admin.settingsPost(t, "/settings/delivery", token, bad)
	wantSettingsPage(t, "bad policy", resp, page, 422, `id="cap-per-2-error">Type a whole number`, `"Mars/Olympus" is not a time zone we know`)
	bad.Set("cap_per_n_2", "7")
	resp, page = admin.settingsPost(t, "/settings/delivery", token, bad)
	wantSettingsPage(t, "bad policy", resp, page, 422, `id="cap-max-0-error">Choose from 1 to 1000 messages.`,
		`id="quiet-start-error">Give the time quiet hours begin`, `id="default-timezone-error">"Mars/Olympus" is not a time zone we know`)
	if _, _, again := e.call(t, "GET", "/v1/policies/delivery", e.admin, nil); again["default_timezone"] != "Europe/Paris" {
		t.Fatalf("a refused form changed the policy: %v", again)
	}

	// Emptying a cap's number removes it; unticking quiet hours turns them off.
	off := url.Values{}
	for k, v := range good {
		off[k] = v
	}
	off.Set("cap_max_0", "")
	off.Del("quiet_on")
	if resp, page = admin.settingsPost(t, "/settings/delivery", token, off); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save: %d\n%.3000s", resp.StatusCode, page)
	}
	if _, _, p = e.call(t, "GET", "/v1/policies/delivery", e.admin, nil); len(p["frequency_caps"].([]any)) != 1 || p["quiet_hours"] != nil {
		t.Fatalf("after removing a cap and quiet hours: %v", p)
	}

	resp, page = viewer.settingsPost(t, "/settings/delivery", viewerToken, good)
	wantRoleRefused(t, "viewer POST /settings/delivery", resp, page)
}

var shownPassword = regexp.MustCompile(`<code id="new-password">([^<]+)</code>`)

func TestConsoleSettingsUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	users := user.NewStore(e.pool)
	admin, token := settingsSignIn(t, e, "ana@shop.example", user.RoleAdmin)
	ana, err := users.Authenticate(ctx, "", "ana@shop.example", "a long enough password")
	if err != nil {
		t.Fatal(err)
	}

	resp, page := admin.settingsGet(t, "/settings/users")
	wantSettingsPage(t, "GET /settings/users", resp, page, 200, "ana@shop.example", "Add someone")

	// The only admin can neither step down nor deactivate themselves.
	resp, page = admin.settingsPost(t, "/settings/users/"+ana.ID+"/role", token, url.Values{"role": {"marketer"}})
	wantSettingsPage(t, "demote the last admin", resp, page, http.StatusConflict, "only active admin: make someone else an admin first")
	resp, page = admin.settingsPost(t, "/settings/users/"+ana.ID+"/deactivate", token, url.Values{})
	wantSettingsPage(t, "deactivate oneself", resp, page, http.StatusConflict, "You cannot deactivate or remove your own account")
	if u, _ := users.Get(ctx, e.ws.ID, ana.ID); u.Role != user.RoleAdmin || u.DisabledAt != nil {
		t.Fatalf("a refused change changed the admin: %+v", u)
	}

	// Adding someone: wrong email, then right; the password is shown once.
	resp, page = admin.settingsPost(t, "/settings/users", token, url.Values{"email": {"mia at shop"}, "name": {"Mia"}, "role": {"marketer"}})
	wantSettingsPage(t, "bad email", resp, page, 422, `id="new-email-error">Type the person's email address`, `value="Mia"`)
	resp, page = admin.settingsPost(t, "/settings/users", token, url.Values{"email": {"Mia@Shop.example"}, "name": {"Mia"}, "role": {"marketer"}})
	wantSettingsPage(t, "add Mia", resp, page, http.StatusCreated, "Mia can now sign in as marketer", "/login?workspace="+e.ws.Slug)
	m := shownPassword.FindStringSubmatch(page)
	if m == nil || len(m[1]) < user.MinPasswordLength {
		t.Fatalf("no password shown:\n%.4000s", page)
	}
	resp, page = admin.settingsPost(t, "/settings/users", token, url.Values{"email": {"mia@shop.example"}, "role": {"viewer"}})
	wantSettingsPage(t, "same email again", resp, page, 422, "already has this email")
	if _, page = admin.settingsGet(t, "/settings/users"); strings.Contains(page, m[1]) {
		t.Fatal("the new user's password is shown again on the list")
	}

	// Mia signs in with that password, as a marketer: she sees the users but manages none.
	mia := newBrowser(t, e)
	miaToken := mia.signIn(t, "mia@shop.example", m[1])
	resp, page = mia.settingsGet(t, "/settings/account")
	wantSettingsPage(t, "Mia's account", resp, page, 200, `id="my-role">marketer`)
	resp, page = mia.settingsGet(t, "/settings/users")
	wantSettingsPage(t, "Mia's users page", resp, page, 200, "ana@shop.example", "changing them needs the admin role")
	if strings.Contains(page, "Add someone") || strings.Contains(page, "/deactivate") {
		t.Fatalf("a marketer is offered user management:\n%.4000s", page)
	}
	resp, page = mia.settingsPost(t, "/settings/users", miaToken, url.Values{"email": {"eve@shop.example"}, "role": {"admin"}})
	wantRoleRefused(t, "marketer adds a user", resp, page)
	resp, page = mia.settingsPost(t, "/settings/users/"+ana.ID+"/role", miaToken, url.Values{"role": {"viewer"}})
	wantRoleRefused(t, "marketer changes a role", resp, page)

	// The admin changes Mia's role, deactivates her (her session ends, she
	// cannot sign in), and removes her.
	miaUser, err := users.Authenticate(ctx, "", "mia@shop.example", m[1])
	if err != nil {
		t.Fatal(err)
	}
	resp, _ = admin.settingsPost(t, "/settings/users/"+miaUser.ID+"/role", token, url.Values{"role": {"viewer"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("change role: %d", resp.StatusCode)
	}
	resp, page = admin.settingsGet(t, resp.Header.Get("Location"))
	wantSettingsPage(t, "after role change", resp, page, 200, "Mia now has the viewer role.")
	if u, _ := users.Get(ctx, e.ws.ID, miaUser.ID); u.Role != user.RoleViewer {
		t.Fatalf("role: %s", u.Role)
	}
	resp, _ = admin.settingsPost(t, "/settings/users/"+miaUser.ID+"/remove", token, url.Values{})
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("removing an active user: %d, want 409", resp.StatusCode)
	}
	resp, _ = admin.settingsPost(t, "/settings/users/"+miaUser.ID+"/deactivate", token, url.Values{})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("deactivate: %d", resp.StatusCode)
	}
	if resp, _ := mia.do(t, "GET", "/settings/account", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a deactivated user's session still opens pages: %d", resp.StatusCode)
	}
	_, login := mia.do(t, "GET", "/login", nil)
	resp, body := mia.do(t, "POST", "/login", url.Values{"email": {"mia@shop.example"}, "password": {m[1]}, "csrf": {csrfOf(t, login)}})
	wantSettingsPage(t, "deactivated sign-in", resp, html.UnescapeString(body), http.StatusForbidden, "Your account was deactivated")
	resp, _ = admin.settingsPost(t, "/settings/users/"+miaUser.ID+"/remove", token, url.Values{})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove: %d", resp.StatusCode)
	}
	if _, err := users.Get(ctx, e.ws.ID, miaUser.ID); !errors.Is(err, user.ErrNotFound) {
		t.Fatalf("removed user: %v", err)
	}

	// Another workspace's user is not found here.
	other, _, _, err := workspace.NewStore(e.pool).Bootstrap(ctx, "other", "Other")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := users.Create(ctx, other.ID, "sam@other.example", "", user.RoleAdmin, "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	resp, _ = admin.settingsPost(t, "/settings/users/"+stranger.ID+"/role", token, url.Values{"role": {"viewer"}})
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("another workspace's user: %d, want 404", resp.StatusCode)
	}
	if u, _ := users.Get(ctx, other.ID, stranger.ID); u.Role != user.RoleAdmin {
		t.Fatalf("another workspace's user changed: %+v", u)
	}
}

func TestConsoleChangeOwnPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const old = "a long enough password"
	const next = "correct horse battery staple"
	b, token := settingsSignIn(t, e, "vic@shop.example", user.RoleViewer)

	for _, tt := range []struct {
		name                   string
		current, next, confirm string
		says                   string
	}{
		{"wrong current password", "not my password", next, next, `id="current-password-error">This is not your current password.`},
		{"too short", old, "short", "short", `id="new-password-error">The new password must be at least 10 characters.`},
		{"not confirmed", old, next, next + "!", `id="confirm-password-error">This is not the same as the new password`},
	} {
		resp, page := b.settingsPost(t, "/settings/account/password", token, url.Values{"current_password": {tt.current}, "new_password": {tt.next}, "confirm_password": {tt.confirm}})
		wantSettingsPage(t, tt.name, resp, page, http.StatusUnprocessableEntity, tt.says)
	}
	resp, _ := b.settingsPost(t, "/settings/account/password", token, url.Values{"current_password": {old}, "new_password": {next}, "confirm_password": {next}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("change: %d", resp.StatusCode)
	}
	resp, page := b.settingsGet(t, "/settings/account?saved=1")
	wantSettingsPage(t, "after change", resp, page, 200, "Your password is changed.")

	other := newBrowser(t, e)
	_, login := other.do(t, "GET", "/login", nil)
	if resp, _ := other.do(t, "POST", "/login", url.Values{"email": {"vic@shop.example"}, "password": {old}, "csrf": {csrfOf(t, login)}}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("sign-in with the old password: %d", resp.StatusCode)
	}
	other.signIn(t, "vic@shop.example", next)
}

package api_test

import (
	"bytes"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/user"
)

// upload posts a multipart form, as a browser sends the import form.
func (b *browser) upload(t *testing.T, path string, fields map[string]string, fileName, file string) (*http.Response, string) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := w.CreateFormFile("file", fileName)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(fw, file)
	w.Close()
	req, err := http.NewRequest("POST", b.e.url+path, &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

// track sends one record the way analytics.js does: a cross-origin POST
// with the write key in the body, as text/plain.
func (e *env) trackFromPage(t *testing.T, writeKey, body string) *http.Response {
	t.Helper()
	body = strings.Replace(body, "{", `{"writeKey":"`+writeKey+`",`, 1)
	req, err := http.NewRequest("POST", e.url+"/v1/track", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Origin", "https://shop.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// text is a page's text as a person reads it: entities decoded.
func text(page string) string { return html.UnescapeString(page) }

var secretOnPage = regexp.MustCompile(`<code id="secret" class="secret">(pcs_write_[0-9A-Za-z]+)</code>`)

// rowOf returns the table row of a page that mentions s.
func rowOf(t *testing.T, page, s string) string {
	t.Helper()
	i := strings.Index(page, s)
	if i < 0 {
		t.Fatalf("page has no %q:\n%.3000s", s, page)
	}
	start := strings.LastIndex(page[:i], "<tr")
	end := strings.Index(page[i:], "</tr>")
	if start < 0 || end < 0 {
		t.Fatalf("%q is not in a table row", s)
	}
	return page[start : i+end]
}

// An admin creates a write key for the website: the secret is shown once
// with snippets that use it, and it works at once (from a web page of
// another origin too). Revoking needs a confirmation; then the key is
// refused. Viewers and marketers see the keys but cannot create or revoke.
func TestConsoleWriteKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := newBrowser(t, e)
	token := admin.signIn(t, "ada@shop.example", e.consoleUser(t, "ada@shop.example", user.RoleAdmin))

	resp, page := admin.do(t, "GET", "/data", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `href="/data" aria-current="page">Data</a>`) || !strings.Contains(page, `id="new-key"`) {
		t.Fatalf("GET /data: %d\n%.3000s", resp.StatusCode, page)
	}

	// A name is needed; the form says so next to the field.
	resp, page = admin.do(t, "POST", "/data/keys", url.Values{"csrf": {token}, "name": {" "}, "source": {"web"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="key-name-error"`) {
		t.Fatalf("key without a name: %d\n%.3000s", resp.StatusCode, page)
	}
	resp, page = admin.do(t, "POST", "/data/keys", url.Values{"csrf": {token}, "name": {"Loyalty"}, "source": {"other"}, "source_other": {"  "}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="source-error"`) {
		t.Fatalf("key without a source: %d\n%.3000s", resp.StatusCode, page)
	}

	resp, page = admin.do(t, "POST", "/data/keys", url.Values{"csrf": {token}, "name": {"Online shop"}, "source": {"web"}})
	m := secretOnPage.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusCreated || m == nil {
		t.Fatalf("create key: %d\n%.3000s", resp.StatusCode, page)
	}
	secret := m[1]
	host := strings.TrimPrefix(e.url, "http://")
	for _, want := range []string{
		`const writeKey = "` + secret + `";`,
		`apiHost: "` + host + `/v1", protocol: "http"`,
		"curl " + e.url + "/v1/track",
		"-u '" + secret + ":'",
		"this is the only time it is shown",
	} {
		if !strings.Contains(text(page), want) {
			t.Errorf("the new key's page lacks %q", want)
		}
	}
	// The page shows the secret once: the key's own page has a placeholder.
	keyPath := regexp.MustCompile(`action="(/data/keys/[0-9a-f-]+)/revoke"`).FindStringSubmatch(page)
	if keyPath == nil {
		t.Fatalf("no revoke form on the new key's page")
	}
	if _, again := admin.do(t, "GET", keyPath[1], nil); strings.Contains(again, secret) || !strings.Contains(text(again), `const writeKey = "YOUR_WRITE_KEY"`) {
		t.Errorf("the key's page shows the secret again, or no placeholder")
	}

	// The key works, as analytics.js sends it from a shop's page; the
	// browser may read the answer.
	resp = e.trackFromPage(t, secret, `{"userId":"42","event":"Product Viewed"}`)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("track with the new key: %d, CORS %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	pre, _ := http.NewRequest("OPTIONS", e.url+"/v1/track", nil)
	pre.Header.Set("Origin", "https://shop.example")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "content-type")
	presp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	presp.Body.Close()
	if presp.StatusCode != http.StatusNoContent || presp.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(presp.Header.Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Errorf("preflight: %d %v", presp.StatusCode, presp.Header)
	}
	if status, hdr, _ := e.call(t, "GET", "/v1/api-keys", e.admin, nil); status != 200 || hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a management endpoint answers cross-origin: %d %q", status, hdr.Get("Access-Control-Allow-Origin"))
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE source = 'web' AND name = 'Product Viewed'`); n != 1 {
		t.Fatalf("stored %d events with the new key", n)
	}
	_, page = admin.do(t, "GET", "/data", nil)
	row := rowOf(t, page, "Online shop")
	for _, want := range []string{"Website", "Send data", "just now", "Active"} {
		if !strings.Contains(row, want) {
			t.Errorf("the key's row lacks %q: %s", want, row)
		}
	}

	// A marketer and a viewer see the keys, but may not create or revoke one.
	for _, role := range []user.Role{user.RoleMarketer, user.RoleViewer} {
		b := newBrowser(t, e)
		email := string(role) + "@shop.example"
		tok := b.signIn(t, email, e.consoleUser(t, email, role))
		resp, page := b.do(t, "GET", "/data", nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Online shop") || strings.Contains(page, `id="new-key"`) {
			t.Errorf("%s GET /data: %d, create form shown: %v", role, resp.StatusCode, strings.Contains(page, `id="new-key"`))
		}
		resp, page = b.do(t, "POST", "/data/keys", url.Values{"csrf": {tok}, "name": {"Sneaky"}, "source": {"web"}})
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "Your role ("+string(role)+")") {
			t.Errorf("%s creates a key: %d\n%.1500s", role, resp.StatusCode, page)
		}
		if resp, _ := b.do(t, "POST", keyPath[1]+"/revoke", url.Values{"csrf": {tok}, "confirm": {"yes"}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s revokes a key: %d", role, resp.StatusCode)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM api_keys WHERE name = 'Sneaky'`); n != 0 {
		t.Fatalf("a refused form created %d keys", n)
	}

	// Revoking asks for a confirmation first.
	resp, page = admin.do(t, "POST", keyPath[1]+"/revoke", url.Values{"csrf": {token}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="confirm-error"`) {
		t.Fatalf("revoke without confirming: %d\n%.2000s", resp.StatusCode, page)
	}
	if resp := e.trackFromPage(t, secret, `{"userId":"42","event":"Product Viewed"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("an unconfirmed revocation revoked the key: %d", resp.StatusCode)
	}
	resp, _ = admin.do(t, "POST", keyPath[1]+"/revoke", url.Values{"csrf": {token}, "confirm": {"yes"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != keyPath[1]+"?revoked=1" {
		t.Fatalf("revoke: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page = admin.do(t, "GET", resp.Header.Get("Location"), nil)
	if !strings.Contains(page, `id="revoked"`) || !strings.Contains(page, "Revoked ") || strings.Contains(page, `id="revoke"`) {
		t.Errorf("the revoked key's page:\n%.2000s", page)
	}
	// Refused at once, not when a cache expires.
	if resp := e.trackFromPage(t, secret, `{"userId":"42","event":"Product Viewed"}`); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("track with the revoked key: %d", resp.StatusCode)
	}
}

// A marketer uploads a contact list without writing a mapping: the columns
// are read from the header, the page follows the import to the end, shows
// the counts and the rejected row with its reason. A file saying nobody's
// identity is refused before anything is imported.
func TestConsoleImportUpload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := newBrowser(t, e)
	token := b.signIn(t, "mia@shop.example", e.consoleUser(t, "mia@shop.example", user.RoleMarketer))

	resp, page := b.upload(t, "/data/imports", map[string]string{"csrf": token, "source": "crm"}, "cities.csv", "Name,City\nAda,Lyon\n")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(text(page), `No column of the file ("Name", "City") says who each row is`) {
		t.Fatalf("a file without identifiers: %d\n%s", resp.StatusCode, page[strings.Index(page, "<main"):])
	}
	if n := e.count(t, `SELECT count(*) FROM imports`); n != 0 {
		t.Fatalf("a refused upload recorded %d imports", n)
	}

	file := "Email;First name;Plan\nada@shop.example;Ada;gold\nbob@shop.example;Bob;\nnot-an-email;Eve;silver\n"
	resp, page = b.upload(t, "/data/imports", map[string]string{"csrf": token, "source": "other", "source_other": "Old CRM", "name": "Contacts 2025"}, "contacts.csv", file)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/data/imports/") {
		t.Fatalf("upload: %d %s\n%.3000s", resp.StatusCode, loc, page)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, page = b.do(t, "GET", loc, nil)
		if strings.Contains(page, `id="import-status">Done<`) {
			break
		}
		if strings.Contains(page, `id="import-failure"`) || time.Now().After(deadline) {
			t.Fatalf("the import did not end as done:\n%.3000s", page)
		}
		if !strings.Contains(page, `data-live="2"`) {
			t.Fatalf("a running import's page does not update itself:\n%.3000s", page)
		}
		time.Sleep(100 * time.Millisecond)
	}
	page = text(page)
	for _, want := range []string{
		`<div class="stat" id="accepted">2</div>`, `<div class="stat" id="rejected">1</div>`,
		`<progress max="100" value="100"`, "All 3 rows were read.",
		"Each row is a person", "<td>Email</td><td>identifies the person (Email)</td>", "<td>First name</td><td>trait first_name</td>",
		`<td class="num">4</td><td>Email</td><td>"not-an-email" is not a valid email</td>`,
		`href="/data/quarantine?source=old_crm"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the import's page lacks %q", want)
		}
	}
	if strings.Contains(page, "data-live") {
		t.Error("a finished import's page still updates itself")
	}
	p := e.profileBy(t, "email=ada@shop.example")
	if traits := p["traits"].(map[string]any); traits["first_name"] != "Ada" || traits["plan"] != "gold" {
		t.Fatalf("imported profile traits %v", traits)
	}
	_, list := b.do(t, "GET", "/data/imports", nil)
	row := rowOf(t, text(list), "Contacts 2025")
	for _, want := range []string{"old_crm", "Done", `value="100"`, `<td class="num">2</td>`} {
		if !strings.Contains(row, want) {
			t.Errorf("the imports list's row lacks %q: %s", want, row)
		}
	}
	// The rejected row waits in the quarantine, under the import's source.
	_, q := b.do(t, "GET", "/data/quarantine?source=old_crm", nil)
	if !strings.Contains(text(q), `Line 4, column “Email”: "not-an-email" is not a valid email`) {
		t.Errorf("the quarantine lacks the import's rejected row:\n%.3000s", q)
	}

	// A viewer follows imports but cannot start one.
	v := newBrowser(t, e)
	vtoken := v.signIn(t, "vic@shop.example", e.consoleUser(t, "vic@shop.example", user.RoleViewer))
	if _, page := v.do(t, "GET", "/data/imports", nil); strings.Contains(page, `id="new-import"`) || !strings.Contains(page, "Contacts 2025") {
		t.Error("a viewer is offered the upload form, or does not see the imports")
	}
	if resp, _ := v.upload(t, "/data/imports", map[string]string{"csrf": vtoken, "source": "crm"}, "contacts.csv", file); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a viewer uploads: %d", resp.StatusCode)
	}
}

// A record a validation rule rejects waits in the quarantine with its reason
// and the record as sent (escaped); filtering by reason finds it; replaying
// it while the rule stands changes nothing; once the rule is turned off,
// replaying stores it.
func TestConsoleQuarantineReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	status, _, rule := e.call(t, "POST", "/v1/validation-rules", e.admin, map[string]any{
		"name": "Orders have a total", "rule": `event != "Order Completed" || properties.total > 0`})
	if status != http.StatusCreated {
		t.Fatalf("create rule: %d %v", status, rule)
	}
	if resp := e.trackFromPage(t, e.write, `{"userId":"42","event":"Order Completed","properties":{"total":0,"note":"<b>gift</b>"}}`); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("the rule let the order through: %d", resp.StatusCode)
	}
	if resp := e.trackFromPage(t, e.write, `{"event":"Product Viewed"}`); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a record without userId was accepted: %d", resp.StatusCode)
	}
	b := newBrowser(t, e)
	token := b.signIn(t, "mia@shop.example", e.consoleUser(t, "mia@shop.example", user.RoleMarketer))

	ruleReason := `Validation rule "Orders have a total" rejected it: event != "Order Completed" || properties.total > 0`
	_, page := b.do(t, "GET", "/data/quarantine", nil)
	for _, want := range []string{ruleReason, "userId is missing: every record needs a userId or an anonymousId", "2 records waiting for a replay", "&lt;b&gt;gift&lt;/b&gt;"} {
		if !strings.Contains(text(page), want) && !strings.Contains(page, want) {
			t.Errorf("the quarantine lacks %q", want)
		}
	}
	if strings.Contains(page, "<b>gift</b>") {
		t.Error("the raw record is not escaped")
	}
	reason := `rule "Orders have a total" rejected it: event != "Order Completed" || properties.total > 0`
	filter := "/data/quarantine?reason=" + url.QueryEscape(reason)
	_, page = b.do(t, "GET", filter, nil)
	if !strings.Contains(page, "1 record waiting for a replay") || strings.Contains(text(page), "userId is missing") {
		t.Fatalf("filtered by reason:\n%.3000s", page)
	}

	// Replaying while the rule stands: still rejected.
	resp, _ := b.do(t, "POST", "/data/quarantine/replay", url.Values{"csrf": {token}, "reason": {reason}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("replay: %d", resp.StatusCode)
	}
	_, page = b.do(t, "GET", resp.Header.Get("Location"), nil)
	if !strings.Contains(page, "None was accepted: 1 still rejected") {
		t.Fatalf("after a replay with the rule on:\n%.3000s", page)
	}

	// The marketer turns the rule off and replays that record: stored.
	resp, _ = b.do(t, "POST", "/data/quarantine/rules/"+rule["id"].(string), url.Values{"csrf": {token}, "enabled": {"off"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("turn the rule off: %d", resp.StatusCode)
	}
	id := regexp.MustCompile(`name="id" value="(\d+)"`).FindStringSubmatch(page)
	if id == nil {
		t.Fatalf("no replay button for the record:\n%.3000s", page)
	}
	resp, _ = b.do(t, "POST", "/data/quarantine/replay", url.Values{"csrf": {token}, "id": {id[1]}, "reason": {reason}})
	_, page = b.do(t, "GET", resp.Header.Get("Location"), nil)
	if !strings.Contains(page, "Replayed: <strong>1 accepted</strong>") || !strings.Contains(page, "0 records waiting") {
		t.Fatalf("after turning the rule off and replaying:\n%.3000s", page)
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE name = 'Order Completed'`); n != 1 {
		t.Fatalf("%d orders stored after the replay", n)
	}
	if _, page := b.do(t, "GET", "/data/quarantine?state=replayed", nil); !strings.Contains(page, "Accepted ") || !strings.Contains(page, "1 record accepted on replay") {
		t.Errorf("the replayed record is not shown as accepted:\n%.3000s", page)
	}
	// The record without a userId still waits; a viewer cannot replay it.
	v := newBrowser(t, e)
	vtoken := v.signIn(t, "vic@shop.example", e.consoleUser(t, "vic@shop.example", user.RoleViewer))
	if resp, _ := v.do(t, "POST", "/data/quarantine/replay", url.Values{"csrf": {vtoken}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a viewer replays: %d", resp.StatusCode)
	}
	if _, page := v.do(t, "GET", "/data/quarantine", nil); !strings.Contains(page, "1 record waiting for a replay") || strings.Contains(page, `id="replay-all"`) {
		t.Errorf("the viewer's quarantine:\n%.3000s", page)
	}
}

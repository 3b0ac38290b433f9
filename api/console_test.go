package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/user"
)

// consoleUser creates a console user in the env's workspace.
func (e *env) consoleUser(t *testing.T, email string, role user.Role) string {
	t.Helper()
	const password = "a long enough password"
	if _, err := user.NewStore(e.pool).Create(context.Background(), e.ws.ID, email, "", role, password); err != nil {
		t.Fatal(err)
	}
	return password
}

// browser is a cookie-keeping HTTP client that does not follow redirects.
type browser struct {
	e *env
	c *http.Client
}

func newBrowser(t *testing.T, e *env) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(t *testing.T, method, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf reads the CSRF token of the first form of a page.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field in page:\n%.2000s", page)
	}
	return m[1]
}

// signIn signs in through the form and returns the console's CSRF token.
func (b *browser) signIn(t *testing.T, email, password string) string {
	t.Helper()
	_, page := b.do(t, "GET", "/login", nil)
	resp, body := b.do(t, "POST", "/login", url.Values{"email": {email}, "password": {password}, "csrf": {csrfOf(t, page)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d\n%.2000s", resp.StatusCode, body)
	}
	_, home := b.do(t, "GET", "/", nil)
	return csrfOf(t, home)
}

func TestConsoleSignInFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	password := e.consoleUser(t, "mia@shop.example", user.RoleMarketer)
	b := newBrowser(t, e)

	// Not signed in: pages send the browser to the sign-in form, keeping the page asked for.
	resp, _ := b.do(t, "GET", "/segments", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fsegments" {
		t.Fatalf("GET /segments signed out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page := b.do(t, "GET", "/login", nil)
	token := csrfOf(t, page)

	tests := []struct {
		name, email, password string
		csrf                  string // "current": the form's token
		status                int
		says                  string
	}{
		{"wrong password", "mia@shop.example", "not the password", "current", 401, "Wrong email or password."},
		{"unknown email, same answer", "nobody@shop.example", password, "current", 401, "Wrong email or password."},
		{"missing password", "mia@shop.example", "", "current", 422, "Enter your email and your password."},
		{"no form token", "mia@shop.example", password, "", 403, "The sign-in form had expired"},
		{"forged form token", "mia@shop.example", password, "forged", 403, "The sign-in form had expired"},
	}
	for _, tt := range tests {
		if tt.csrf == "current" {
			tt.csrf = token
		}
		resp, body := b.do(t, "POST", "/login", url.Values{"email": {tt.email}, "password": {tt.password}, "csrf": {tt.csrf}})
		if resp.StatusCode != tt.status || !strings.Contains(body, tt.says) {
			t.Errorf("%s: %d, want %d saying %q\n%.1500s", tt.name, resp.StatusCode, tt.status, tt.says, body)
		}
		if strings.Contains(resp.Header.Get("Set-Cookie"), "parcours_session=") {
			t.Errorf("%s: a session cookie was set", tt.name)
		}
		_, page = b.do(t, "GET", "/login", nil) // each answer rotates the form's token
		token = csrfOf(t, page)
	}

	// Success: an HttpOnly, SameSite=Lax session cookie, and back to a local page only.
	resp, _ = b.do(t, "POST", "/login", url.Values{"email": {"MIA@shop.example"}, "password": {password}, "csrf": {token}, "next": {"//evil.example/"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("sign in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var sess *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "parcours_session" {
			sess = c
		}
	}
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.MaxAge != 12*3600 {
		t.Fatalf("session cookie %+v", sess)
	}
}

func TestConsoleRefusesPostsWithoutCSRFToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	password := e.consoleUser(t, "mia@shop.example", user.RoleMarketer)
	b := newBrowser(t, e)
	token := b.signIn(t, "mia@shop.example", password)
	form := func(csrf string) url.Values {
		return url.Values{"name": {"Loyal"}, "slug": {"loyal"}, "rule": {`count("Order Completed", "90d") >= 3`}, "csrf": {csrf}}
	}
	for _, csrf := range []string{"", "not-the-token"} {
		resp, body := b.do(t, "POST", "/segments/new", form(csrf))
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "reload the page") {
			t.Fatalf("POST without the token (%q): %d\n%.1500s", csrf, resp.StatusCode, body)
		}
		if resp, _ := b.do(t, "POST", "/logout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("sign out without the token: %d", resp.StatusCode)
		}
	}
	if segs, err := e.segments.List(context.Background(), e.ws.ID); err != nil || len(segs) != 0 {
		t.Fatalf("a refused POST saved segments: %v %v", segs, err)
	}
	// With the token it works; after sign-out the session is gone.
	if resp, body := b.do(t, "POST", "/segments/new", form(token)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST with the token: %d\n%.1500s", resp.StatusCode, body)
	}
	if resp, _ := b.do(t, "POST", "/logout", url.Values{"csrf": {token}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	if resp, _ := b.do(t, "GET", "/", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after sign-out GET / answered %d, want a redirect to /login", resp.StatusCode)
	}
	// An API key is not a console session.
	if status, _, _ := e.call(t, "GET", "/segments", e.admin, nil); status != http.StatusSeeOther && status != http.StatusOK {
		t.Fatalf("GET /segments with an API key: %d", status)
	}
}

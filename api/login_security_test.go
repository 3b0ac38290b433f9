package api_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parcours/parcours/api"
	"github.com/parcours/parcours/pkg/user"
)

// loginForm fetches the sign-in form in b and returns its token.
func (b *browser) loginForm(t *testing.T) string {
	t.Helper()
	_, page := b.do(t, "GET", "/login", nil)
	return csrfOf(t, page)
}

// postLogin posts the sign-in form with extra headers.
func (b *browser) postLogin(t *testing.T, form url.Values, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("POST", b.e.url+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&sb)
	return resp, sb.String()
}

var tryAgain = regexp.MustCompile(`try again in (\d+) seconds`)

// H1: the sixth attempt at one account within a minute is refused, even
// with the right password, and the page says how long to wait; another
// account signs in meanwhile from the same browser.
func TestSignInLocksAnAccountAfterFiveWrongPasswords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	password := e.consoleUser(t, "mia@shop.example", user.RoleMarketer)
	other := e.consoleUser(t, "noor@shop.example", user.RoleViewer)
	b := newBrowser(t, e)
	for i := range 5 {
		resp, body := b.do(t, "POST", "/login", url.Values{"email": {"mia@shop.example"}, "password": {fmt.Sprintf("guess number %d", i)}, "csrf": {b.loginForm(t)}})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d\n%.1000s", i+1, resp.StatusCode, body)
		}
	}
	resp, body := b.do(t, "POST", "/login", url.Values{"email": {"Mia@shop.example"}, "password": {password}, "csrf": {b.loginForm(t)}})
	m := tryAgain.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Too many sign-in attempts for this account") || m == nil {
		t.Fatalf("6th attempt, right password: %d\n%.1500s", resp.StatusCode, body)
	}
	if wait, _ := strconv.Atoi(m[1]); wait < 20 || wait > 30 || resp.Header.Get("Retry-After") != m[1] {
		t.Fatalf("page says %s seconds, Retry-After %q; want about 30 and the same", m[1], resp.Header.Get("Retry-After"))
	}
	if strings.Contains(resp.Header.Get("Set-Cookie"), "parcours_session=") {
		t.Fatal("a refused sign-in set a session cookie")
	}
	b.signIn(t, "noor@shop.example", other)
}

// The wait the page announces is the real one: once over, the right
// password signs in, and a success clears the account's failures.
func TestSignInWorksAgainAfterTheWait(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnvWith(t, func(d *api.Deps) { d.SignIn = user.NewThrottle(user.ThrottleOptions{Now: clock}) })
	password := e.consoleUser(t, "mia@shop.example", user.RoleMarketer)
	b := newBrowser(t, e)
	for i := range 5 {
		b.do(t, "POST", "/login", url.Values{"email": {"mia@shop.example"}, "password": {fmt.Sprintf("guess number %d", i)}, "csrf": {b.loginForm(t)}})
	}
	resp, body := b.do(t, "POST", "/login", url.Values{"email": {"mia@shop.example"}, "password": {password}, "csrf": {b.loginForm(t)}})
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "try again in 30 seconds") || resp.Header.Get("Retry-After") != "30" {
		t.Fatalf("6th attempt: %d %q\n%.1500s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	mu.Lock()
	now = now.Add(31 * time.Second)
	mu.Unlock()
	b.signIn(t, "mia@shop.example", password)
}

// Guesses at many accounts from one address are throttled by the address
// (20 failures), whatever X-Forwarded-For claims, unless the operator says
// a proxy sets it (PARCOURS_TRUST_PROXY).
func TestSignInThrottlesAnAddress(t *testing.T) {
	t.Parallel()
	guessAll := func(e *env) (*http.Response, string) {
		b := newBrowser(t, e)
		var resp *http.Response
		var body string
		for i := range 21 {
			resp, body = b.postLogin(t, url.Values{"email": {fmt.Sprintf("user%d@shop.example", i)}, "password": {"a wrong guess"}, "csrf": {b.loginForm(t)}},
				http.Header{"X-Forwarded-For": {fmt.Sprintf("198.51.100.%d", i)}, "X-Real-Ip": {fmt.Sprintf("203.0.113.%d", i)}})
			if i < 20 && resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d\n%.1000s", i+1, resp.StatusCode, body)
			}
		}
		return resp, body
	}
	resp, body := guessAll(newEnv(t))
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Too many sign-in attempts from your network") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("21st failure from one address: %d %q\n%.1500s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// Behind a declared proxy each forwarded client counts on its own.
	resp, body = guessAll(newEnvWith(t, func(d *api.Deps) { d.TrustProxy = true }))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("21st failure, each from its own forwarded address: %d\n%.1500s", resp.StatusCode, body)
	}
}

// H1: thirty sign-ins at once. At most the Hasher's width hash at once
// (each holds 19 MiB); the others are answered 503 or 429 with
// Retry-After and a sentence, never left to pile up in memory.
func TestConcurrentSignInsAreBounded(t *testing.T) {
	t.Parallel()
	hasher := user.NewHasherWait(2, 0, time.Second)
	e := newEnvWith(t, func(d *api.Deps) { d.Users = user.NewStore(d.Pool, user.Options{Hasher: hasher}) })
	e.consoleUser(t, "mia@shop.example", user.RoleMarketer)
	type attempt struct {
		b    *browser
		csrf string
	}
	var attempts []attempt
	for range 30 {
		b := newBrowser(t, e)
		attempts = append(attempts, attempt{b, b.loginForm(t)})
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		start    = make(chan struct{})
	)
	for i, a := range attempts {
		email := "mia@shop.example"
		if i%2 == 1 {
			email = fmt.Sprintf("nobody%d@shop.example", i) // unknown emails are hashed too
		}
		wg.Go(func() {
			<-start
			resp, body := a.b.do(t, "POST", "/login", url.Values{"email": {email}, "password": {"a wrong guess"}, "csrf": {a.csrf}})
			mu.Lock()
			defer mu.Unlock()
			statuses[resp.StatusCode]++
			switch resp.StatusCode {
			case http.StatusUnauthorized:
			case http.StatusServiceUnavailable, http.StatusTooManyRequests:
				if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 || !strings.Contains(body, "try again in") {
					t.Errorf("%d without Retry-After or a sentence: %q\n%.1000s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
				}
			default:
				t.Errorf("answered %d\n%.1000s", resp.StatusCode, body)
			}
		})
	}
	close(start)
	wg.Wait()
	st := hasher.Stats()
	if st.Peak > 2 {
		t.Fatalf("%d hashes ran at once, want at most 2 (stats %+v)", st.Peak, st)
	}
	if statuses[http.StatusServiceUnavailable] == 0 || statuses[http.StatusUnauthorized] == 0 {
		t.Fatalf("answers %v: want some checked (401) and some refused as busy (503)", statuses)
	}
}

// H1: a 10 KB password is refused before it is counted or hashed, with a
// sentence saying why.
func TestSignInRefusesLongPasswords(t *testing.T) {
	t.Parallel()
	hasher := user.NewHasher(2)
	e := newEnvWith(t, func(d *api.Deps) { d.Users = user.NewStore(d.Pool, user.Options{Hasher: hasher}) })
	e.consoleUser(t, "mia@shop.example", user.RoleMarketer)
	b := newBrowser(t, e)
	before := hasher.Stats().Total
	resp, body := b.do(t, "POST", "/login", url.Values{"email": {"mia@shop.example"}, "password": {strings.Repeat("p", 10<<10)}, "csrf": {b.loginForm(t)}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Passwords are at most 256 characters") {
		t.Fatalf("10 KB password: %d\n%.1500s", resp.StatusCode, body)
	}
	if n := hasher.Stats().Total - before; n != 0 {
		t.Fatalf("%d hashes ran for a 10 KB password", n)
	}
}

// Low: after sign-in, next may only lead to a page of this site.
func TestSafeNextKeepsRedirectsOnThisSite(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	password := e.consoleUser(t, "mia@shop.example", user.RoleMarketer)
	b := newBrowser(t, e)
	b.signIn(t, "mia@shop.example", password)
	for _, tt := range []struct{ next, want string }{
		{"/\t/evil.example", "/"}, // browsers drop the tab: //evil.example
		{"/\n/evil.example", "/"},
		{"/\x00", "/"},
		{"/\\evil.example", "/"},
		{"/\\/evil.example", "/"},
		{"https://evil.example/", "/"},
		{"//evil.example", "/"},
		{"///evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"segments", "/"},
		{"", "/"},
		{"/ok?a=b", "/ok?a=b"},
		{"/segments/42#rule", "/segments/42#rule"},
		{"/profiles?q=ana%40shop.example", "/profiles?q=ana%40shop.example"},
	} {
		resp, _ := b.do(t, "GET", "/login?next="+url.QueryEscape(tt.next), nil)
		if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || got != tt.want {
			t.Errorf("next=%q: %d to %q, want %q", tt.next, resp.StatusCode, got, tt.want)
		}
	}
}

// cookieOf returns the named cookie an answer set, or nil.
func cookieOf(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Low: the Secure flag and HSTS follow the connection, a declared proxy's
// X-Forwarded-Proto, or an https PARCOURS_PUBLIC_URL, never a client's
// claim; over https the session cookie is __Host- prefixed.
func TestCookiesFollowTrustProxy(t *testing.T) {
	t.Parallel()
	https := http.Header{"X-Forwarded-Proto": {"https"}}
	signIn := func(e *env, header http.Header) *http.Response {
		password := e.consoleUser(t, "mia@shop.example", user.RoleMarketer)
		b := newBrowser(t, e)
		req, _ := http.NewRequest("GET", e.url+"/login", nil)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&sb)
		resp.Body.Close()
		h := header.Clone()
		if h == nil {
			h = http.Header{}
		}
		for _, c := range resp.Cookies() {
			h.Add("Cookie", c.Name+"="+c.Value)
		}
		out, body := b.postLogin(t, url.Values{"email": {"mia@shop.example"}, "password": {password}, "csrf": {csrfOf(t, sb.String())}}, h)
		if out.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign in: %d\n%.1500s", out.StatusCode, body)
		}
		return out
	}

	// Not trusted (the default): a client's X-Forwarded-Proto changes nothing.
	resp := signIn(newEnv(t), https)
	if c := cookieOf(resp, "parcours_session"); c == nil || c.Secure {
		t.Fatalf("untrusted X-Forwarded-Proto: session cookie %+v, want parcours_session without Secure", c)
	}
	if h := resp.Header.Get("Strict-Transport-Security"); h != "" {
		t.Fatalf("untrusted X-Forwarded-Proto: HSTS %q", h)
	}

	// Behind a declared proxy: Secure, __Host-, HSTS; the session works.
	e := newEnvWith(t, func(d *api.Deps) { d.TrustProxy = true })
	resp = signIn(e, https)
	c := cookieOf(resp, "__Host-parcours_session")
	if c == nil || !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" {
		t.Fatalf("trusted https: session cookie %+v, want __Host-parcours_session, Secure, Path=/, no Domain (all: %v)", c, resp.Header.Values("Set-Cookie"))
	}
	if h := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(h, "max-age=") {
		t.Fatalf("trusted https: HSTS %q", h)
	}
	req, _ := http.NewRequest("GET", e.url+"/", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	home, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	home.Body.Close()
	if home.StatusCode != http.StatusOK {
		t.Fatalf("console over trusted https with the __Host- cookie: %d", home.StatusCode)
	}

	// An https public URL says browsers come over https: Secure cookies.
	e = newEnv(t)
	e.ledger.PublicURL = "https://parcours.example"
	resp = signIn(e, nil)
	if c := cookieOf(resp, "__Host-parcours_session"); c == nil || !c.Secure {
		t.Fatalf("https PARCOURS_PUBLIC_URL: session cookie %+v", c)
	}
}

// Low: every answer, console and API, carries nosniff, a Referrer-Policy
// and refuses to be framed.
func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{"/login", "/healthz", "/v1/profiles", "/no-such-page", "/segments"} {
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "same-origin" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s (%d): nosniff %q, Referrer-Policy %q, X-Frame-Options %q", path, resp.StatusCode,
				h.Get("X-Content-Type-Options"), h.Get("Referrer-Policy"), h.Get("X-Frame-Options"))
		}
	}
}

// Low: a console left unused for 30 minutes is signed out; one in use is
// not, and each use moves its last-seen time.
func TestIdleConsoleSessionSignsOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	password := e.consoleUser(t, "mia@shop.example", user.RoleMarketer)
	idle, busy := newBrowser(t, e), newBrowser(t, e)
	idle.signIn(t, "mia@shop.example", password)
	if _, err := e.pool.Exec(ctx, `UPDATE sessions SET last_seen_at = now() - interval '31 minutes'`); err != nil {
		t.Fatal(err)
	}
	busy.signIn(t, "mia@shop.example", password)
	if _, err := e.pool.Exec(ctx, `UPDATE sessions SET last_seen_at = now() - interval '20 minutes' WHERE last_seen_at > now() - interval '1 minute'`); err != nil {
		t.Fatal(err)
	}
	if resp, _ := idle.do(t, "GET", "/segments", nil); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("unused for 31 minutes: GET /segments answered %d to %q, want the sign-in page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := busy.do(t, "GET", "/segments", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("unused for 20 minutes: GET /segments answered %d", resp.StatusCode)
	}
	var fresh int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE last_seen_at > now() - interval '1 minute'`).Scan(&fresh); err != nil || fresh != 1 {
		t.Fatalf("sessions seen in the last minute: %d %v, want the one just used", fresh, err)
	}
}

// trickle sends a request whose body arrives in pieces over about spread,
// and returns the status line (or the error that cut it).
func trickle(t *testing.T, addr, head string, body []byte, spread time.Duration) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "%sContent-Length: %d\r\nConnection: close\r\n\r\n", head, len(body)); err != nil {
		return err.Error()
	}
	const pieces = 10
	step := (len(body) + pieces - 1) / pieces
	for i := 0; i < len(body); i += step {
		time.Sleep(spread / pieces)
		if _, err := conn.Write(body[i:min(i+step, len(body))]); err != nil {
			return "write: " + err.Error()
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "read: " + err.Error()
	}
	return strings.TrimSpace(line)
}

// Low: a body trickled slower than the server's ReadTimeout is cut, except
// an import upload from an admin key, which gets ImportReadTimeout.
func TestSlowBodiesAreCutButImportsMayTakeLonger(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := httptest.NewUnstartedServer(e.server.Handler())
	srv.Config.ReadTimeout = 300 * time.Millisecond // stands for api.ReadTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	track := []byte(`{"type":"track","event":"Viewed","anonymousId":"a1"}`)
	if got := trickle(t, addr, "POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer "+e.write+"\r\n", track, 1500*time.Millisecond); strings.Contains(got, " 200 ") {
		t.Fatalf("a track call trickled over 1.5 s with a 300 ms ReadTimeout was accepted: %s", got)
	}
	csv := []byte("email,first_name\nana@shop.example,Ana\n")
	q := url.Values{"format": {"csv"}, "mapping": {`{"columns":{"email":{"identifier":"email"},"first_name":{"trait":"first_name"}}}`}}
	got := trickle(t, addr, "POST /v1/imports?"+q.Encode()+" HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nAuthorization: Bearer "+e.admin+"\r\n", csv, 1500*time.Millisecond)
	if !strings.Contains(got, " 202 ") {
		t.Fatalf("an import upload trickled over 1.5 s: %s, want 202", got)
	}
	if api.ImportReadTimeout < 10*api.ReadTimeout {
		t.Fatalf("ImportReadTimeout %s is not much longer than ReadTimeout %s", api.ImportReadTimeout, api.ReadTimeout)
	}
}

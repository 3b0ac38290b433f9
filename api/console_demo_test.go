package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/api"
	"github.com/parcours/parcours/pkg/devmail"
	"github.com/parcours/parcours/pkg/user"
)

// TestConsoleDemoDataOutsideDevMode: a server that is not `parcours dev`
// offers no demo data, and refuses to load it.
func TestConsoleDemoDataOutsideDevMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pw := e.consoleUser(t, "mia@shop.example", user.RoleAdmin)
	b := newBrowser(t, e)
	csrf := b.signIn(t, "mia@shop.example", pw)
	if _, home := b.do(t, "GET", "/", nil); strings.Contains(home, "Load demo data") || strings.Contains(home, `action="/demo"`) {
		t.Fatalf("the Overview offers demo data outside dev mode:\n%.3000s", home)
	}
	resp, body := b.do(t, "POST", "/demo", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "only in `parcours dev`") {
		t.Fatalf("POST /demo outside dev mode: %d\n%.2000s", resp.StatusCode, body)
	}
	if n := e.count(t, `SELECT count(*) FROM profiles WHERE workspace_id = $1`, e.ws.ID); n != 0 {
		t.Fatalf("%d profiles after a refused load", n)
	}
}

// TestConsoleLoadsDemoData: in dev mode the Overview offers demo data to a
// marketer (not to a viewer); the button loads the shop and the page says
// what it loaded; a second click adds nothing; the demo journeys are live
// (a sign-up sent afterwards starts the welcome journey in Temporal).
func TestConsoleLoadsDemoData(t *testing.T) {
	t.Parallel()
	mailbox, err := devmail.New(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(d *api.Deps) { d.DevMailbox = mailbox })

	viewerPW := e.consoleUser(t, "val@shop.example", user.RoleViewer)
	viewer := newBrowser(t, e)
	viewerCSRF := viewer.signIn(t, "val@shop.example", viewerPW)
	if _, home := viewer.do(t, "GET", "/", nil); strings.Contains(home, "Load demo data") {
		t.Errorf("a viewer is offered to load demo data")
	}
	if resp, _ := viewer.do(t, "POST", "/demo", url.Values{"csrf": {viewerCSRF}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a viewer loading demo data: %d, want 403", resp.StatusCode)
	}

	pw := e.consoleUser(t, "mia@shop.example", user.RoleMarketer)
	b := newBrowser(t, e)
	csrf := b.signIn(t, "mia@shop.example", pw)
	_, home := b.do(t, "GET", "/", nil)
	if !strings.Contains(home, `<button type="submit" id="load-demo">Load demo data</button>`) || !strings.Contains(home, `action="/demo"`) {
		t.Fatalf("no Load demo data button in dev mode:\n%.3000s", home)
	}
	if resp, _ := b.do(t, "POST", "/demo", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST /demo without the CSRF token: %d, want 403", resp.StatusCode)
	}

	started := time.Now()
	resp, page := b.do(t, "POST", "/demo", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("load demo data: %d\n%.3000s", resp.StatusCode, page)
	}
	t.Logf("loaded from the console in %s", time.Since(started))
	for _, want := range []string{"Demo data loaded", "The workspace has 200 profiles: 70 anonymous, 70 known, 60 omnichannel",
		"Abandoned carts", "Loyal customers", "Welcome new sign-ups (demo)", "7 starter emails created",
		`data-state="omnichannel">60<`, // the figures below say the same
		`href="/profiles?q=ines.michel%40example.com"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the Overview after loading does not show %q", want)
		}
	}
	if t.Failed() {
		t.Fatalf("page:\n%.6000s", page)
	}
	if strings.Contains(page, `id="load-demo"`) {
		t.Errorf("the button is offered again right under what it loaded")
	}
	// The examples it links to are there.
	b.c.CheckRedirect = nil // follow the search to the profile
	if _, p := b.do(t, "GET", "/profiles?q=ines.michel%40example.com", nil); !strings.Contains(p, "Ines Michel") || !strings.Contains(p, "Omnichannel") {
		t.Errorf("the example customer's profile:\n%.3000s", p)
	}

	// Again: nothing added, the page says so.
	events := e.count(t, `SELECT count(*) FROM events WHERE workspace_id = $1`, e.ws.ID)
	_, again := b.do(t, "POST", "/demo", url.Values{"csrf": {csrf}})
	if !strings.Contains(again, "The demo data was already here: nothing was added.") || !strings.Contains(again, "200 profiles") {
		t.Errorf("second load:\n%.3000s", again)
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE workspace_id = $1`, e.ws.ID); n != events {
		t.Errorf("second load: %d events, was %d", n, events)
	}
	if n := e.count(t, `SELECT count(*) FROM journeys WHERE workspace_id = $1`, e.ws.ID); n != 4 {
		t.Errorf("%d journeys after two loads, want the 4 demo journeys", n)
	}

	// The journeys are live: someone signing up now enters the welcome journey.
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"anonymousId": "visitor-after-demo", "traits": map[string]any{"email": "new.visitor@example.com"}})
	e.mustSend(t, e.write, "/v1/track", map[string]any{"anonymousId": "visitor-after-demo", "event": "Signed Up"})
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := e.count(t, `SELECT count(*) FROM journey_runs r JOIN journeys j ON j.workspace_id = r.workspace_id AND j.id = r.journey_id
			WHERE r.workspace_id = $1 AND j.name = 'Welcome new sign-ups (demo)'`, e.ws.ID)
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs of the demo welcome journey 30 s after a sign-up, want 1", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

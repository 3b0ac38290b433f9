package api_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/api"
	"github.com/parcours/parcours/pkg/devmail"
	"github.com/parcours/parcours/pkg/user"
)

// TestConsoleInFirefox walks the console in headless Firefox (Debian's
// firefox-esr), driven over WebDriver BiDi (firefox_bidi_test.go), with the
// dev mailbox wired as `parcours dev` wires it: sign in with the form (real
// keystrokes and clicks), load the demo data with the Overview's button (a
// POST form with its CSRF token), then open the main pages — overview,
// profiles, a profile, segments, a segment, journeys, a journey, templates
// — and check each renders its heading, no error, no script error, no
// Content-Security-Policy violation, and nothing wider than a tablet in
// landscape (1024 px).
func TestConsoleInFirefox(t *testing.T) {
	t.Parallel()
	ff := newFirefox(t)
	mailbox, err := devmail.New(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(d *api.Deps) { d.DevMailbox = mailbox })
	pw := e.consoleUser(t, "mia@shop.example", user.RoleMarketer)

	ff.navigate(e.url + "/")
	ff.waitFor("the sign-in form", `document.querySelector("#email")`, 10*time.Second)
	ff.typeInto("#email", "mia@shop.example")
	ff.typeInto("#password", pw)
	ff.click(`form[action="/login"] button[type=submit]`)
	ff.waitFor("the Overview after signing in", `location.pathname === "/" && document.querySelector("nav.main") && document.querySelector("#load-demo")`, 15*time.Second)

	ff.click("#load-demo")
	ff.waitFor("the demo data loaded", `document.querySelector("#demo-loaded")`, 90*time.Second)
	if got := ff.text("#demo-loaded"); !strings.Contains(got, "Demo data loaded") || !strings.Contains(got, "200 profiles") {
		t.Fatalf("after Load demo data:\n%s", got)
	}

	type page struct{ path, heading string }
	pages := []page{
		{"/", "Overview"},
		{"/profiles", "Profiles"},
		{"/profiles?q=" + url.QueryEscape("ines.michel@example.com"), "Ines Michel Omnichannel"},
		{"/segments", "Segments"},
		{"/journeys", "Journeys"},
		{"/templates", "Templates"},
	}
	// A segment and a journey of the demo, found by following the lists' links.
	ff.navigate(e.url + "/segments")
	var segmentPath, journeyPath string
	if err := ff.eval(`[...document.querySelectorAll("main a[href^='/segments/']")].map(a => a.getAttribute("href")).find(h => /^\/segments\/[0-9a-f-]{36}$/.test(h)) ?? ""`, &segmentPath); err != nil || segmentPath == "" {
		t.Fatalf("no segment link on /segments (%v)", err)
	}
	ff.navigate(e.url + "/journeys")
	if err := ff.eval(`[...document.querySelectorAll("main a")].find(a => a.textContent.includes("Welcome new sign-ups (demo)"))?.getAttribute("href") ?? ""`, &journeyPath); err != nil || journeyPath == "" {
		t.Fatalf("no link to the demo welcome journey on /journeys (%v)", err)
	}
	pages = append(pages, page{segmentPath, ""}, page{journeyPath, "Welcome new sign-ups (demo)"})

	for _, p := range pages {
		ff.navigate(e.url + p.path)
		var got struct {
			Heading, Title, Path string
			Errors, WideBy       int
			CSP                  []string
		}
		err := ff.eval(`({
			Heading: document.querySelector("main h1")?.textContent.trim().replace(/\s+/g, " ") ?? "",
			Title: document.title,
			Path: location.pathname,
			Errors: document.querySelectorAll(".error, [role=alert]").length,
			WideBy: document.documentElement.scrollWidth - window.innerWidth,
			CSP: window.__cspViolations ?? [],
		})`, &got)
		if err != nil {
			t.Fatalf("%s: %v", p.path, err)
		}
		switch {
		case got.Heading == "" || !strings.HasPrefix(got.Heading, p.heading):
			t.Errorf("%s: heading %q, want %q", p.path, got.Heading, p.heading)
		case !strings.HasSuffix(got.Title, "· Parcours") || strings.HasPrefix(got.Path, "/login"):
			t.Errorf("%s: title %q at %s", p.path, got.Title, got.Path)
		case got.Errors > 0:
			t.Errorf("%s: shows an error:\n%s", p.path, ff.text("main"))
		case got.WideBy > 0:
			t.Errorf("%s: %d px wider than a 1024 px window", p.path, got.WideBy)
		case len(got.CSP) > 0:
			t.Errorf("%s: Content-Security-Policy violations: %v", p.path, got.CSP)
		}
		if errs := ff.errorsLogged(); len(errs) > 0 {
			t.Errorf("%s: the page logged errors: %q", p.path, errs)
		}
	}
}

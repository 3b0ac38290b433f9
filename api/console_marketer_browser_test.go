package api_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parcours/parcours/api"
	"github.com/parcours/parcours/pkg/devmail"
	"github.com/parcours/parcours/pkg/rules"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/user"
)

// screenshotDir is where the test saves screenshots of the main pages when
// PARCOURS_SCREENSHOTS names a directory (relative paths from the repository
// root): PARCOURS_SCREENSHOTS=docs/screenshots go test ./api -run TestMarketerConsole
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("PARCOURS_SCREENSHOTS")
	if dir == "" {
		return ""
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join("..", dir) // go test runs in api/
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shot saves the viewport as dir/name.png when screenshots are asked for.
func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitForText reloads url until sel's text contains want (the page is
// server-rendered: what the worker does shows on the next load).
func waitForText(t *testing.T, ctx context.Context, url, sel, want string) string {
	t.Helper()
	var got string
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("main"))); err != nil {
			t.Fatalf("load %s: %v", url, err)
		}
		got, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector(`+jsString(sel)+`) || {innerText: ""}).innerText`))
		if strings.Contains(got, want) {
			return got
		}
	}
	t.Fatalf("%s on %s never showed %q; last:\n%s", sel, url, want, got)
	return ""
}

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// TestMarketerConsole walks the console's "done when" path in headless
// Chromium, against a real Temporal server and worker, the delivery ledger
// and the dev mailbox wired as `parcours dev` wires it (the email channel
// pointed at the fake SendGrid served by the API, its signed events posted
// back to the Event Webhook): sign in; create the welcome journey from its
// scenario (starting at an identify call, with its starter emails) and
// publish it; send an identify call through the HTTP API with a write key;
// see the email in the dev mailbox; open the profile and see the journey,
// the email and its delivery in the timeline; edit the template with a
// preview for that person; write an invalid segment rule and see the error
// at its line and column. With PARCOURS_SCREENSHOTS set, it saves
// screenshots of the main pages on the way.
func TestMarketerConsole(t *testing.T) {
	t.Parallel()
	ctx := newChromium(t)
	dir := screenshotDir(t)
	if dir != "" {
		run(t, ctx, "screen size", chromedp.EmulateViewport(1280, 800))
	}
	mailbox, err := devmail.New(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	mailbox.DeliveredAfter = 200 * time.Millisecond
	e := newEnvWith(t, func(d *api.Deps) { d.DevMailbox = mailbox })
	if ok, err := mailbox.Configure(context.Background(), e.ledger.Settings, e.ws.ID, e.url); err != nil || !ok {
		t.Fatalf("point the email channel at the dev mailbox: %v %v", ok, err)
	}
	pw := e.consoleUser(t, "mia@shop.example", user.RoleMarketer)
	// Someone seen before the journey exists: the overview has figures.
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "u-bob", "traits": map[string]any{"email": "bob@example.com", "first_name": "Bob"}})
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "u-bob", "event": "Order Completed", "properties": map[string]any{"total": 42}})

	signInWithForm(t, ctx, e.url, "mia@shop.example", pw)

	// The welcome journey, from its scenario: it starts at an identify call
	// and its two emails are the starter templates, created with it.
	run(t, ctx, "open the scenarios",
		chromedp.Click(chromedp.CSS(`nav.main a[href="/journeys"]`)),
		chromedp.WaitVisible(chromedp.CSS("#new-journey")),
		chromedp.Click(chromedp.CSS("#new-journey")),
		chromedp.WaitVisible(chromedp.CSS("#scenarios")),
	)
	if got := textOf(t, ctx, "#scenarios"); !strings.Contains(got, "Welcome series") || !strings.Contains(got, "Abandoned cart rescue") ||
		!strings.Contains(got, "Resend to non-openers") || !strings.Contains(got, "Thank you, new customer") || !strings.Contains(got, "welcome email") {
		t.Fatalf("scenario picker:\n%s", got)
	}
	run(t, ctx, "fill the welcome scenario",
		chromedp.Click(chromedp.CSS(`a[href="/journeys/new?scenario=welcome"]`)),
		chromedp.WaitVisible(chromedp.CSS("#scenario-form")),
		chromedp.SetValue(chromedp.CSS("#trigger_event"), "identify"),
	)
	form := textOf(t, ctx, "#scenario-form")
	for _, want := range []string{"Create the starter template “Welcome”", "Create the starter template “Welcome tips”", "Wait (2 days by default)"} {
		if !strings.Contains(form, want) {
			t.Errorf("scenario form lacks %q:\n%s", want, form)
		}
	}
	run(t, ctx, "create the journey",
		chromedp.Click(chromedp.CSS("#create-journey")),
		chromedp.WaitVisible(chromedp.CSS("#diagram svg")),
	)
	if got := textOf(t, ctx, "#journey-status"); got != "Draft" {
		t.Fatalf("new journey status %q, want Draft", got)
	}
	diagram := textOf(t, ctx, "#diagram")
	for _, want := range []string{"When a person is identified", "Send “Welcome”", "2 days", "Which way does the person go?", "if profile.order_count > 0", "otherwise", "Send “Welcome tips”", "The run ends here"} {
		if !strings.Contains(diagram, want) {
			t.Errorf("diagram lacks %q:\n%s", want, diagram)
		}
	}
	if !strings.Contains(textOf(t, ctx, "#impact"), "people start entering at once") {
		t.Errorf("no impact preview before publishing:\n%s", textOf(t, ctx, "main"))
	}
	run(t, ctx, "publish",
		chromedp.Click(chromedp.CSS("#publish")),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="notice" and contains(., "Published")]`)),
	)
	if got := textOf(t, ctx, "#journey-status"); got != "Live" {
		t.Fatalf("published journey status %q, want Live", got)
	}
	journeyURL, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	journeyURL = strings.Split(journeyURL, "?")[0]

	// A sign-up through the HTTP API, with the write key, as a site sends it.
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "u-ana", "anonymousId": "cookie-ana",
		"traits": map[string]any{"email": "Ana@Example.com", "first_name": "Ana"}})

	// The email is in the dev mailbox, from the journey, rendered.
	box := waitForText(t, ctx, e.url+"/mailbox", "#mailbox", "Welcome, Ana!")
	if !strings.Contains(box, "ana@example.com") || !strings.Contains(box, "Welcome series") {
		t.Fatalf("mailbox row:\n%s", box)
	}
	waitForText(t, ctx, e.url+"/mailbox", "#mailbox", "delivered") // the mailbox's signed event came back
	shot(t, ctx, dir, "mailbox")
	run(t, ctx, "open the email",
		chromedp.Click(chromedp.Search(`//table[@id="mailbox"]//a[contains(., "Welcome, Ana!")]`)),
		chromedp.WaitVisible(chromedp.CSS("iframe.mail")),
	)
	if got := textOf(t, ctx, "#text"); !strings.Contains(got, "Welcome, Ana!") || !strings.Contains(got, "https://shop.example.com/new") {
		t.Fatalf("text part:\n%s", got)
	}
	inFrame, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("iframe.mail").contentDocument ? "readable" : "sandboxed"`))
	if err != nil || inFrame != "sandboxed" {
		t.Errorf("the email's HTML frame is %q (%v), want sandboxed (no script, its own origin)", inFrame, err)
	}
	if got := textOf(t, ctx, "#to"); got != "ana@example.com" {
		t.Errorf("to %q", got)
	}
	shot(t, ctx, dir, "mailbox-message")
	// Act as Ana: she opens it; SendGrid's signed event reaches the ledger.
	run(t, ctx, "open it as the recipient",
		chromedp.Click(chromedp.CSS(`button[value="open"]`)),
		chromedp.WaitVisible(chromedp.Search(`//p[contains(@class, "notice") and contains(., "opened")]`)),
	)
	if got := textOf(t, ctx, "main"); !strings.Contains(got, "opened") || !strings.Contains(got, "delivered, open") {
		t.Errorf("after the open:\n%s", got)
	}

	// Her profile: the journey, the email and its delivery in the timeline.
	run(t, ctx, "open her profile",
		chromedp.Click(chromedp.CSS("#to a")),
		chromedp.WaitVisible(chromedp.CSS("#timeline")),
	)
	profileURL, _ := chromedp.Run(ctx, chromedp.Location())
	tl := waitForText(t, ctx, profileURL, "#timeline", "Email Delivered")
	if got := textOf(t, ctx, "#profile-journeys"); !strings.Contains(got, "Welcome series") || !strings.Contains(got, "Wait — 2 days") {
		t.Errorf("her journeys:\n%s", got)
	}
	for _, want := range []string{"Entered the journey “Welcome series”", "Email sent: Welcome", "Email Opened", "Identified"} {
		if !strings.Contains(tl, want) {
			t.Errorf("timeline lacks %q:\n%s", want, tl)
		}
	}
	if strings.Contains(tl, "delivery_id") || strings.Contains(tl, "journey_id") {
		t.Errorf("the timeline shows internal ids:\n%s", tl)
	}
	if got := textOf(t, ctx, "#deliveries"); !strings.Contains(got, "Welcome") || !strings.Contains(got, "opened") {
		t.Errorf("her messages:\n%s", got)
	}
	shot(t, ctx, dir, "profile")
	if dir != "" {
		run(t, ctx, "show her activity", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, document.querySelector("#journeys-h").getBoundingClientRect().top + window.scrollY - 40)`))
		shot(t, ctx, dir, "profile-activity")
	}

	// The journey page counts her.
	run(t, ctx, "back to the journey", chromedp.Navigate(journeyURL), chromedp.WaitVisible(chromedp.CSS("#funnel")))
	if got := textOf(t, ctx, "#entered"); got != "1" {
		t.Errorf("entered %q, want 1", got)
	}
	if got := textOf(t, ctx, "#funnel"); !regexp.MustCompile(`Send “Welcome”\s+1\s+100%`).MatchString(got) {
		t.Errorf("funnel:\n%s", got)
	}
	if got := textOf(t, ctx, "#runs"); !strings.Contains(got, "Ana") || !strings.Contains(got, "in Temporal UI") {
		t.Errorf("runs:\n%s", got)
	}
	if dir != "" {
		run(t, ctx, "show the diagram", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, document.querySelector("#diagram-h").getBoundingClientRect().top + window.scrollY - 70)`))
	}
	shot(t, ctx, dir, "journey")

	// The welcome template: edit the subject, preview it for Ana.
	run(t, ctx, "open the templates",
		chromedp.Click(chromedp.CSS(`nav.main a[href="/templates"]`)),
		chromedp.WaitVisible(chromedp.CSS("#template-list")),
		chromedp.Click(chromedp.Search(`//table[@id="template-list"]//a[normalize-space(.)="Welcome"]`)),
		chromedp.WaitVisible(chromedp.CSS("#template-form")),
		chromedp.SetValue(chromedp.CSS("#subject"), `Hello {{ profile.traits.first_name | default: "there" }}, welcome aboard`),
		chromedp.SetValue(chromedp.CSS("#preview_for"), "ana@example.com"),
		chromedp.Click(chromedp.CSS("#preview-button")),
		chromedp.WaitVisible(chromedp.Search(`//section[@id="preview"]/h2[contains(., "Ana")]`)),
	)
	if got := textOf(t, ctx, "#preview"); !strings.Contains(got, "Hello Ana, welcome aboard") || !strings.Contains(got, "Preview for Ana") {
		t.Fatalf("preview:\n%s", got)
	}
	shot(t, ctx, dir, "template")
	run(t, ctx, "save it and send a test",
		chromedp.Click(chromedp.CSS("#save-button")),
		chromedp.WaitVisible(chromedp.CSS("#saved")),
		chromedp.SendKeys(chromedp.CSS("#email"), "mia@shop.example"),
		chromedp.Click(chromedp.CSS("#test-send-button")),
		chromedp.WaitVisible(chromedp.CSS("#sent")),
	)
	if got := textOf(t, ctx, "#sent"); !strings.Contains(got, "Sent the saved version to mia@shop.example") || !strings.Contains(got, "dev mailbox") {
		t.Errorf("test send: %s", got)
	}
	waitForText(t, ctx, e.url+"/mailbox", "#mailbox", "Hello there, welcome aboard") // a test send fills the template for nobody

	// A rule with an error at line 1: shown at its position as it is typed,
	// without pressing a button.
	bad := `count("Order Completed", "90d") >=`
	_, cerr := segment.Compile(bad)
	var re *rules.Error
	if !errors.As(cerr, &re) {
		t.Fatalf("test rule should not compile: %v", cerr)
	}
	run(t, ctx, "write an invalid rule",
		chromedp.Navigate(e.url+"/segments/new"),
		chromedp.WaitVisible(chromedp.CSS("#rule")),
		chromedp.SendKeys(chromedp.CSS("#name"), "Repeat buyers"),
		chromedp.Clear(chromedp.CSS("#rule")),
		chromedp.SendKeys(chromedp.CSS("#rule"), bad),
		chromedp.WaitVisible(chromedp.Search(`//div[@id="rule-error"][@data-line="1"][@data-column="`+itoa(re.Column)+`"]`)),
	)
	if got, want := textOf(t, ctx, "#rule-error"), "Line 1, column "+itoa(re.Column)+":"; !strings.Contains(got, want) {
		t.Fatalf("rule error %q, want %q", got, want)
	}
	shot(t, ctx, dir, "segment")

	// Fixed and saved, the overview shows the segment and the journey.
	run(t, ctx, "save the fixed rule",
		chromedp.SetValue(chromedp.CSS("#rule"), `count("Order Completed", "90d") >= 1`),
		chromedp.Click(chromedp.CSS("#save-button")),
		chromedp.WaitVisible(chromedp.CSS("#saved")),
		chromedp.Navigate(e.url+"/"),
		chromedp.WaitVisible(chromedp.CSS("nav.main")),
	)
	if got := textOf(t, ctx, "main"); !strings.Contains(got, "Repeat buyers") || !strings.Contains(got, "Welcome series") {
		t.Errorf("overview:\n%s", got)
	}
	shot(t, ctx, dir, "dashboard")

	// The other sections, reached from the menu: each shows what this run
	// did (the sent email, the key, the admin, the draft's steps).
	run(t, ctx, "open the reports",
		chromedp.Click(chromedp.CSS(`nav.main a[href="/reports"]`)),
		chromedp.WaitVisible(chromedp.Search(`//h1[normalize-space(.)="Reports"]`)),
	)
	if got := textOf(t, ctx, "main"); !strings.Contains(got, "Welcome series") {
		t.Errorf("reports do not list the journey:\n%.3000s", got)
	}
	shot(t, ctx, dir, "reports")
	run(t, ctx, "open the data sources",
		chromedp.Click(chromedp.CSS(`nav.main a[href="/data"]`)),
		chromedp.WaitVisible(chromedp.Search(`//h1[normalize-space(.)="Data"]`)),
	)
	shot(t, ctx, dir, "data")
	run(t, ctx, "open the users",
		chromedp.Click(chromedp.CSS(`nav.main a[href="/settings"]`)),
		chromedp.WaitVisible(chromedp.Search(`//h1[normalize-space(.)="Settings"]`)),
		chromedp.Navigate(e.url+"/settings/users"),
		chromedp.WaitVisible(chromedp.Search(`//h1[normalize-space(.)="Settings"]`)),
	)
	if got := textOf(t, ctx, "main"); !strings.Contains(got, "admin") {
		t.Errorf("users page:\n%.3000s", got)
	}
	shot(t, ctx, dir, "settings-users")
	run(t, ctx, "open the journey editor",
		chromedp.Navigate(journeyURL+"/edit"),
		chromedp.WaitVisible(chromedp.Search(`//h1[starts-with(normalize-space(.), "Edit")]`)),
	)
	if got := textOf(t, ctx, "main"); !strings.Contains(got, "Welcome") {
		t.Errorf("journey editor:\n%.3000s", got)
	}
	shot(t, ctx, dir, "journey-editor")
}

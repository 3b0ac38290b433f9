package api_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parcours/parcours/pkg/rules"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/user"
)

// chromiumPath is Debian's Chromium, which the browser tests drive.
const chromiumPath = "/usr/bin/chromium"

// newChromium starts a headless Chromium for one test. Without Chromium the
// test fails on CI (CI=true) and is skipped elsewhere.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := "Chromium is not installed at " + chromiumPath + ": install it with `apt-get update && apt-get install -y chromium` (Debian); .ci/run does this"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.WindowSize(1024, 768), // a tablet in landscape, a small laptop
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, cancelCtx := chromedp.NewContext(allocCtx)
	// The first action starts the browser, on a context without deadline (a
	// deadline there would stop the browser); the test's steps get one.
	if err := chromedp.Do(browserCtx); err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(browserCtx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

func run(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v\npage text:\n%.3000s", step, err, body)
	}
}

func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

func signInWithForm(t *testing.T, ctx context.Context, baseURL, email, password string) {
	t.Helper()
	run(t, ctx, "sign in as "+email,
		chromedp.Navigate(baseURL+"/"), // not signed in: the sign-in form
		chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("nav.main")),
	)
}

// TestConsoleInABrowser walks the console's first slice in headless
// Chromium: sign in, find a profile by email and read its 360 page, write a
// segment rule with an error and see it at its line and column, fix it,
// preview and save; a viewer cannot save.
func TestConsoleInABrowser(t *testing.T) {
	t.Parallel()
	ctx := newChromium(t)
	e := newEnv(t)
	marketerPW := e.consoleUser(t, "mia@shop.example", user.RoleMarketer)
	viewerPW := e.consoleUser(t, "vic@shop.example", user.RoleViewer)
	for _, rec := range []struct{ path, body string }{
		{"/v1/identify", `{"anonymousId":"cookie-1","userId":"42","traits":{"email":"Ana@Example.com","first_name":"Ana","city":"Lyon"}}`},
		{"/v1/track", `{"userId":"42","event":"Order Completed","properties":{"total":99.5}}`},
	} {
		if status, _, body := e.call(t, "POST", rec.path, e.write, rec.body); status != 200 {
			t.Fatalf("%s: %d %v", rec.path, status, body)
		}
	}

	signInWithForm(t, ctx, e.url, "mia@shop.example", marketerPW)
	if got := textOf(t, ctx, "main"); !strings.Contains(got, "Overview") || !strings.Contains(got, "Known") {
		t.Fatalf("overview:\n%s", got)
	}

	// Find Ana by her email, typed as she typed it: one match opens her 360 page.
	run(t, ctx, "search a profile",
		chromedp.Click(chromedp.CSS(`nav.main a[href="/profiles"]`)),
		chromedp.WaitVisible(chromedp.CSS("#q")),
		chromedp.SendKeys(chromedp.CSS("#q"), "Ana@Example.com"),
		chromedp.Submit(chromedp.CSS("#q")),
		chromedp.WaitVisible(chromedp.CSS("#traits")),
	)
	if h1 := textOf(t, ctx, "h1"); !strings.Contains(h1, "Ana") || !strings.Contains(h1, "Known") {
		t.Errorf("profile heading %q, want her name and state", h1)
	}
	traits := textOf(t, ctx, "#traits")
	for _, want := range []string{"first_name", "Ana", "city", "Lyon", "web"} { // web: the write key's source
		if !strings.Contains(traits, want) {
			t.Errorf("traits lack %q:\n%s", want, traits)
		}
	}
	ids := textOf(t, ctx, "#identities")
	for _, want := range []string{"Email", "ana@example.com", "User ID", "42", "Anonymous ID", "cookie-1"} {
		if !strings.Contains(ids, want) {
			t.Errorf("identities lack %q:\n%s", want, ids)
		}
	}
	if tl := textOf(t, ctx, "#timeline"); !strings.Contains(tl, "Order Completed") || !strings.Contains(tl, "total: 99.5") {
		t.Errorf("timeline:\n%s", tl)
	}

	// A rule with an error on its second line: shown at its line and column.
	bad := "profile.total_revenue > 50 &&\n  count(\"Order Completed\", \"90d\") >="
	_, err := segment.Compile(bad)
	var re *rules.Error
	if !errors.As(err, &re) || re.Line != 2 {
		t.Fatalf("test rule should fail on line 2: %v", err)
	}
	run(t, ctx, "save a rule with an error",
		chromedp.Navigate(e.url+"/segments/new"),
		chromedp.WaitVisible(chromedp.CSS("#rule")),
		chromedp.SendKeys(chromedp.CSS("#name"), "Big spenders"),
		chromedp.SetValue(chromedp.CSS("#rule"), bad),
		chromedp.Click(chromedp.CSS("#save-button")),
		chromedp.WaitVisible(chromedp.CSS("#rule-error")),
	)
	wantPos := "Line 2, column " + itoa(re.Column) + ":"
	if got := textOf(t, ctx, "#rule-error"); !strings.Contains(got, wantPos) || !strings.Contains(got, re.Message) {
		t.Fatalf("rule error %q, want %q and %q", got, wantPos, re.Message)
	}
	if name, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#name"))); err != nil || name != "Big spenders" {
		t.Fatalf("name field %q after the error (%v)", name, err)
	}

	// Fixed, previewed, saved.
	good := "profile.total_revenue > 50 &&\n  count(\"Order Completed\", \"90d\") >= 1"
	run(t, ctx, "preview the fixed rule",
		chromedp.SetValue(chromedp.CSS("#rule"), good),
		chromedp.Click(chromedp.CSS("#preview-button")),
		chromedp.WaitVisible(chromedp.CSS("#preview")),
	)
	if got := textOf(t, ctx, "#preview-count"); got != "1" {
		t.Fatalf("preview count %q, want 1", got)
	}
	if got := textOf(t, ctx, "#preview"); !strings.Contains(got, "Ana") {
		t.Fatalf("preview sample lacks Ana:\n%s", got)
	}
	run(t, ctx, "save",
		chromedp.Click(chromedp.CSS("#save-button")),
		chromedp.WaitVisible(chromedp.CSS("#saved")),
	)
	segs, err := e.segments.List(context.Background(), e.ws.ID)
	if err != nil || len(segs) != 1 || segs[0].Name != "Big spenders" || segs[0].Slug != "big-spenders" || segs[0].Rule != good {
		t.Fatalf("saved segments: %+v %v", segs, err)
	}
	segURL := e.url + "/segments/" + segs[0].ID

	// Sign out; a viewer reads the segment but has no Save button, and a
	// forced submit is refused.
	run(t, ctx, "sign out",
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#email")),
	)
	signInWithForm(t, ctx, e.url, "vic@shop.example", viewerPW)
	run(t, ctx, "viewer opens the segment",
		chromedp.Navigate(segURL),
		chromedp.WaitVisible(chromedp.CSS("#rule")),
	)
	if noSave, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#save-button") === null`)); err != nil || !noSave {
		t.Fatalf("a viewer sees the Save button (%v)", err)
	}
	run(t, ctx, "viewer changes the name", chromedp.SetValue(chromedp.CSS("#name"), "Renamed by a viewer"))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('form[action^="/segments/"]').submit(); true`)); err != nil {
		t.Fatalf("viewer forces a save: %v", err)
	}
	run(t, ctx, "the refusal", chromedp.WaitVisible(chromedp.CSS(".error")))
	if got := textOf(t, ctx, "main"); !strings.Contains(got, "Your role (viewer) can look but not change this") {
		t.Fatalf("viewer's save answered:\n%s", got)
	}
	if sg, err := e.segments.Get(context.Background(), e.ws.ID, segs[0].ID); err != nil || sg.Name != "Big spenders" {
		t.Fatalf("after the viewer's attempt: %+v %v", sg, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

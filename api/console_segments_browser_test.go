package api_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/parcours/parcours/pkg/rules"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/user"
)

// TestSegmentEditorInABrowser types a rule in headless Chromium: the error
// shows at its line and column while typing, without a button pressed or a
// page loaded; "Put the cursor there" puts the cursor at it; once the rule
// is right, the count and some of the people it selects show instead. Saved,
// the segment's page lists its members and draws its size.
func TestSegmentEditorInABrowser(t *testing.T) {
	t.Parallel()
	ctx := newChromium(t)
	e := newEnv(t)
	pw := e.consoleUser(t, "mia@shop.example", user.RoleMarketer)
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "42", "traits": map[string]any{"email": "ana@example.com", "first_name": "Ana"}})
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "42", "event": "Order Completed", "properties": map[string]any{"total": 99}})
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "43", "traits": map[string]any{"email": "bob@example.com"}})

	bad := "profile.total_revenue > 50 &&\n  count(\"Order Completed\", \"90d\") >="
	_, err := segment.Compile(bad)
	var re *rules.Error
	if !errors.As(err, &re) || re.Line != 2 {
		t.Fatalf("test rule should fail on line 2: %v", err)
	}
	errorAt := `//div[@id="rule-error"][@data-line="2"][@data-column="` + itoa(re.Column) + `"]`

	signInWithForm(t, ctx, e.url, "mia@shop.example", pw)
	run(t, ctx, "type an invalid rule",
		chromedp.Navigate(e.url+"/segments/new"),
		chromedp.WaitVisible(chromedp.CSS("#rule")),
		chromedp.SendKeys(chromedp.CSS("#name"), "Big spenders"),
		chromedp.Clear(chromedp.CSS("#rule")),
		chromedp.SendKeys(chromedp.CSS("#rule"), bad),
		chromedp.WaitVisible(chromedp.Search(errorAt)),
	)
	if got, want := textOf(t, ctx, "#rule-error"), "Line 2, column "+itoa(re.Column)+":"; !strings.Contains(got, want) || !strings.Contains(got, re.Message) {
		t.Fatalf("rule error %q, want %q and %q", got, want, re.Message)
	}
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || loc != e.url+"/segments/new" {
		t.Fatalf("typing left the page for %q (%v): the error should come without a submit", loc, err)
	}
	if inRegion, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.querySelector('#rule-status[aria-live] #rule-error') && document.querySelector("#rule").getAttribute("aria-invalid") === "true"`)); err != nil || !inRegion {
		t.Errorf("the error is not announced in the live region, or the rule not marked invalid (%v)", err)
	}
	// The button puts the cursor at the error, in the rule.
	run(t, ctx, "go to the error", chromedp.Click(chromedp.CSS("#rule-error button[data-goto-error]")))
	wantAt := strings.Index(bad, "\n") + 1 + re.Column - 1
	if at, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id + ":" + document.activeElement.selectionStart`)); err != nil || at != "rule:"+itoa(wantAt) {
		t.Errorf("after “Put the cursor there”, focus and cursor at %q (%v), want rule:%d", at, err, wantAt)
	}

	// Fixed by typing on, at the end: the count and a sample replace the error.
	run(t, ctx, "finish the rule",
		chromedp.Evaluate[chromedp.Void](`(r => r.setSelectionRange(r.value.length, r.value.length))(document.querySelector("#rule"))`),
		chromedp.SendKeys(chromedp.CSS("#rule"), " 1"),
		chromedp.WaitVisible(chromedp.CSS("#live-count")),
	)
	if got := textOf(t, ctx, "#live-count-n"); got != "1" {
		v, _ := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#rule")))
		t.Fatalf("live count %q, want 1 (rule %q)", got, v)
	}
	if got := textOf(t, ctx, "#live-sample"); !strings.Contains(got, "Ana") || strings.Contains(got, "bob@example.com") {
		t.Errorf("live sample:\n%s", got)
	}
	if gone, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#rule-error") === null && !document.querySelector("#rule").hasAttribute("aria-invalid")`)); err != nil || !gone {
		t.Errorf("the old error stays after the fix (%v)", err)
	}

	// Saved: the page lists Ana as a member and draws the size.
	run(t, ctx, "save", chromedp.Click(chromedp.CSS("#save-button")), chromedp.WaitVisible(chromedp.CSS("#saved")))
	segURL, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	members := waitForText(t, ctx, strings.Split(segURL, "?")[0], "#members", "Ana")
	if !strings.Contains(members, "Known") || !strings.Contains(members, "Export CSV") {
		t.Errorf("members:\n%s", members)
	}
	run(t, ctx, "the size chart", chromedp.WaitVisible(chromedp.CSS("#size-chart svg")))
	run(t, ctx, "open a member",
		chromedp.Click(chromedp.Search(`//table[@id="member-list"]//a[contains(., "Ana")]`)),
		chromedp.WaitVisible(chromedp.CSS("#traits")),
	)
}

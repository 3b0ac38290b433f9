package api_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/parcours/parcours/pkg/user"
)

// TestSettingsInBrowser walks the Settings pages in headless Chromium as an
// admin: the main menu leads there, the sub-navigation to each section, the
// pages fit a laptop and a tablet held upright without sideways scrolling,
// and adding a user from the keyboard shows their password once. With
// PARCOURS_SCREENSHOTS set, it saves screenshots of the sections.
func TestSettingsInBrowser(t *testing.T) {
	t.Parallel()
	ctx := newChromium(t)
	dir := screenshotDir(t)
	e := newEnv(t)
	pw := e.consoleUser(t, "ana@shop.example", user.RoleAdmin)
	signInWithForm(t, ctx, e.url, "ana@shop.example", pw)

	run(t, ctx, "open Settings from the menu",
		chromedp.Click(chromedp.CSS(`nav.main a[href="/settings"]`)),
		chromedp.WaitVisible(chromedp.CSS("#identity-form")),
	)
	if got := textOf(t, ctx, `nav.sub a[aria-current="page"]`); got != "Workspace and identity" {
		t.Fatalf("current section %q", got)
	}
	sections := []struct{ link, ready, shot string }{
		{"/settings", "#identity-form", "settings"},
		{"/settings/channels", "#email-channel", "settings-channels"},
		{"/settings/delivery", "#delivery-form", "settings-delivery"},
		{"/settings/users", "#new-user", "settings-users"},
		{"/settings/account", "#password-form", "settings-account"},
	}
	for _, width := range []int64{1280, 768} {
		run(t, ctx, "screen size", chromedp.EmulateViewport(width, 900))
		for _, s := range sections {
			run(t, ctx, "open "+s.link,
				chromedp.Click(chromedp.CSS(`nav.sub a[href="`+s.link+`"]`)),
				chromedp.WaitVisible(chromedp.CSS(s.ready)),
			)
			overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
			if err != nil {
				t.Fatal(err)
			}
			if overflow {
				t.Errorf("%s scrolls sideways at %d px wide", s.link, width)
			}
			if width == 1280 {
				shot(t, ctx, dir, s.shot)
			}
		}
	}

	// Adding someone, from the keyboard: type, pick a role, press Enter.
	run(t, ctx, "add a user",
		chromedp.Click(chromedp.CSS(`nav.sub a[href="/settings/users"]`)),
		chromedp.WaitVisible(chromedp.CSS("#new-email")),
		chromedp.SendKeys(chromedp.CSS("#new-email"), "mia@shop.example"),
		chromedp.SendKeys(chromedp.CSS("#new-name"), "Mia"),
		chromedp.Click(chromedp.CSS("#new-role-viewer")),
		chromedp.SendKeys(chromedp.CSS("#new-name"), "\r"),
		chromedp.WaitVisible(chromedp.CSS("#created")),
	)
	created := textOf(t, ctx, "#created")
	password := textOf(t, ctx, "#new-password")
	if !strings.Contains(created, "Mia can now sign in as viewer") || len(password) < user.MinPasswordLength {
		t.Fatalf("after adding:\n%s\npassword %q", created, password)
	}
	if got := textOf(t, ctx, "#user-list"); !strings.Contains(got, "mia@shop.example") || !strings.Contains(got, "never") {
		t.Fatalf("the list lacks the new user:\n%s", got)
	}
}

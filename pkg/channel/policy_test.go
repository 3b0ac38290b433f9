package channel_test

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
)

func putPolicy(t *testing.T, e *channeltest.Env, p channel.Policy) {
	t.Helper()
	if _, err := e.Ledger.Settings.PutPolicy(context.Background(), e.WorkspaceID, p); err != nil {
		t.Fatal(err)
	}
}

// A cap of 2 marketing emails per 7 days: the third is held back (dropped
// with its reason, or deferred until the first leaves the window), and
// transactional messages are exempt.
func TestFrequencyCapAtSendTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "welcome", "Hi", "<p>Hi</p>", "Hi")
	ana := e.Profile(t, "ana@example.com", nil)
	bob := e.Profile(t, "bob@example.com", nil)
	putPolicy(t, e, channel.Policy{FrequencyCaps: []channel.FrequencyCap{{Channel: "email", Max: 2, Per: "7d"}}})
	send := func(key, profileID, class, onPolicy string) channel.Delivery {
		t.Helper()
		req := request(e, key, profileID, class)
		req.OnPolicy = onPolicy
		d, err := e.Ledger.Send(ctx, req)
		if err != nil {
			t.Fatalf("send %s: %v", key, err)
		}
		return d
	}
	first := send("m1", ana, "marketing", channel.PolicyDrop)
	if d := send("m2", ana, "marketing", channel.PolicyDrop); d.Status != "sent" || first.Status != "sent" {
		t.Fatalf("first two: %+v %+v", first, d)
	}
	if d := send("m3", ana, "marketing", channel.PolicyDrop); d.Status != "skipped" || d.Reason != channel.ReasonFrequencyCap {
		t.Fatalf("third marketing email: %+v, want skipped for frequency_cap", d)
	}
	// Deferred: still claimed, until the first email leaves the 7-day window.
	d := send("m4", ana, "marketing", channel.PolicyDefer)
	if d.Status != "claimed" || d.Reason != channel.ReasonFrequencyCap || d.DeferredUntil == nil ||
		d.DeferredUntil.Sub(first.SentAt.Add(7*24*time.Hour)).Abs() > time.Second {
		t.Fatalf("deferred: %+v (first sent %v)", d, first.SentAt)
	}
	// Asking again before then defers again, and sends nothing.
	if again := send("m4", ana, "marketing", channel.PolicyDefer); again.Status != "claimed" || again.ID != d.ID || again.Attempts != 2 {
		t.Fatalf("deferred again: %+v", again)
	}
	// Transactional messages are exempt; other profiles have their own count.
	if d := send("receipt", ana, "transactional", channel.PolicyDrop); d.Status != "sent" {
		t.Fatalf("transactional: %+v", d)
	}
	if d := send("b1", bob, "marketing", channel.PolicyDrop); d.Status != "sent" {
		t.Fatalf("bob: %+v", d)
	}
	if n := len(e.SendGrid.Accepted()); n != 4 {
		t.Fatalf("%d emails sent, want 4 (2 marketing + 1 receipt to ana, 1 to bob)", n)
	}
	// Once the first email is older than the window, the deferred send goes.
	if _, err := e.Pool.Exec(ctx, `UPDATE deliveries SET sent_at = sent_at - interval '7 days' WHERE id = $1`, first.ID); err != nil {
		t.Fatal(err)
	}
	if d := send("m4", ana, "marketing", channel.PolicyDefer); d.Status != "sent" || d.DeferredUntil != nil {
		t.Fatalf("after the window: %+v", d)
	}
}

// Concurrent sends to one profile cannot both pass a cap of one: the check
// and the claim happen under one lock per profile and channel.
func TestFrequencyCapHoldsUnderConcurrentSends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "welcome", "Hi", "<p>Hi</p>", "Hi")
	ana := e.Profile(t, "ana@example.com", nil)
	putPolicy(t, e, channel.Policy{FrequencyCaps: []channel.FrequencyCap{{Channel: "email", Max: 1, Per: "1d"}}})
	const n = 12
	var wg sync.WaitGroup
	out := make([]channel.Delivery, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req := request(e, fmt.Sprintf("journey-%d", i), ana, "marketing")
			req.OnPolicy = channel.PolicyDrop
			out[i], errs[i] = e.Ledger.Send(ctx, req)
		}()
	}
	close(start)
	wg.Wait()
	sent, capped := 0, 0
	for i := range n {
		switch {
		case errs[i] != nil:
			t.Fatalf("send %d: %v", i, errs[i])
		case out[i].Status == "sent":
			sent++
		case out[i].Status == "skipped" && out[i].Reason == channel.ReasonFrequencyCap:
			capped++
		default:
			t.Fatalf("send %d: %+v", i, out[i])
		}
	}
	if sent != 1 || capped != n-1 || len(e.SendGrid.Accepted()) != 1 {
		t.Fatalf("%d sent, %d capped, %d emails: want 1, %d, 1", sent, capped, len(e.SendGrid.Accepted()), n-1)
	}
}

// Quiet hours are read in the profile's time zone (its timezone trait),
// else the workspace's default zone; transactional messages are exempt.
func TestQuietHoursInTheProfilesTimeZone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "welcome", "Hi", "<p>Hi</p>", "Hi")
	paris, _ := time.LoadLocation("Europe/Paris")
	inParis := e.Profile(t, "ana@example.com", map[string]any{"timezone": "Europe/Paris"})
	noZone := e.Profile(t, "bob@example.com", nil)
	badZone := e.Profile(t, "cy@example.com", map[string]any{"timezone": "Nowhere/Else"})
	putPolicy(t, e, channel.Policy{
		QuietHours:      &channel.QuietHours{Start: "21:00", End: "08:00", Channels: []string{"email", "sms"}},
		DefaultTimezone: "America/New_York",
	})
	// Tomorrow at 22:00 in Paris is 16:00 (or 17:00) in New York.
	tomorrow := time.Now().In(paris).AddDate(0, 0, 1)
	at22 := time.Date(tomorrow.Year(), tomorrow.Month(), tomorrow.Day(), 22, 0, 0, 0, paris)
	at8 := time.Date(tomorrow.Year(), tomorrow.Month(), tomorrow.Day()+1, 8, 0, 0, 0, paris)
	send := func(key, profileID, class, onPolicy string) channel.Delivery {
		t.Helper()
		req := request(e, key, profileID, class)
		req.OnPolicy, req.Now = onPolicy, at22
		d, err := e.Ledger.Send(ctx, req)
		if err != nil {
			t.Fatalf("send %s: %v", key, err)
		}
		return d
	}
	if d := send("paris-defer", inParis, "marketing", channel.PolicyDefer); d.Status != "claimed" || d.Reason != channel.ReasonQuietHours || d.DeferredUntil == nil || !d.DeferredUntil.Equal(at8) {
		t.Fatalf("22:00 in Paris: %+v, want deferred until %v", d, at8)
	}
	if d := send("paris-drop", inParis, "marketing", channel.PolicyDrop); d.Status != "skipped" || d.Reason != channel.ReasonQuietHours {
		t.Fatalf("22:00 in Paris, drop: %+v", d)
	}
	if d := send("paris-receipt", inParis, "transactional", channel.PolicyDrop); d.Status != "sent" {
		t.Fatalf("transactional at 22:00: %+v", d)
	}
	for _, p := range []string{noZone, badZone} {
		if d := send("ny-"+p, p, "marketing", channel.PolicyDrop); d.Status != "sent" {
			t.Fatalf("afternoon in the default zone: %+v", d)
		}
	}
	if n := len(e.SendGrid.Accepted()); n != 3 {
		t.Fatalf("%d emails, want 3", n)
	}
}

// Templates link to the preference page and the unsubscribe page with the
// message's signed links.
func TestTemplatesReadPreferenceAndUnsubscribeLinks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "welcome", "Hi", `<a href="{{ preferences_url }}">Preferences</a> <a href="{{ unsubscribe_url }}">Unsubscribe</a>`, "Manage: {{ preferences_url }}")
	ana := e.Profile(t, "ana@example.com", nil)
	d, err := e.Ledger.Send(ctx, request(e, "k", ana, "marketing"))
	if err != nil || d.Status != "sent" {
		t.Fatalf("send: %+v %v", d, err)
	}
	m := e.SendGrid.Accepted()[0]
	links := regexp.MustCompile(`href="([^"]+)"`).FindAllStringSubmatch(m.Body("text/html"), -1)
	if len(links) != 2 {
		t.Fatalf("html %s", m.Body("text/html"))
	}
	pref, _ := url.Parse(links[0][1])
	tok, err := e.Ledger.Settings.Box().VerifyPreferences(pref.Query().Get("token"), time.Now())
	if err != nil || pref.Path != "/v1/preferences" || tok.ProfileID != ana || tok.WorkspaceID != e.WorkspaceID || tok.Channel != "email" {
		t.Fatalf("preferences link %s: %+v %v", links[0][1], tok, err)
	}
	unsub, _ := url.Parse(links[1][1])
	if "<"+unsub.String()+">" != m.Headers["List-Unsubscribe"] {
		t.Fatalf("unsubscribe link %s, header %s", unsub, m.Headers["List-Unsubscribe"])
	}
	if want := "Manage: " + links[0][1]; m.Body("text/plain") != want {
		t.Fatalf("text %q, want %q", m.Body("text/plain"), want)
	}
	// The tokens are not interchangeable, tampering and expiry are refused.
	box := e.Ledger.Settings.Box()
	if _, err := box.VerifyPreferences(unsub.Query().Get("token"), time.Now()); err == nil {
		t.Fatal("an unsubscribe token opened the preference page")
	}
	if _, err := box.VerifyPreferences(pref.Query().Get("token")+"x", time.Now()); err == nil {
		t.Fatal("a tampered token verified")
	}
	short := box.SignPreferences(channel.PreferencesToken{WorkspaceID: e.WorkspaceID, ProfileID: ana, Channel: "email", Expires: time.Now().Add(time.Hour)})
	if _, err := box.VerifyPreferences(short, time.Now()); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	if _, err := box.VerifyPreferences(short, time.Now().Add(2*time.Hour)); err == nil {
		t.Fatal("an expired token verified")
	}
}

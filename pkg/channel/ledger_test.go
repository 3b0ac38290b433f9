package channel_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
)

func request(e *channeltest.Env, key, profileID, class string) channel.SendRequest {
	return channel.SendRequest{BusinessKey: key, WorkspaceID: e.WorkspaceID, ProfileID: profileID, TemplateSlug: "welcome",
		Channel: "email", Class: class, JourneyID: "j-1", NodeID: "n-1"}
}

func TestLedgerSendsOncePerBusinessKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "welcome", "Welcome {{ profile.traits.first_name }}", "<p>Hi {{ profile.traits.first_name }}</p>", "Hi {{ profile.traits.first_name }}")
	ana := e.Profile(t, "ana@example.com", map[string]any{"first_name": "Ana"})

	d, err := e.Ledger.Send(ctx, request(e, "k1", ana, "marketing"))
	if err != nil || d.Status != "sent" || d.ProviderMessageID != "sg-msg-1" || d.SentAt == nil {
		t.Fatalf("send: %+v %v", d, err)
	}
	again, err := e.Ledger.Send(ctx, request(e, "k1", ana, "marketing"))
	if err != nil || again.ID != d.ID || again.Status != "sent" {
		t.Fatalf("second send: %+v %v", again, err)
	}
	mails := e.SendGrid.Accepted()
	if len(mails) != 1 || e.SendGrid.Calls() != 1 {
		t.Fatalf("%d mails accepted in %d calls, want 1", len(mails), e.SendGrid.Calls())
	}
	m := mails[0]
	p := m.Personalizations[0]
	if m.From.Email != "news@shop.example" || m.From.Name != "The Shop" || p.To[0].Email != "ana@example.com" || m.Subject != "Welcome Ana" {
		t.Fatalf("mail %+v", m)
	}
	if p.CustomArgs["parcours_delivery_id"] != d.ID || p.CustomArgs["parcours_workspace_id"] != e.WorkspaceID || p.CustomArgs["parcours_journey_id"] != "j-1" || len(p.CustomArgs) != 3 {
		t.Fatalf("custom_args %v", p.CustomArgs)
	}
	if m.Body("text/html") != "<p>Hi Ana</p>" || m.Body("text/plain") != "Hi Ana" {
		t.Fatalf("content %+v", m.Content)
	}
	lu := m.Headers["List-Unsubscribe"]
	if !strings.HasPrefix(lu, "<https://parcours.example.com/v1/unsubscribe?token=") || m.Headers["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click" {
		t.Fatalf("headers %v", m.Headers)
	}
	u, _ := url.Parse(strings.Trim(lu, "<>"))
	tok, err := e.Ledger.Settings.Box().VerifyUnsubscribe(u.Query().Get("token"))
	if err != nil || tok.ProfileID != ana || tok.DeliveryID != d.ID {
		t.Fatalf("token %+v %v", tok, err)
	}
	if _, err := e.Ledger.Settings.Box().VerifyUnsubscribe(u.Query().Get("token") + "x"); !errors.Is(err, channel.ErrBadToken) {
		t.Fatal("a tampered token verified")
	}
}

func TestLedgerClassifiesProviderErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "welcome", "Hello", "<p>Hello</p>", "")
	ana := e.Profile(t, "ana@example.com", nil)

	// A 400 is permanent: recorded as failed, never tried again.
	e.SendGrid.Then(channeltest.Answer{Status: 400})
	d, err := e.Ledger.Send(ctx, request(e, "bad", ana, "marketing"))
	var se *channel.SendError
	if !errors.As(err, &se) || !se.Permanent || d.Status != "failed" || !strings.Contains(d.Reason, "personalizations.0.to.0.email") {
		t.Fatalf("400: %+v %v", d, err)
	}
	if d2, err := e.Ledger.Send(ctx, request(e, "bad", ana, "marketing")); err != nil || d2.Status != "failed" || e.SendGrid.Calls() != 1 {
		t.Fatalf("retry after 400: %+v %v (calls %d)", d2, err, e.SendGrid.Calls())
	}

	// A 429 is retried after the reset time; the retry sends, once.
	e.SendGrid.Then(channeltest.Answer{Status: 429, Reset: time.Now().Add(40 * time.Second)})
	d, err = e.Ledger.Send(ctx, request(e, "busy", ana, "marketing"))
	if !errors.As(err, &se) || se.Permanent || se.RetryAfter < 35*time.Second || se.RetryAfter > 41*time.Second || d.Status != "claimed" {
		t.Fatalf("429: %+v %v", d, err)
	}
	// A 500 likewise, with the activity's backoff.
	e.SendGrid.Then(channeltest.Answer{Status: 500})
	if _, err = e.Ledger.Send(ctx, request(e, "busy", ana, "marketing")); !errors.As(err, &se) || se.Permanent || se.RetryAfter != 0 {
		t.Fatalf("500: %v", err)
	}
	d, err = e.Ledger.Send(ctx, request(e, "busy", ana, "marketing"))
	if err != nil || d.Status != "sent" || d.Attempts != 3 || len(e.SendGrid.Accepted()) != 1 {
		t.Fatalf("after 429 and 500: %+v %v", d, err)
	}
}

func TestLedgerCrashWindowPerClass(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "welcome", "Hello", "<p>Hello</p>", "")
	ana := e.Profile(t, "ana@example.com", nil)
	// An attempt claimed the row, called the provider, and died.
	for _, class := range []string{"marketing", "transactional"} {
		if _, err := e.Pool.Exec(ctx, `INSERT INTO deliveries (workspace_id, business_key, profile_id, channel, status, class, in_flight)
			VALUES ($1, $2, $3, 'email', 'claimed', $4, true)`, e.WorkspaceID, "crash/"+class, ana, class); err != nil {
			t.Fatal(err)
		}
	}
	d, err := e.Ledger.Send(ctx, request(e, "crash/marketing", ana, "marketing"))
	if err != nil || d.Status != "unknown" || e.SendGrid.Calls() != 0 {
		t.Fatalf("marketing after a crash: %+v %v, want unknown and no send", d, err)
	}
	d, err = e.Ledger.Send(ctx, request(e, "crash/transactional", ana, "transactional"))
	if err != nil || d.Status != "sent" || d.Attempts != 2 || e.SendGrid.Calls() != 1 {
		t.Fatalf("transactional after a crash: %+v %v, want sent again", d, err)
	}
}

func TestLedgerRespectsConsentAndSuppressions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "welcome", "Hello", "<p>Hello</p>", "")
	ana := e.Profile(t, "ana@example.com", nil)
	bob := e.Profile(t, "bob@example.com", nil)
	nobody := e.Profile(t, "", nil)
	if _, err := e.Ledger.Settings.SetSubscription(ctx, e.WorkspaceID, channel.Subscription{ProfileID: ana, Channel: "email", Purpose: "marketing", Status: "unsubscribed", Source: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Ledger.Settings.Suppress(ctx, e.WorkspaceID, "email", e.Ledger.Settings.AddressHash(e.WorkspaceID, "BOB@example.com "), "bounce"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key, profile, class, status, reason string
	}{
		{"a-m", ana, "marketing", "skipped", "unsubscribed from marketing email"},
		{"a-t", ana, "transactional", "sent", ""},
		{"b-t", bob, "transactional", "skipped", "address suppressed (bounce)"},
		{"n-m", nobody, "marketing", "skipped", "the profile has no email address"},
	}
	for _, tt := range tests {
		d, err := e.Ledger.Send(ctx, request(e, tt.key, tt.profile, tt.class))
		if err != nil || d.Status != tt.status || d.Reason != tt.reason {
			t.Errorf("%s: %+v %v, want %s (%s)", tt.key, d, err, tt.status, tt.reason)
		}
	}
	if n := len(e.SendGrid.Accepted()); n != 1 {
		t.Fatalf("%d mails sent, want 1 (ana's transactional)", n)
	}
}

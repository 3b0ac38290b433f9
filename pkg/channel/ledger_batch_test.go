package channel_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
)

// batchOf asks for the welcome template to each profile, keyed by prefix.
func batchOf(e *channeltest.Env, prefix, class string, profiles ...string) channel.BatchRequest {
	req := channel.BatchRequest{WorkspaceID: e.WorkspaceID, TemplateSlug: "welcome", Channel: "email", Class: class,
		CustomArgs: map[string]string{"parcours_broadcast_id": "b-1"}}
	for _, p := range profiles {
		req.Recipients = append(req.Recipients, channel.BatchRecipient{BusinessKey: prefix + "/" + p, ProfileID: p})
	}
	return req
}

// A batch decides each recipient exactly as single sends do (consent,
// suppressions, address, erased profile) and sends the rest in one request
// whose personalizations rebuild, for each recipient, the very message a
// single send renders.
func TestSendBatchDecidesLikeSingleSendsInOneRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "welcome", "Welcome {{ profile.traits.first_name }}",
		"<h1>Hi {{ profile.traits.first_name }}</h1><p>Our news this month, the same for everyone.</p>{% if profile.traits.vip %}<p>VIP lounge</p>{% endif %}",
		"Hi {{ profile.traits.first_name }}")
	var profiles []string
	for i := range 20 {
		profiles = append(profiles, e.Profile(t, fmt.Sprintf("user%d@example.com", i), map[string]any{"first_name": fmt.Sprintf("N%d", i), "vip": i%3 == 0}))
	}
	unsub := e.Profile(t, "unsub@example.com", map[string]any{"first_name": "U"})
	if _, err := e.Pool.Exec(ctx, `INSERT INTO subscriptions (workspace_id, profile_id, channel, purpose, status) VALUES ($1, $2, 'email', 'marketing', 'unsubscribed')`, e.WorkspaceID, unsub); err != nil {
		t.Fatal(err)
	}
	bounced := e.Profile(t, "bounced@example.com", nil)
	if _, err := e.Pool.Exec(ctx, `INSERT INTO suppressions (workspace_id, channel, address_hash, reason) VALUES ($1, 'email', $2, 'bounce')`, e.WorkspaceID, e.Ledger.Settings.AddressHash(e.WorkspaceID, "bounced@example.com")); err != nil {
		t.Fatal(err)
	}
	noEmail := e.Profile(t, "", map[string]any{"first_name": "Nobody"})
	gone := "00000000-0000-4000-8000-000000000001"
	special := []string{unsub, bounced, noEmail, gone}
	all := append(append([]string(nil), profiles...), special...)

	res, err := e.Ledger.SendBatch(ctx, batchOf(e, "batch", "marketing", all...))
	if err != nil {
		t.Fatal(err)
	}
	if res.Calls != 1 || e.SendGrid.Calls() != 1 {
		t.Fatalf("%d calls (fake saw %d), want one request for the batch", res.Calls, e.SendGrid.Calls())
	}
	msgs := e.SendGrid.Messages()
	if len(msgs) != len(profiles) {
		t.Fatalf("%d messages, want %d", len(msgs), len(profiles))
	}
	// The same profiles one by one, through Send, on a second fake (a new
	// URL needs the key again).
	single := channeltest.NewSendGrid(t, channeltest.APIKey)
	if _, err := e.Ledger.Settings.PutEmail(ctx, e.WorkspaceID, channeltest.APIKey, "news@shop.example", "The Shop", single.URL); err != nil {
		t.Fatal(err)
	}
	byAddr := map[string]channeltest.Message{}
	for _, m := range msgs {
		byAddr[m.To.Email] = m
	}
	for i, p := range all {
		d, err := e.Ledger.Send(ctx, request(e, "single/"+p, p, "marketing"))
		if err != nil {
			t.Fatalf("single send to %s: %v", p, err)
		}
		got := res.Outcomes[i]
		if got.Status != d.Status || got.Reason != d.Reason {
			t.Errorf("recipient %d: batch %s %q, single send %s %q", i, got.Status, got.Reason, d.Status, d.Reason)
		}
	}
	for _, want := range single.Messages() {
		got, ok := byAddr[want.To.Email]
		if !ok {
			t.Errorf("%s got a single send but no batch message", want.To)
			continue
		}
		if got.Subject != want.Subject || got.HTML != want.HTML || got.Text != want.Text {
			t.Errorf("%s: batch message %q %q %q, single send %q %q %q", want.To, got.Subject, got.HTML, got.Text, want.Subject, want.HTML, want.Text)
		}
		if got.CustomArgs["parcours_broadcast_id"] != "b-1" || got.CustomArgs["parcours_delivery_id"] == "" || got.Headers["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click" {
			t.Errorf("%s: custom args %v headers %v", want.To, got.CustomArgs, got.Headers)
		}
		u, _ := url.Parse(strings.Trim(got.Headers["List-Unsubscribe"], "<>"))
		if tok, err := e.Ledger.Settings.Box().VerifyUnsubscribe(u.Query().Get("token")); err != nil || tok.DeliveryID != got.CustomArgs["parcours_delivery_id"] {
			t.Errorf("%s: unsubscribe token %+v %v", want.To, tok, err)
		}
	}
	if len(single.Messages()) != len(profiles) {
		t.Fatalf("single sends sent %d, want %d", len(single.Messages()), len(profiles))
	}
	// Skipped ones carry the reasons single sends give, and a row each
	// (but the erased profile, which has no row to hold).
	for i, want := range map[int]string{20: "unsubscribed from marketing email", 21: "address suppressed (bounce)", 22: "the profile has no email address", 23: channel.ReasonNoProfile} {
		if o := res.Outcomes[i]; o.Status != "skipped" || o.Reason != want {
			t.Errorf("outcome %d = %+v, want skipped: %s", i, o, want)
		}
	}
	// Every recipient's HTML differs (names, the VIP paragraph), yet the
	// request carries the shared text once.
	mail := e.SendGrid.Accepted()[0]
	if strings.Count(mail.Body("text/html"), "Our news this month") != 1 || len(mail.Personalizations) != len(profiles) {
		t.Fatalf("request content %q with %d personalizations", mail.Body("text/html"), len(mail.Personalizations))
	}
}

// Running a batch again — a retried activity — sends nothing twice, and a
// provider error in the middle leaves what was sent as sent.
func TestSendBatchRetriesSendOnlyWhatIsOwed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "welcome", "Hello {{ profile.traits.first_name }}", "<p>Hello {{ profile.traits.first_name }}</p>", "")
	var ps []string
	for i := range 5 {
		ps = append(ps, e.Profile(t, fmt.Sprintf("p%d@example.com", i), map[string]any{"first_name": fmt.Sprint(i)}))
	}
	// 5xx: retryable, nothing sent, rows released.
	e.SendGrid.Then(channeltest.Answer{Status: 503})
	res, err := e.Ledger.SendBatch(ctx, batchOf(e, "r", "marketing", ps...))
	var se *channel.SendError
	if !errors.As(err, &se) || se.Permanent || !se.NotSent || res.Calls != 1 {
		t.Fatalf("503: %v, %d calls", err, res.Calls)
	}
	for _, o := range res.Outcomes {
		if o.Status != "claimed" {
			t.Fatalf("after a 503, outcome %+v, want still claimed", o)
		}
	}
	// 429: retryable after the reset.
	e.SendGrid.Then(channeltest.Answer{Status: 429, Reset: time.Now().Add(30 * time.Second)})
	if _, err := e.Ledger.SendBatch(ctx, batchOf(e, "r", "marketing", ps...)); !errors.As(err, &se) || se.RetryAfter < 20*time.Second {
		t.Fatalf("429: %v", err)
	}
	res, err = e.Ledger.SendBatch(ctx, batchOf(e, "r", "marketing", ps...))
	if err != nil || res.Calls != 1 {
		t.Fatalf("third attempt: %v, %d calls", err, res.Calls)
	}
	again, err := e.Ledger.SendBatch(ctx, batchOf(e, "r", "marketing", ps...))
	if err != nil || again.Calls != 0 {
		t.Fatalf("fourth attempt: %v, %d calls, want none", err, again.Calls)
	}
	for i := range ps {
		if res.Outcomes[i].Status != "sent" || again.Outcomes[i] != res.Outcomes[i] {
			t.Fatalf("recipient %d: %+v then %+v", i, res.Outcomes[i], again.Outcomes[i])
		}
	}
	if n := len(e.SendGrid.Messages()); n != 5 {
		t.Fatalf("%d messages accepted, want 5", n)
	}
	// A marketing row a crashed attempt left in flight: unknown, not sent.
	extra := e.Profile(t, "late@example.com", nil)
	if _, err := e.Pool.Exec(ctx, `INSERT INTO deliveries (workspace_id, business_key, profile_id, channel, status, class, in_flight) VALUES ($1, $2, $3, 'email', 'claimed', 'marketing', true)`,
		e.WorkspaceID, "r/"+extra, extra); err != nil {
		t.Fatal(err)
	}
	res, err = e.Ledger.SendBatch(ctx, batchOf(e, "r", "marketing", append(ps, extra)...))
	if err != nil || res.Calls != 0 || res.Outcomes[5].Status != "unknown" {
		t.Fatalf("crash window: %v, %d calls, %+v", err, res.Calls, res.Outcomes[5])
	}
}

// A 400 for a request fails its messages with SendGrid's reason, for good.
func TestSendBatchRecordsAPermanentRefusal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "welcome", "Hello", "<p>Hello</p>", "")
	a := e.Profile(t, "a@example.com", nil)
	b := e.Profile(t, "b@example.com", nil)
	e.SendGrid.Then(channeltest.Answer{Status: 400})
	res, err := e.Ledger.SendBatch(ctx, batchOf(e, "p", "marketing", a, b))
	if err != nil {
		t.Fatalf("a permanent refusal is recorded, not returned: %v", err)
	}
	for _, o := range res.Outcomes {
		if o.Status != "failed" || !strings.Contains(o.Reason, "Does not contain a valid address") {
			t.Fatalf("outcome %+v, want failed with SendGrid's reason", o)
		}
	}
	if res, err := e.Ledger.SendBatch(ctx, batchOf(e, "p", "marketing", a, b)); err != nil || res.Calls != 0 || res.Outcomes[0].Status != "failed" {
		t.Fatalf("again: %+v %v", res, err)
	}
}

// Two profiles with one address get one message, even across batches
// when the caller keeps the claims.
func TestSendBatchOneMessagePerAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "welcome", "Hello", "<p>Hello</p>", "")
	a := e.Profile(t, "", map[string]any{"email": "shared@example.com"})
	b := e.Profile(t, "", map[string]any{"email": "Shared@example.com"})
	c := e.Profile(t, "", map[string]any{"email": "shared@example.com "})
	owners := map[string]string{}
	req := batchOf(e, "d", "marketing", a, b)
	req.ClaimAddresses = func(_ context.Context, ids []string, hashes [][]byte) ([]bool, error) {
		ok := make([]bool, len(ids))
		for i, h := range hashes {
			if owners[string(h)] == "" {
				owners[string(h)] = ids[i]
			}
			ok[i] = owners[string(h)] == ids[i]
		}
		return ok, nil
	}
	res, err := e.Ledger.SendBatch(ctx, req)
	if err != nil || res.Outcomes[0].Status != "sent" || res.Outcomes[1].Status != "skipped" || res.Outcomes[1].Reason != channel.ReasonDuplicateAddress {
		t.Fatalf("same batch: %+v %v", res.Outcomes, err)
	}
	req.Recipients = batchOf(e, "d", "marketing", c).Recipients
	res, err = e.Ledger.SendBatch(ctx, req)
	if err != nil || res.Outcomes[0].Status != "skipped" || res.Outcomes[0].Reason != channel.ReasonDuplicateAddress {
		t.Fatalf("next batch: %+v %v", res.Outcomes, err)
	}
	if n := len(e.SendGrid.Messages()); n != 1 {
		t.Fatalf("%d messages to one address, want 1", n)
	}
}

// Links that differ for everyone (the one-click unsubscribe link in the
// body) still go in one request: each message carries its own, signed for
// its own delivery.
func TestSendBatchPersonalLinksInOneRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "welcome", "News for {{ profile.traits.first_name }}",
		`<p>Hi {{ profile.traits.first_name }}</p><p>`+strings.Repeat("The same long text for all. ", 200)+`</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>`,
		"Hi {{ profile.traits.first_name }}, unsubscribe: {{ unsubscribe_url }}")
	var ps []string
	for i := range 50 {
		ps = append(ps, e.Profile(t, fmt.Sprintf("l%d@example.com", i), map[string]any{"first_name": fmt.Sprintf("Name%d", i)}))
	}
	res, err := e.Ledger.SendBatch(ctx, batchOf(e, "links", "marketing", ps...))
	if err != nil || res.Calls != 1 {
		t.Fatalf("%v, %d calls", err, res.Calls)
	}
	mail := e.SendGrid.Accepted()[0]
	if n := len(mail.Body("text/html")); n > 7000 {
		t.Fatalf("shared HTML is %d bytes: the common text should be there once", n)
	}
	for i, m := range e.SendGrid.Messages() {
		id := m.CustomArgs["parcours_delivery_id"]
		start := strings.Index(m.HTML, `href="`) + len(`href="`)
		link := m.HTML[start : start+strings.Index(m.HTML[start:], `"`)]
		u, err := url.Parse(strings.ReplaceAll(link, "&amp;", "&"))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := e.Ledger.Settings.Box().VerifyUnsubscribe(u.Query().Get("token"))
		if err != nil || tok.DeliveryID != id || !strings.Contains(m.Text, link) || !strings.HasPrefix(m.Subject, "News for Name") {
			t.Fatalf("message %d: link %q → %+v %v, delivery %s, text %q", i, link, tok, err, id, m.Text)
		}
	}
}

// The workspace's frequency caps hold back a recipient of a marketing batch
// as they hold back a journey's send; transactional batches are exempt.
func TestSendBatchAppliesTheDeliveryPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "welcome", "Hello", "<p>Hello</p>", "")
	if _, err := e.Ledger.Settings.PutPolicy(ctx, e.WorkspaceID, channel.Policy{FrequencyCaps: []channel.FrequencyCap{{Channel: "email", Purpose: "marketing", Max: 1, Per: "7d"}}}); err != nil {
		t.Fatal(err)
	}
	a := e.Profile(t, "a@example.com", nil)
	b := e.Profile(t, "b@example.com", nil)
	if d, err := e.Ledger.Send(ctx, request(e, "earlier", a, "marketing")); err != nil || d.Status != "sent" {
		t.Fatalf("earlier send: %+v %v", d, err)
	}
	res, err := e.Ledger.SendBatch(ctx, batchOf(e, "capped", "marketing", a, b))
	if err != nil || res.Outcomes[0].Status != "skipped" || res.Outcomes[0].Reason != channel.ReasonFrequencyCap || res.Outcomes[1].Status != "sent" {
		t.Fatalf("marketing batch: %+v %v", res.Outcomes, err)
	}
	res, err = e.Ledger.SendBatch(ctx, batchOf(e, "receipt", "transactional", a, b))
	if err != nil || res.Outcomes[0].Status != "sent" || res.Outcomes[1].Status != "sent" {
		t.Fatalf("transactional batch: %+v %v", res.Outcomes, err)
	}
}

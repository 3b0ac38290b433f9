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

// Twilio's own examples (TwilioDevEd/api-snippets, security/signature_validation):
// an implementation that signs the way Twilio does must find these.
func TestTwilioSignatureMatchesTwilioExamples(t *testing.T) {
	t.Parallel()
	const u = "https://mycompany.com/myapp.php?foo=1&bar=2"
	params := func(caller string) url.Values {
		return url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {caller}, "Digits": {"1234"}, "From": {caller}, "To": {"+18005551212"}}
	}
	tests := []struct {
		caller, want string
	}{
		{"+14158675310", "GvWf1cFY/Q7PnoempGyD5oXAezc="},
		{"+14158675309", "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
	}
	for _, tt := range tests {
		if got := channel.TwilioSignature("12345", u, params(tt.caller)); got != tt.want {
			t.Errorf("signature with caller %s = %s, want %s", tt.caller, got, tt.want)
		}
		if !channel.VerifyTwilioSignature("12345", u, params(tt.caller), tt.want) {
			t.Errorf("Twilio's example signature %s does not verify", tt.want)
		}
	}
	sig := tests[0].want
	tampered := params(tests[0].caller)
	tampered.Set("Digits", "9999")
	refused := []struct {
		name, token, url, sig string
		params                url.Values
	}{
		{"tampered parameter", "12345", u, sig, tampered},
		{"added parameter", "12345", u, sig, func() url.Values { p := params(tests[0].caller); p.Set("ErrorCode", "1"); return p }()},
		{"wrong token", "54321", u, sig, params(tests[0].caller)},
		{"other URL (the host a proxy forwards to)", "12345", "http://10.0.0.7:8080/myapp.php?foo=1&bar=2", sig, params(tests[0].caller)},
		{"missing", "12345", u, "", params(tests[0].caller)},
		{"not base64", "12345", u, "%%%", params(tests[0].caller)},
		{"no token", "", u, sig, params(tests[0].caller)},
	}
	for _, tt := range refused {
		if channel.VerifyTwilioSignature(tt.token, tt.url, tt.params, tt.sig) {
			t.Errorf("%s: verified", tt.name)
		}
	}
	// Twilio may sign with or without the scheme's default port.
	withPort := channel.TwilioSignature("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", params(tests[0].caller))
	if !channel.VerifyTwilioSignature("12345", u, params(tests[0].caller), withPort) {
		t.Error("a signature over the URL with :443 does not verify against the URL without it")
	}
}

func TestSMSSegments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		segments   int
		encoding   string
	}{
		{"empty", "", 0, channel.EncodingGSM7},
		{"short", "Hello Ana, your order shipped.", 1, channel.EncodingGSM7},
		{"160 GSM-7", strings.Repeat("a", 160), 1, channel.EncodingGSM7},
		{"161 GSM-7", strings.Repeat("a", 161), 2, channel.EncodingGSM7},
		{"306 GSM-7", strings.Repeat("a", 306), 2, channel.EncodingGSM7},
		{"307 GSM-7", strings.Repeat("a", 307), 3, channel.EncodingGSM7},
		{"accents of the GSM alphabet", "Réservé: ÄÖÜ ñ é è ù à ß Ø Å", 1, channel.EncodingGSM7},
		{"an accent outside it", "Joyeux Noël", 1, channel.EncodingUCS2},
		{"80 euro signs are 160 septets", strings.Repeat("€", 80), 1, channel.EncodingGSM7},
		{"81 euro signs", strings.Repeat("€", 81), 2, channel.EncodingGSM7},
		// An escape sequence is never split: the € moves to the second part.
		{"extended character at a boundary", strings.Repeat("a", 152) + "€" + strings.Repeat("a", 152), 3, channel.EncodingGSM7},
		{"one non-GSM character makes it UCS-2", "Cześć", 1, channel.EncodingUCS2},
		{"70 UCS-2", strings.Repeat("ł", 70), 1, channel.EncodingUCS2},
		{"71 UCS-2", strings.Repeat("ł", 71), 2, channel.EncodingUCS2},
		{"134 UCS-2", strings.Repeat("ł", 134), 2, channel.EncodingUCS2},
		{"135 UCS-2", strings.Repeat("ł", 135), 3, channel.EncodingUCS2},
		{"35 emoji are 70 UTF-16 units", strings.Repeat("😀", 35), 1, channel.EncodingUCS2},
		// A surrogate pair is never split.
		{"emoji at a boundary", strings.Repeat("a", 66) + "😀" + strings.Repeat("a", 66), 3, channel.EncodingUCS2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, enc := channel.SMSSegments(tt.body)
			if n != tt.segments || enc != tt.encoding {
				t.Fatalf("SMSSegments = %d %s, want %d %s", n, enc, tt.segments, tt.encoding)
			}
		})
	}
}

func smsRequest(e *channeltest.Env, key, profileID, class string) channel.SendRequest {
	return channel.SendRequest{BusinessKey: key, WorkspaceID: e.WorkspaceID, ProfileID: profileID, TemplateSlug: "shipped",
		Channel: "sms", Class: class, JourneyID: "j-1", NodeID: "sms-1"}
}

func TestLedgerSendsOneSMSPerBusinessKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	fake := e.SMS(t, "")
	e.SMSTemplate(t, "shipped", "Hi {{ profile.traits.first_name }}, your order shipped.")
	ana := e.PhoneProfile(t, "+33612345678", map[string]any{"first_name": "Ana"})

	d, err := e.Ledger.Send(ctx, smsRequest(e, "k1", ana, "marketing"))
	if err != nil || d.Status != "sent" || !strings.HasPrefix(d.ProviderMessageID, "SM") || d.Channel != "sms" || d.Segments != 1 {
		t.Fatalf("send: %+v %v", d, err)
	}
	// A duplicate activity attempt: the ledger answers, Twilio is not called.
	again, err := e.Ledger.Send(ctx, smsRequest(e, "k1", ana, "marketing"))
	if err != nil || again.ID != d.ID || again.Status != "sent" {
		t.Fatalf("second send: %+v %v", again, err)
	}
	msgs := fake.Accepted()
	if len(msgs) != 1 || fake.Calls() != 1 {
		t.Fatalf("%d messages in %d calls, want 1", len(msgs), fake.Calls())
	}
	m := msgs[0]
	if m.SID != d.ProviderMessageID || m.To != "+33612345678" || m.From != channeltest.TwilioFrom || m.Body != "Hi Ana, your order shipped." {
		t.Fatalf("message %+v", m)
	}
	if want := "https://parcours.example.com/v1/webhooks/twilio/" + e.WorkspaceID + "?delivery=" + d.ID; m.StatusCallback != want {
		t.Fatalf("StatusCallback %q, want %q", m.StatusCallback, want)
	}

	// A long body with an emoji: UCS-2, 67 per segment.
	e.SMSTemplate(t, "long", strings.Repeat("Big sale! ", 10)+"🎉")
	req := smsRequest(e, "k2", ana, "marketing")
	req.TemplateSlug = "long"
	if d, err := e.Ledger.Send(ctx, req); err != nil || d.Segments != 2 {
		t.Fatalf("long send: %+v %v, want 2 segments", d, err)
	}
}

func TestLedgerClassifiesTwilioErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	fake := e.SMS(t, "")
	e.SMSTemplate(t, "shipped", "Your order shipped.")
	ana := e.PhoneProfile(t, "+33612345678", nil)
	var se *channel.SendError

	// A 429 storm: each answer retryable, after Retry-After when given; then
	// one message.
	fake.Then(channeltest.TwilioAnswer{Status: 429, RetryAfter: 7 * time.Second}, channeltest.TwilioAnswer{Status: 429}, channeltest.TwilioAnswer{Status: 503, RetryAfter: 2 * time.Second}, channeltest.TwilioAnswer{Status: 500})
	wants := []time.Duration{7 * time.Second, 0, 2 * time.Second, 0}
	for i, want := range wants {
		d, err := e.Ledger.Send(ctx, smsRequest(e, "storm", ana, "marketing"))
		if !errors.As(err, &se) || se.Permanent || se.RetryAfter != want || d.Status != "claimed" {
			t.Fatalf("answer %d: %+v %v (retry after %v), want retryable after %v", i, d, err, se.RetryAfter, want)
		}
	}
	d, err := e.Ledger.Send(ctx, smsRequest(e, "storm", ana, "marketing"))
	if err != nil || d.Status != "sent" || d.Attempts != 5 || len(fake.Accepted()) != 1 || fake.Calls() != 5 {
		t.Fatalf("after the storm: %+v %v (%d accepted in %d calls)", d, err, len(fake.Accepted()), fake.Calls())
	}

	// A permanent 400: failed with Twilio's code and message (without the
	// number), never tried again.
	fake.Then(channeltest.TwilioAnswer{Status: 400, Code: 21211, Message: "The 'To' number +33612345678 is not a valid phone number."})
	d, err = e.Ledger.Send(ctx, smsRequest(e, "bad", ana, "marketing"))
	if !errors.As(err, &se) || !se.Permanent || d.Status != "failed" || d.ErrorCode != "21211" ||
		!strings.Contains(d.Reason, "error 21211") || !strings.Contains(d.Reason, "is not a valid phone number") || strings.Contains(d.Reason, "612345678") {
		t.Fatalf("400: %+v %v", d, err)
	}
	calls := fake.Calls()
	if d2, err := e.Ledger.Send(ctx, smsRequest(e, "bad", ana, "marketing")); err != nil || d2.Status != "failed" || fake.Calls() != calls {
		t.Fatalf("retry after 400: %+v %v (calls %d, was %d)", d2, err, fake.Calls(), calls)
	}

	// 21610: the person replied STOP. Failed, the number suppressed, the
	// profile opted out; a later transactional SMS is not sent either.
	fake.Then(channeltest.TwilioAnswer{Status: 400, Code: 21610, Message: "Attempt to send to unsubscribed recipient"})
	if d, err = e.Ledger.Send(ctx, smsRequest(e, "stopped", ana, "marketing")); d.Status != "failed" || d.ErrorCode != "21610" || err == nil {
		t.Fatalf("21610: %+v %v", d, err)
	}
	var status, source string
	if err := e.Pool.QueryRow(ctx, `SELECT status, source FROM subscriptions WHERE workspace_id = $1 AND profile_id = $2 AND channel = 'sms' AND purpose = 'marketing'`,
		e.WorkspaceID, ana).Scan(&status, &source); err != nil || status != "unsubscribed" || source != "twilio" {
		t.Fatalf("subscription after 21610: %q %q %v", status, source, err)
	}
	calls = fake.Calls()
	d, err = e.Ledger.Send(ctx, smsRequest(e, "receipt", ana, "transactional"))
	if err != nil || d.Status != "skipped" || d.Reason != "address suppressed (opt_out)" || fake.Calls() != calls {
		t.Fatalf("transactional after STOP: %+v %v", d, err)
	}
}

func TestLedgerSMSRecipientAndConsent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	fake := e.SMS(t, "")
	e.SMSTemplate(t, "shipped", "Your order shipped.")
	withdrawn := e.PhoneProfile(t, "+33612345678", nil)
	trait := e.PhoneProfile(t, "", map[string]any{"phone": "+44 20 7946 0958"})
	national := e.PhoneProfile(t, "", map[string]any{"phone": "06 12 34 56 78"})
	none := e.PhoneProfile(t, "", map[string]any{"email": "nobody@example.com"})
	if _, err := e.Ledger.Settings.SetSubscription(ctx, e.WorkspaceID, channel.Subscription{ProfileID: withdrawn, Channel: "sms", Purpose: "marketing", Status: "unsubscribed", Source: "test"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key, profile, class, status, reason string
	}{
		{"w-m", withdrawn, "marketing", "skipped", "unsubscribed from marketing sms"},
		{"w-t", withdrawn, "transactional", "sent", ""},
		{"trait", trait, "marketing", "sent", ""},
		{"national", national, "marketing", "skipped", "the profile's phone number is not in international E.164 form (+ and the country code)"},
		{"none", none, "marketing", "skipped", "the profile has no phone number"},
	}
	for _, tt := range tests {
		d, err := e.Ledger.Send(ctx, smsRequest(e, tt.key, tt.profile, tt.class))
		if err != nil || d.Status != tt.status || d.Reason != tt.reason {
			t.Errorf("%s: %+v %v, want %s (%s)", tt.key, d, err, tt.status, tt.reason)
		}
	}
	msgs := fake.Accepted()
	if len(msgs) != 2 || msgs[0].To != "+33612345678" || msgs[1].To != "+442079460958" {
		t.Fatalf("messages %+v, want the transactional one to +33612345678 and one to +442079460958", msgs)
	}
}

func TestSMSSettingsValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	good := channel.SMSInput{AccountSID: channeltest.TwilioAccountSID, AuthToken: channeltest.TwilioAuthToken, FromNumber: "+14155550100"}
	tests := []struct {
		name   string
		change func(*channel.SMSInput)
		fields []string
	}{
		{"everything wrong", func(in *channel.SMSInput) {
			*in = channel.SMSInput{AccountSID: "AB12", AuthToken: "secret", FromNumber: "0612345678", MessagingServiceSID: "MGxyz", BaseURL: "ftp://x", StatusCallbackBaseURL: "https://p.example/?x=1"}
		}, []string{"account_sid", "auth_token", "from_number", "messaging_service_sid", "base_url", "status_callback_base_url"}},
		{"no sender", func(in *channel.SMSInput) { in.FromNumber = "" }, []string{"from_number"}},
		{"first configuration without a token", func(in *channel.SMSInput) { in.AuthToken = "" }, []string{"auth_token"}},
	}
	for _, tt := range tests {
		in := good
		tt.change(&in)
		_, err := e.Ledger.Settings.PutSMS(ctx, e.WorkspaceID, in)
		var fes channel.FieldErrors
		if !errors.As(err, &fes) {
			t.Errorf("%s: %v, want field errors", tt.name, err)
			continue
		}
		var got []string
		for _, f := range fes {
			got = append(got, f.Field)
		}
		if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
			t.Errorf("%s: fields %v, want %v", tt.name, got, tt.fields)
		}
	}
	out, err := e.Ledger.Settings.PutSMS(ctx, e.WorkspaceID, good)
	if err != nil || !out.AuthTokenSet || out.FromNumber != "+14155550100" {
		t.Fatalf("good settings: %+v %v", out, err)
	}
	// The token is kept sealed: not in the stored row.
	var raw []byte
	if err := e.Pool.QueryRow(ctx, `SELECT config::text::bytea || coalesce(secret_ciphertext, '') FROM channel_settings WHERE workspace_id = $1 AND channel = 'sms'`, e.WorkspaceID).Scan(&raw); err != nil || strings.Contains(string(raw), channeltest.TwilioAuthToken) {
		t.Fatalf("stored row holds the token in clear (%v)", err)
	}
	// Without a token: kept for the same account, required for another.
	in := good
	in.AuthToken, in.MessagingServiceSID = "", "MG0123456789abcdef0123456789abcdef"
	if out, err := e.Ledger.Settings.PutSMS(ctx, e.WorkspaceID, in); err != nil || !out.AuthTokenSet {
		t.Fatalf("same account without token: %+v %v", out, err)
	}
	in.AccountSID = "AC" + strings.Repeat("1", 32)
	var fes channel.FieldErrors
	if _, err := e.Ledger.Settings.PutSMS(ctx, e.WorkspaceID, in); !errors.As(err, &fes) || fes[0].Field != "auth_token" {
		t.Fatalf("other account without token: %v", err)
	}
}

// Status callbacks through the ledger (the API test checks the signature).
func TestRecordTwilioStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	fake := e.SMS(t, "")
	e.SMSTemplate(t, "shipped", "Your order shipped.")
	ana := e.PhoneProfile(t, "+33612345678", nil)
	bob := e.PhoneProfile(t, "+33698765432", nil)
	da, _ := e.Ledger.Send(ctx, smsRequest(e, "a", ana, "marketing"))
	db, _ := e.Ledger.Send(ctx, smsRequest(e, "b", bob, "marketing"))
	msgs := fake.Accepted()
	status := func(m channeltest.SMSMessage, st, code string) channel.TwilioResult {
		t.Helper()
		ts, err := channel.ParseTwilioStatus(fake.StatusParams(m, st, code), "")
		if err != nil {
			t.Fatal(err)
		}
		res, err := e.Ledger.RecordTwilioStatus(ctx, e.WorkspaceID, ts)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := status(msgs[0], "sent", ""); !res.Stored || res.DeliveryID != da.ID || len(res.ProfileEvents) != 0 {
		t.Fatalf("sent: %+v", res)
	}
	res := status(msgs[0], "delivered", "")
	if !res.Stored || len(res.ProfileEvents) != 1 || res.ProfileEvents[0].Message.Event != "SMS Delivered" || res.ProfileEvents[0].ProfileID != ana {
		t.Fatalf("delivered: %+v", res)
	}
	if again := status(msgs[0], "delivered", ""); again.Stored || len(again.ProfileEvents) != 1 || again.ProfileEvents[0].Message.MessageID != res.ProfileEvents[0].Message.MessageID {
		t.Fatalf("delivered again: %+v, want not stored, the same profile event id", again)
	}
	res = status(msgs[1], "undelivered", "30003")
	if !res.Stored || len(res.ProfileEvents) != 1 || res.ProfileEvents[0].Message.Event != "SMS Failed" || res.ProfileEvents[0].Message.Properties["error_code"] != "30003" {
		t.Fatalf("undelivered: %+v", res)
	}
	a, _ := e.Ledger.Get(ctx, e.WorkspaceID, da.ID)
	b, _ := e.Ledger.Get(ctx, e.WorkspaceID, db.ID)
	if a.Status != "sent" || a.DeliveredAt == nil {
		t.Fatalf("ana's delivery %+v, want sent and delivered", a)
	}
	if b.Status != "failed" || b.ErrorCode != "30003" || b.SentAt == nil || !strings.Contains(b.Reason, "undelivered (error 30003") {
		t.Fatalf("bob's delivery %+v, want failed with 30003, sent_at kept", b)
	}
	var n int
	if err := e.Pool.QueryRow(ctx, `SELECT count(*) FROM delivery_events WHERE workspace_id = $1`, e.WorkspaceID).Scan(&n); err != nil || n != 3 {
		t.Fatalf("%d delivery events stored, want 3 (sent, delivered, undelivered) %v", n, err)
	}
	// Failed with 21610 (bob replied STOP): his number is suppressed and he
	// is opted out of marketing SMS.
	status(msgs[1], "failed", "21610")
	if d, err := e.Ledger.Send(ctx, smsRequest(e, "b2", bob, "transactional")); err != nil || d.Status != "skipped" || d.Reason != "address suppressed (opt_out)" {
		t.Fatalf("send after STOP: %+v %v", d, err)
	}
	var sub string
	if err := e.Pool.QueryRow(ctx, `SELECT status FROM subscriptions WHERE workspace_id = $1 AND profile_id = $2 AND channel = 'sms' AND purpose = 'marketing'`, e.WorkspaceID, bob).Scan(&sub); err != nil || sub != "unsubscribed" {
		t.Fatalf("bob's sms subscription %q %v", sub, err)
	}
	var raw string
	if err := e.Pool.QueryRow(ctx, `SELECT string_agg(raw::text, ' ') FROM delivery_events WHERE workspace_id = $1`, e.WorkspaceID).Scan(&raw); err != nil || strings.Contains(raw, "612345678") || strings.Contains(raw, "698765432") || strings.Contains(raw, "Lyon") || !strings.Contains(raw, `"MessageStatus": "delivered"`) {
		t.Fatalf("stored events hold phone numbers: %s %v", raw, err)
	}

	// A delivery whose SID the ledger did not record (a worker died after
	// Twilio answered) is found by the callback URL's delivery id and settled.
	if _, err := e.Pool.Exec(ctx, `INSERT INTO deliveries (workspace_id, business_key, profile_id, channel, status, class, in_flight)
		VALUES ($1, 'crash', $2, 'sms', 'unknown', 'marketing', false)`, e.WorkspaceID, ana); err != nil {
		t.Fatal(err)
	}
	var crashID string
	e.Pool.QueryRow(ctx, `SELECT id::text FROM deliveries WHERE workspace_id = $1 AND business_key = 'crash'`, e.WorkspaceID).Scan(&crashID)
	ts, _ := channel.ParseTwilioStatus(url.Values{"MessageSid": {"SM" + strings.Repeat("9", 32)}, "MessageStatus": {"delivered"}}, crashID)
	if res, err := e.Ledger.RecordTwilioStatus(ctx, e.WorkspaceID, ts); err != nil || res.DeliveryID != crashID {
		t.Fatalf("crash window: %+v %v", res, err)
	}
	c, _ := e.Ledger.Get(ctx, e.WorkspaceID, crashID)
	if c.Status != "sent" || c.ProviderMessageID != "SM"+strings.Repeat("9", 32) || c.DeliveredAt == nil {
		t.Fatalf("crash delivery %+v, want settled as sent with the SID", c)
	}
	if _, err := channel.ParseTwilioStatus(url.Values{"MessageStatus": {"sent"}}, ""); err == nil {
		t.Fatal("a callback without MessageSid parsed")
	}
}

// The Twilio base URL is workspace-configured: a loopback host is refused at
// dial time unless allowed, for good (no retry).
func TestTwilioRefusesPrivateHosts(t *testing.T) {
	t.Parallel()
	fake := channeltest.NewTwilio(t)
	_, err := channel.NewTwilio(nil).Send(context.Background(), fake.AccountSID, fake.AuthToken, fake.URL,
		channel.SMS{To: "+33612345678", From: channeltest.TwilioFrom, Body: "hi"})
	var se *channel.SendError
	if !errors.As(err, &se) || !se.Permanent || !errors.Is(err, channel.ErrForbiddenAddress) && !strings.Contains(se.Reason, "not allowed") || fake.Calls() != 0 {
		t.Fatalf("send to %s without allowlist: %v (calls %d)", fake.URL, err, fake.Calls())
	}
}

package channel

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"strconv"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/addrhash"
)

func TestVerifyEventWebhook(t *testing.T) {
	t.Parallel()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	key, err := ParseEventWebhookKey(" " + base64.StdEncoding.EncodeToString(der) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	sign := func(ts string, body []byte) string {
		h := sha256.Sum256(append([]byte(ts), body...))
		sig, err := ecdsa.SignASN1(rand.Reader, priv, h[:])
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(sig)
	}
	now := time.Unix(1_800_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`[{"event":"open"}]`)
	tests := []struct {
		name      string
		key       *ecdsa.PublicKey
		body      []byte
		sig, ts   string
		now       time.Time
		wantField string // "" means accepted
	}{
		{"valid", key, body, sign(ts, body), ts, now, ""},
		{"9 minutes old", key, body, sign(ts, body), ts, now.Add(9 * time.Minute), ""},
		{"11 minutes old", key, body, sign(ts, body), ts, now.Add(11 * time.Minute), "X-Twilio-Email-Event-Webhook-Timestamp"},
		{"11 minutes ahead", key, body, sign(ts, body), ts, now.Add(-11 * time.Minute), "X-Twilio-Email-Event-Webhook-Timestamp"},
		{"tampered", key, []byte(`[{"event":"click"}]`), sign(ts, body), ts, now, "X-Twilio-Email-Event-Webhook-Signature"},
		{"no key", nil, body, sign(ts, body), ts, now, "X-Twilio-Email-Event-Webhook-Signature"},
		{"no signature", key, body, "", ts, now, "X-Twilio-Email-Event-Webhook-Signature"},
		{"no timestamp", key, body, sign(ts, body), "", now, "X-Twilio-Email-Event-Webhook-Timestamp"},
		{"signature not base64", key, body, "%%%", ts, now, "X-Twilio-Email-Event-Webhook-Signature"},
	}
	for _, tt := range tests {
		err := VerifyEventWebhook(tt.key, tt.body, tt.sig, tt.ts, tt.now)
		se, _ := err.(*SignatureError)
		switch {
		case tt.wantField == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantField != "" && (se == nil || se.Field != tt.wantField):
			t.Errorf("%s: %v, want a signature error on %s", tt.name, err, tt.wantField)
		}
	}
}

func TestParseEventWebhookKeyRefusesOtherKeys(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	for _, in := range []string{"", "not base64", base64.StdEncoding.EncodeToString([]byte("junk")), base64.StdEncoding.EncodeToString(der)} {
		if _, err := ParseEventWebhookKey(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestSendGridEventDedupeKey(t *testing.T) {
	t.Parallel()
	now := time.Now()
	hashes := addrhash.New(nil)
	hash := func(email string) []byte { return hashes.Address("6f1c8a52-0d7e-4b8e-9a43-1f2e3d4c5b6a", email) }
	a, err := parseSGEvent([]byte(`{"event":"open","email":"Ana@Example.com","timestamp":1700000000,"sg_message_id":"m.1","ip":"1.2.3.4"}`), now, hash)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := parseSGEvent([]byte(`{"email":"ana@example.com","event":"open","sg_message_id":"m.1","timestamp":1700000000,"useragent":"x"}`), now, hash)
	c, _ := parseSGEvent([]byte(`{"event":"open","email":"ana@example.com","timestamp":1700000001,"sg_message_id":"m.1"}`), now, hash)
	d, _ := parseSGEvent([]byte(`{"event":"open","sg_event_id":"abc","timestamp":1700000000}`), now, hash)
	o, _ := parseSGEvent([]byte(`{"event":"open","email":"bob@example.com","timestamp":1700000000,"sg_message_id":"m.1"}`), now, hash)
	if a.dedupeKey() != b.dedupeKey() || a.dedupeKey() == c.dedupeKey() || a.dedupeKey() == o.dedupeKey() || d.dedupeKey() != "sg:abc" {
		t.Fatalf("dedupe keys %s %s %s %s %s", a.dedupeKey(), b.dedupeKey(), c.dedupeKey(), d.dedupeKey(), o.dedupeKey())
	}
	if string(a.raw) != `{"event":"open","sg_message_id":"m.1","timestamp":1700000000}` {
		t.Fatalf("raw keeps personal data: %s", a.raw)
	}
}

// The raw copy of an event keeps the allow-listed fields only; the click
// URL loses its query, the bounce reason its addresses.
func TestSendGridEventKeepsNothingOfThePerson(t *testing.T) {
	t.Parallel()
	hash := func(email string) []byte {
		return addrhash.New(nil).Address("6f1c8a52-0d7e-4b8e-9a43-1f2e3d4c5b6a", email)
	}
	tests := []struct {
		name                string
		in                  string
		raw, storedURL, why string
	}{
		{"bounce", `{"event":"bounce","email":"erin.e@example.com","timestamp":1700000000,"sg_event_id":"e1","sg_message_id":"m.1","type":"bounce","status":"5.1.1",
			"bounce_classification":"Invalid Address","reason":"550 5.1.1 <ERIN.E@example.com>: unknown user erin.e (also bcc: x@y.example)","smtp-id":"<erin.e@example.com>",
			"ip":"203.0.113.9","useragent":"Mozilla","parcours_delivery_id":"d1","parcours_workspace_id":"w1","tenant":"erin's account"}`,
			`{"bounce_classification":"Invalid Address","event":"bounce","parcours_delivery_id":"d1","parcours_workspace_id":"w1","sg_event_id":"e1","sg_message_id":"m.1","status":"5.1.1","timestamp":1700000000,"type":"bounce"}`,
			"", "550 5.1.1 <<address>>: unknown user <address> (also bcc: <address>)"},
		{"delivered, reason from the response", `{"event":"delivered","email":"erin.e@example.com","sg_event_id":"e2","response":"250 OK queued for erin.e@example.com","category":["promo","nov"]}`,
			`{"category":["promo","nov"],"event":"delivered","sg_event_id":"e2"}`, "", "250 OK queued for <address>"},
		{"click", `{"event":"click","email":"erin.e@example.com","sg_event_id":"e3","url":"https://user:pw@shop.example/u/erin.e@example.com/account?email=erin.e%40example.com&ref=user-1#top","url_offset":{"index":0,"type":"html"}}`,
			`{"event":"click","sg_event_id":"e3","url_offset":{"index":0,"type":"html"}}`, "https://shop.example/u/%3Caddress%3E/account", ""},
		{"click on a relative link", `{"event":"click","sg_event_id":"e4","url":"/account?email=x"}`, `{"event":"click","sg_event_id":"e4"}`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := parseSGEvent([]byte(tt.in), time.Now(), hash)
			if err != nil {
				t.Fatal(err)
			}
			if string(e.raw) != tt.raw || e.storedURL != tt.storedURL || e.reason != tt.why {
				t.Errorf("raw %s url %q reason %q, want %s %q %q", e.raw, e.storedURL, e.reason, tt.raw, tt.storedURL, tt.why)
			}
		})
	}
}

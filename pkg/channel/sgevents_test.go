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
	a, err := parseSGEvent([]byte(`{"event":"open","email":"Ana@Example.com","timestamp":1700000000,"sg_message_id":"m.1","ip":"1.2.3.4"}`), now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := parseSGEvent([]byte(`{"email":"ana@example.com","event":"open","sg_message_id":"m.1","timestamp":1700000000,"useragent":"x"}`), now)
	c, _ := parseSGEvent([]byte(`{"event":"open","email":"ana@example.com","timestamp":1700000001,"sg_message_id":"m.1"}`), now)
	d, _ := parseSGEvent([]byte(`{"event":"open","sg_event_id":"abc","timestamp":1700000000}`), now)
	if a.dedupeKey() != b.dedupeKey() || a.dedupeKey() == c.dedupeKey() || d.dedupeKey() != "sg:abc" {
		t.Fatalf("dedupe keys %s %s %s %s", a.dedupeKey(), b.dedupeKey(), c.dedupeKey(), d.dedupeKey())
	}
	if string(a.raw) != `{"event":"open","sg_message_id":"m.1","timestamp":1700000000}` {
		t.Fatalf("raw keeps personal data: %s", a.raw)
	}
}

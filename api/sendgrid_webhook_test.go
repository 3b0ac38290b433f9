package api_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
)

// sgKey is a Signed Event Webhook key pair, as SendGrid holds the private
// half and shows the public half (base64 DER).
type sgKey struct {
	priv   *ecdsa.PrivateKey
	public string
}

func newSGKey(t *testing.T) sgKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return sgKey{priv: priv, public: base64.StdEncoding.EncodeToString(der)}
}

// sign signs as SendGrid does: ECDSA over sha256(timestamp + body), the
// ASN.1 signature in base64.
func (k sgKey) sign(t *testing.T, ts string, body []byte) string {
	t.Helper()
	h := sha256.Sum256(append([]byte(ts), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// postSG posts body to the workspace's Event Webhook URL with the given
// headers ("" leaves a header out).
func (e *env) postSG(t *testing.T, workspaceID string, body []byte, sig, ts string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", e.url+"/v1/webhooks/sendgrid/"+workspaceID, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("X-Twilio-Email-Event-Webhook-Signature", sig)
	}
	if ts != "" {
		req.Header.Set("X-Twilio-Email-Event-Webhook-Timestamp", ts)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer is not JSON: %d %s", resp.StatusCode, raw)
	}
	if resp.StatusCode >= 400 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("error answer is not a problem document: %s", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, out
}

// postSigned signs body with k at now and posts it.
func (e *env) postSigned(t *testing.T, k sgKey, body []byte) (int, map[string]any) {
	t.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	return e.postSG(t, e.ws.ID, body, k.sign(t, ts, body), ts)
}

// sgSetup configures the email channel with a fake SendGrid and the
// verification key, a "promo" template, and a profile ana; it returns ana's id.
func sgSetup(t *testing.T, e *env, k sgKey) (*channeltest.SendGrid, string) {
	t.Helper()
	fake := channeltest.NewSendGrid(t, "SG.k")
	status, _, body := e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{
		"api_key": "SG.k", "from_email": "news@shop.example", "base_url": fake.URL, "event_webhook_public_key": k.public,
	})
	if status != 200 || body["event_webhook_configured"] != true {
		t.Fatalf("configure email: %d %v", status, body)
	}
	if status, _, body := e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": "promo", "name": "Promo", "subject": "Sale", "html": "<p>Sale</p>"}); status != 201 {
		t.Fatalf("template: %d %v", status, body)
	}
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "traits": map[string]any{"email": "ana@example.com"}})
	return fake, e.profileBy(t, "userId=ana")["id"].(string)
}

func (e *env) sendPromo(t *testing.T, key, profileID, class string) channel.Delivery {
	t.Helper()
	d, err := e.ledger.Send(context.Background(), channel.SendRequest{BusinessKey: key, WorkspaceID: e.ws.ID, ProfileID: profileID, TemplateSlug: "promo", Channel: "email", Class: class})
	if err != nil {
		t.Fatalf("send %s: %v", key, err)
	}
	return d
}

// sgEvent is one event as SendGrid posts it: custom_args at the top level.
func sgEvent(d channel.Delivery, workspaceID, event, id string, extra map[string]any) map[string]any {
	ev := map[string]any{
		"email": "ana@example.com", "timestamp": time.Now().Unix(), "event": event,
		"sg_message_id":        d.ProviderMessageID + ".filterdrecv-5645d9c87f-6r2ch-1-5D1C9A6B-4.0",
		"parcours_delivery_id": d.ID, "parcours_workspace_id": workspaceID,
		"smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "category": []string{"promo"},
	}
	if id != "" {
		ev["sg_event_id"] = id
	}
	for k, v := range extra {
		ev[k] = v
	}
	return ev
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSendGridWebhookStoresASignedBatchOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := newSGKey(t)
	fake, ana := sgSetup(t, e, k)

	// The channel says where to point SendGrid; a PUT without the key keeps it.
	status, _, ch := e.call(t, "GET", "/v1/channels/email", e.admin, nil)
	if status != 200 || ch["event_webhook_configured"] != true || ch["event_webhook_url"] != e.url+"/v1/webhooks/sendgrid/"+e.ws.ID {
		t.Fatalf("GET email channel: %d %v", status, ch)
	}
	if raw := e.rawGet(t, "/v1/channels/email"); strings.Contains(raw, k.public) {
		t.Fatal("GET email channel returns the verification key")
	}
	status, _, ch = e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{"from_email": "hello@shop.example", "base_url": fake.URL})
	if status != 200 || ch["event_webhook_configured"] != true || ch["api_key_set"] != true || ch["from_email"] != "hello@shop.example" {
		t.Fatalf("PUT without the key: %d %v", status, ch)
	}
	for _, bad := range []string{"not base64!", base64.StdEncoding.EncodeToString([]byte("not a key"))} {
		status, _, body := e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{"from_email": "hello@shop.example", "event_webhook_public_key": bad})
		if status != 422 || fieldOf(body)["field"] != "event_webhook_public_key" {
			t.Fatalf("bad key %q: %d %v", bad, status, body)
		}
	}

	d := e.sendPromo(t, "promo/1/ana", ana, "marketing")
	if d.Status != "sent" {
		t.Fatalf("send: %+v", d)
	}
	before := e.profileBy(t, "userId=ana")["computed"]
	batch := mustJSON(t, []map[string]any{
		sgEvent(d, e.ws.ID, "processed", "ev-processed", nil),
		sgEvent(d, e.ws.ID, "delivered", "ev-delivered", map[string]any{"response": "250 OK"}),
		sgEvent(d, e.ws.ID, "open", "ev-open-machine", map[string]any{"sg_machine_open": true, "ip": "17.58.1.1", "useragent": "Mozilla/5.0"}),
		sgEvent(d, e.ws.ID, "open", "ev-open-human", map[string]any{"sg_machine_open": false, "ip": "203.0.113.9"}),
		sgEvent(d, e.ws.ID, "click", "ev-click", map[string]any{"url": "https://shop.example/sale", "url_offset": map[string]any{"index": 0, "type": "html"}}),
		// No sg_event_id: deduplicated by a hash of the event.
		sgEvent(d, e.ws.ID, "deferred", "", map[string]any{"response": "400 try again later", "attempt": "1"}),
	})
	for i := 0; i < 5; i++ {
		status, out := e.postSigned(t, k, batch)
		if status != 200 || out["received"] != 6.0 {
			t.Fatalf("post %d: %d %v", i, status, out)
		}
		if want := map[bool]float64{true: 6, false: 0}[i == 0]; out["stored"] != want {
			t.Fatalf("post %d stored %v, want %v", i, out["stored"], want)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM delivery_events WHERE workspace_id = $1`, e.ws.ID); n != 6 {
		t.Fatalf("%d delivery events stored, want 6", n)
	}
	if n := e.count(t, `SELECT count(*) FROM delivery_events WHERE workspace_id = $1 AND delivery_id = $2`, e.ws.ID, d.ID); n != 6 {
		t.Fatalf("%d delivery events correlated to the delivery, want 6", n)
	}
	if n := e.count(t, `SELECT count(*) FROM delivery_events WHERE workspace_id = $1 AND (raw ? 'email' OR raw ? 'ip')`, e.ws.ID); n != 0 {
		t.Fatalf("%d delivery events keep the address or IP", n)
	}

	// The profile's timeline has the events once, machine opens flagged.
	status, _, tl := e.call(t, "GET", "/v1/profiles/"+ana+"/events", e.admin, nil)
	if status != 200 {
		t.Fatalf("timeline: %d %v", status, tl)
	}
	names := map[string]int{}
	var opens []map[string]any
	for _, x := range tl["data"].([]any) {
		ev := x.(map[string]any)
		if ev["source"] != "parcours" {
			continue
		}
		names[ev["name"].(string)]++
		props := ev["properties"].(map[string]any)
		if props["delivery_id"] != d.ID || props["template"] != "promo" {
			t.Fatalf("%s properties %v", ev["name"], props)
		}
		switch ev["name"] {
		case "Email Opened":
			opens = append(opens, props)
		case "Email Clicked":
			if props["url"] != "https://shop.example/sale" {
				t.Fatalf("click url %v", props)
			}
		}
	}
	if names["Email Delivered"] != 1 || names["Email Opened"] != 2 || names["Email Clicked"] != 1 || len(names) != 3 {
		t.Fatalf("profile events %v", names)
	}
	machine := map[any]int{}
	for _, o := range opens {
		machine[o["machine_open"]]++
	}
	if machine[true] != 1 || machine[false] != 1 {
		t.Fatalf("machine_open flags %v", machine)
	}
	// Internal events do not count in computed traits.
	if after := e.profileBy(t, "userId=ana")["computed"]; string(mustJSON(t, after)) != string(mustJSON(t, before)) {
		t.Fatalf("computed traits changed: %v -> %v", before, after)
	}
	// The delivery knows its first outcomes.
	got, err := e.ledger.Get(context.Background(), e.ws.ID, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.DeliveredAt == nil || got.OpenedAt == nil || got.MachineOpenedAt == nil || got.ClickedAt == nil || got.BouncedAt != nil {
		t.Fatalf("delivery outcomes %+v", got)
	}
}

func TestSendGridWebhookRefusesUnsignedPosts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := newSGKey(t)
	_, ana := sgSetup(t, e, k)
	d := e.sendPromo(t, "promo/1/ana", ana, "marketing")
	body := mustJSON(t, []map[string]any{sgEvent(d, e.ws.ID, "delivered", "ev-1", nil)})
	now := strconv.FormatInt(time.Now().Unix(), 10)
	stale := strconv.FormatInt(time.Now().Add(-11*time.Minute).Unix(), 10)
	future := strconv.FormatInt(time.Now().Add(11*time.Minute).Unix(), 10)
	tampered := bytes.Replace(body, []byte("delivered"), []byte("bounce"), 1)
	other := newSGKey(t)
	const sigHeader, tsHeader = "X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp"
	tests := []struct {
		name      string
		workspace string
		body      []byte
		sig, ts   string
		field     string
	}{
		{"no headers", e.ws.ID, body, "", "", sigHeader},
		{"no signature", e.ws.ID, body, "", now, sigHeader},
		{"no timestamp", e.ws.ID, body, k.sign(t, now, body), "", tsHeader},
		{"tampered body", e.ws.ID, tampered, k.sign(t, now, body), now, sigHeader},
		{"another timestamp than signed", e.ws.ID, body, k.sign(t, now, body), strconv.FormatInt(time.Now().Unix()-1, 10), sigHeader},
		{"wrong key", e.ws.ID, body, other.sign(t, now, body), now, sigHeader},
		{"stale timestamp", e.ws.ID, body, k.sign(t, stale, body), stale, tsHeader},
		{"future timestamp", e.ws.ID, body, k.sign(t, future, body), future, tsHeader},
		{"timestamp not a number", e.ws.ID, body, k.sign(t, "soon", body), "soon", tsHeader},
		{"garbage signature", e.ws.ID, body, "bm90IGEgc2lnbmF0dXJl", now, sigHeader},
		{"workspace without a key", "00000000-0000-0000-0000-000000000000", body, k.sign(t, now, body), now, sigHeader},
		{"workspace not an id", "default", body, k.sign(t, now, body), now, sigHeader},
	}
	for _, tt := range tests {
		status, out := e.postSG(t, tt.workspace, tt.body, tt.sig, tt.ts)
		if status != 401 || fieldOf(out)["field"] != tt.field || fieldOf(out)["reason"] == "" {
			t.Errorf("%s: %d %v, want 401 naming %s", tt.name, status, out, tt.field)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM delivery_events`); n != 0 {
		t.Fatalf("%d delivery events stored from refused posts", n)
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE source = 'parcours'`); n != 0 {
		t.Fatalf("%d profile events recorded from refused posts", n)
	}
	if got, _ := e.ledger.Get(context.Background(), e.ws.ID, d.ID); got.DeliveredAt != nil || got.BouncedAt != nil {
		t.Fatalf("a refused post changed the delivery: %+v", got)
	}
	// Signed properly, the same body goes through.
	if status, out := e.postSigned(t, k, body); status != 200 || out["stored"] != 1.0 {
		t.Fatalf("signed post: %d %v", status, out)
	}
	// A signed body that is not a batch is a 400 naming the body.
	if status, out := e.postSigned(t, k, []byte(`{"event":"open"}`)); status != 400 || fieldOf(out)["field"] != "body" {
		t.Fatalf("signed non-batch: %d %v", status, out)
	}
}

func TestSendGridWebhookBounceUnsubscribeAndUnknown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	k := newSGKey(t)
	fake, ana := sgSetup(t, e, k)
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "bob", "traits": map[string]any{"email": "bob@example.com"}})
	bob := e.profileBy(t, "userId=bob")["id"].(string)

	// A bounce suppresses the address: the next send, of any class, is skipped.
	d := e.sendPromo(t, "promo/1/ana", ana, "marketing")
	bounce := sgEvent(d, e.ws.ID, "bounce", "ev-bounce", map[string]any{
		"type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 <ANA@example.com>: Recipient address rejected: User unknown",
	})
	if status, out := e.postSigned(t, k, mustJSON(t, []any{bounce})); status != 200 || out["stored"] != 1.0 || out["profile_events"] != 1.0 {
		t.Fatalf("bounce: %d %v", status, out)
	}
	for _, class := range []string{"marketing", "transactional"} {
		next := e.sendPromo(t, "promo/2/ana/"+class, ana, class)
		if next.Status != "skipped" || next.Reason != "address suppressed (bounce)" {
			t.Fatalf("%s send after a bounce: %+v", class, next)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM delivery_events WHERE reason LIKE '%ana@%' OR reason ILIKE '%ANA@example.com%'`); n != 0 {
		t.Fatal("the bounce reason keeps the address")
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE profile_id = $1 AND name = 'Email Bounced'`, ana); n != 1 {
		t.Fatalf("%d Email Bounced events", n)
	}

	// An unsubscribe opts bob out of marketing email (transactional still goes).
	d = e.sendPromo(t, "promo/1/bob", bob, "marketing")
	if status, out := e.postSigned(t, k, mustJSON(t, []any{sgEvent(d, e.ws.ID, "unsubscribe", "ev-unsub", map[string]any{"email": "bob@example.com"})})); status != 200 {
		t.Fatalf("unsubscribe: %d %v", status, out)
	}
	if next := e.sendPromo(t, "promo/2/bob", bob, "marketing"); next.Status != "skipped" || next.Reason != "unsubscribed from marketing email" {
		t.Fatalf("marketing after unsubscribe: %+v", next)
	}
	if next := e.sendPromo(t, "receipt/1/bob", bob, "transactional"); next.Status != "sent" {
		t.Fatalf("transactional after unsubscribe: %+v", next)
	}

	// A delivery left unknown that SendGrid processed becomes sent.
	d = e.sendPromo(t, "promo/3/bob-unknown", bob, "transactional")
	if _, err := e.pool.Exec(ctx, `UPDATE deliveries SET status = 'unknown', sent_at = NULL, provider_message_id = '' WHERE workspace_id = $1 AND id = $2`, e.ws.ID, d.ID); err != nil {
		t.Fatal(err)
	}
	processed := sgEvent(d, e.ws.ID, "processed", "ev-processed", map[string]any{"email": "bob@example.com"})
	if status, out := e.postSigned(t, k, mustJSON(t, []any{processed})); status != 200 {
		t.Fatalf("processed: %d %v", status, out)
	}
	got, err := e.ledger.Get(ctx, e.ws.ID, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != "sent" || got.SentAt == nil || got.ProviderMessageID != d.ProviderMessageID || !strings.Contains(got.Reason, "event webhook") {
		t.Fatalf("unknown delivery after processed: %+v", got)
	}
	// Claimed again, it is not sent again.
	calls := fake.Calls()
	if again := e.sendPromo(t, "promo/3/bob-unknown", bob, "transactional"); again.Status != "sent" || fake.Calls() != calls {
		t.Fatalf("settled delivery sent again: %+v", again)
	}
}

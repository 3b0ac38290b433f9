package channel_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
	"github.com/parcours/parcours/pkg/template"
)

func TestWebhookIsSignedAndGuarded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	const secret = "whsec-0123456789abcdef"
	type got struct {
		body map[string]any
		ok   bool
	}
	received := make(chan got, 1)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var g got
		g.ok = channel.VerifySignature(secret, r.Header.Get(channel.SignatureHeader), raw, time.Now(), 5*time.Minute)
		json.Unmarshal(raw, &g.body)
		received <- g
	}))
	defer recv.Close()
	if _, err := e.Ledger.Settings.PutWebhook(ctx, e.WorkspaceID, recv.URL+"/hook", secret); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ledger.Templates.Create(ctx, e.WorkspaceID, template.Template{Slug: "ping", Name: "Ping", Channel: "webhook", Text: "Hi {{ profile.traits.first_name }}"}); err != nil {
		t.Fatal(err)
	}
	ana := e.Profile(t, "", map[string]any{"first_name": "Ana"})
	d, err := e.Ledger.Send(ctx, channel.SendRequest{BusinessKey: "w1", WorkspaceID: e.WorkspaceID, ProfileID: ana, TemplateSlug: "ping", Channel: "webhook", Class: "transactional"})
	if err != nil || d.Status != "sent" {
		t.Fatalf("webhook send: %+v %v", d, err)
	}
	g := <-received
	if !g.ok || g.body["delivery_id"] != d.ID || g.body["text"] != "Hi Ana" {
		t.Fatalf("receiver got %+v", g)
	}
	// A tampered body or another secret does not verify.
	sig := channel.Sign(secret, time.Now(), []byte(`{"a":1}`))
	if channel.VerifySignature(secret, sig, []byte(`{"a":2}`), time.Now(), time.Minute) || channel.VerifySignature("other-secret", sig, []byte(`{"a":1}`), time.Now(), time.Minute) {
		t.Fatal("a tampered webhook verified")
	}
	if channel.VerifySignature(secret, sig, []byte(`{"a":1}`), time.Now().Add(time.Hour), time.Minute) {
		t.Fatal("a stale signature verified")
	}

	// Without the allowlist, the same receiver (on loopback) is refused at dial time.
	strict := channel.NewWebhook(nil)
	_, err = strict.Post(ctx, recv.URL, secret, "d-1", []byte(`{}`))
	var se *channel.SendError
	if !errors.As(err, &se) || !se.Permanent || !strings.Contains(se.Reason, "refused") {
		t.Fatalf("loopback without allowlist: %v", err)
	}
	for _, raw := range []string{"http://10.1.2.3:9/", "http://169.254.169.254/latest/meta-data", "http://[::1]:9/", "http://0.0.0.0:9/"} {
		if _, err := strict.Post(ctx, raw, secret, "d-1", []byte(`{}`)); !errors.As(err, &se) || !se.Permanent {
			t.Errorf("%s: %v, want refused", raw, err)
		}
	}
}

func TestPublicAddr(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true,
		"127.0.0.1": false, "10.0.0.1": false, "172.16.5.4": false, "192.168.1.1": false, "169.254.169.254": false,
		"0.0.0.0": false, "::": false, "::1": false, "fe80::1": false, "fc00::1": false, "100.64.0.1": false, "::ffff:127.0.0.1": false,
	} {
		if got := channel.PublicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("PublicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestSecretsAreSealedPerRow(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	box, err := channel.NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := box.Seal("SG.secret", "ws1/email")
	if err != nil || strings.Contains(string(ct), "SG.secret") {
		t.Fatalf("seal: %v", err)
	}
	if p, err := box.Open(ct, "ws1/email"); err != nil || p != "SG.secret" {
		t.Fatalf("open: %q %v", p, err)
	}
	if _, err := box.Open(ct, "ws2/email"); err == nil {
		t.Fatal("a secret opened under another workspace")
	}
	if _, err := channel.ParseKey("c2hvcnQ="); err == nil {
		t.Fatal("a short key was accepted")
	}
}

package devmail_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
	"github.com/parcours/parcours/pkg/devmail"
	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/workspace"
)

// send posts one email through the real SendGrid client, as the ledger does.
func send(t *testing.T, baseURL, key, to, subject string, args map[string]string) (channel.Result, error) {
	t.Helper()
	return channel.NewSendGrid([]string{"127.0.0.1"}).Send(context.Background(), key, baseURL, channel.Email{
		FromEmail: "hello@shop.example", FromName: "The Shop", To: to, Subject: subject,
		HTML: `<p>Hello <a href="https://shop.example/new">new</a></p>`, Text: "Hello", CustomArgs: args,
		UnsubscribeURL: "https://parcours.example/v1/unsubscribe?token=x",
	})
}

func newMailbox(t *testing.T, max int) (*devmail.Mailbox, string) {
	t.Helper()
	m, err := devmail.New(max, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix(devmail.Path, m))
	t.Cleanup(srv.Close)
	return m, srv.URL + devmail.Path
}

// The SendGrid client talks to the mailbox as to SendGrid: accepted with a
// message id, refused with SendGrid's errors; the mailbox keeps the latest
// messages of each workspace, newest first, as the recipient gets them.
func TestMailboxSpeaksSendGrid(t *testing.T) {
	t.Parallel()
	m, base := newMailbox(t, 3)
	res, err := send(t, base, devmail.APIKey, "ana@example.com", "Welcome Ana", map[string]string{"parcours_workspace_id": "ws1", "parcours_delivery_id": "d1"})
	if err != nil || res.ProviderMessageID == "" {
		t.Fatalf("send: %+v %v", res, err)
	}
	got := m.List("ws1")
	if len(got) != 1 {
		t.Fatalf("mailbox %+v", got)
	}
	msg := got[0]
	if msg.To.Email != "ana@example.com" || msg.Subject != "Welcome Ana" || !strings.Contains(msg.HTML, "<a href") || msg.Text != "Hello" ||
		msg.From.Name != "The Shop" || msg.CustomArgs["parcours_delivery_id"] != "d1" || !strings.Contains(msg.Headers["List-Unsubscribe"], "unsubscribe") {
		t.Fatalf("message %+v", msg)
	}
	if !strings.HasPrefix(msg.ID, res.ProviderMessageID) {
		t.Fatalf("message id %q does not extend X-Message-Id %q", msg.ID, res.ProviderMessageID)
	}
	if other := m.List("ws2"); len(other) != 0 {
		t.Fatalf("another workspace sees %+v", other)
	}
	if _, ok := m.Get("ws2", msg.ID); ok {
		t.Fatal("another workspace reads the message")
	}

	_, err = send(t, base, "SG.wrong", "ana@example.com", "x", nil)
	var se *channel.SendError
	if !errors.As(err, &se) || !se.Permanent || se.Status != 401 {
		t.Fatalf("wrong key: %v", err)
	}
	// Bounded: the oldest go first.
	for _, s := range []string{"two", "three", "four"} {
		if _, err := send(t, base, devmail.APIKey, s+"@example.com", s, map[string]string{"parcours_workspace_id": "ws1"}); err != nil {
			t.Fatal(err)
		}
	}
	var subjects []string
	for _, msg := range m.List("ws1") {
		subjects = append(subjects, msg.Subject)
	}
	if strings.Join(subjects, ",") != "four,three,two" {
		t.Fatalf("kept %v, want the three newest, newest first", subjects)
	}

	// Malformed requests answer SendGrid's errors.
	for _, tt := range []struct{ body, field string }{
		{`{"personalizations":[],"from":{"email":"a@b.c"},"subject":"x","content":[{"type":"text/plain","value":"x"}]}`, "personalizations"},
		{`{"personalizations":[{"to":[{"email":"a@b.c"}]}],"subject":"x","content":[{"type":"text/plain","value":"x"}]}`, "from"},
	} {
		req, _ := http.NewRequest("POST", base+"/v3/mail/send", strings.NewReader(tt.body))
		req.Header.Set("Authorization", "Bearer "+devmail.APIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Errors []struct{ Message, Field string }
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 400 || len(body.Errors) != 1 || body.Errors[0].Field != tt.field {
			t.Fatalf("%s: %d %+v", tt.body, resp.StatusCode, body)
		}
	}
}

// A request of several personalizations (a broadcast batch) is one email
// per recipient, with its substitutions applied.
func TestMailboxSplitsPersonalizations(t *testing.T) {
	t.Parallel()
	m, base := newMailbox(t, 0)
	body := `{"from":{"email":"news@shop.example"},"subject":"News for -name-","content":[{"type":"text/html","value":"<p>Hi -name-, -name-long-</p>"}],
	  "personalizations":[{"to":[{"email":"ana@example.com"}],"substitutions":{"-name-":"Ana","-name-long-":"Ana Lopez"},"custom_args":{"parcours_workspace_id":"ws"}},
	                      {"to":[{"email":"bob@example.com"}],"subject":"Bob's news","substitutions":{"-name-":"Bob","-name-long-":"Bob Ray"},"custom_args":{"parcours_workspace_id":"ws"}}]}`
	req, _ := http.NewRequest("POST", base+"/v3/mail/send", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+devmail.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("send: %v %v", resp, err)
	}
	got := m.List("ws")
	if len(got) != 2 {
		t.Fatalf("%d messages, want 2", len(got))
	}
	bob, ana := got[0], got[1]
	if ana.Subject != "News for Ana" || ana.HTML != "<p>Hi Ana, Ana Lopez</p>" || bob.Subject != "Bob's news" || bob.HTML != "<p>Hi Bob, Bob Ray</p>" {
		t.Fatalf("ana %+v\nbob %+v", ana, bob)
	}
}

// Configure points a workspace without email at the mailbox (and a dev
// mailbox of an earlier start at the new address), never a real provider;
// the events the mailbox posts back verify with the channel's key.
func TestConfigureAndSignedEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	ws, _, _, err := workspace.NewStore(pool).Bootstrap(ctx, "default", "Default")
	if err != nil {
		t.Fatal(err)
	}
	other, _, _, err := workspace.NewStore(pool).Bootstrap(ctx, "other", "Other")
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, channel.KeySize)
	rand.Read(key)
	box, _ := channel.NewBox(key)
	settings := channel.NewStore(pool, box).AllowProviderHosts(channeltest.FakeHosts()...)

	m, err := devmail.New(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.DeliveredAfter = 0
	// The API: the mailbox under /dev/sendgrid, and the Event Webhook
	// checking signatures with the workspace's stored key.
	var mu sync.Mutex
	var events []map[string]any
	mux := http.NewServeMux()
	mux.Handle(devmail.Path+"/", http.StripPrefix(devmail.Path, m))
	mux.HandleFunc("/v1/webhooks/sendgrid/"+ws.ID, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		pub, err := settings.EventWebhookKey(r.Context(), ws.ID)
		if err == nil {
			err = channel.VerifyEventWebhook(pub, body, r.Header.Get(eventwebhook.VerificationHTTPHeader), r.Header.Get(eventwebhook.TimestampHTTPHeader), time.Now())
		}
		if err != nil {
			http.Error(w, err.Error(), 401)
			return
		}
		var evs []map[string]any
		json.Unmarshal(body, &evs)
		mu.Lock()
		events = append(events, evs...)
		mu.Unlock()
	})
	api := httptest.NewServer(mux)
	defer api.Close()

	if ok, err := m.Configure(ctx, settings, ws.ID, "http://127.0.0.1:1/"); err != nil || !ok {
		t.Fatalf("configure: %v %v", ok, err)
	}
	// A restart on another port: the channel follows, its sender kept.
	if _, err := settings.PutEmail(ctx, ws.ID, "", "team@shop.example", "Shop team", "http://127.0.0.1:1"+devmail.Path); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Configure(ctx, settings, ws.ID, api.URL); err != nil || !ok {
		t.Fatalf("configure again: %v %v", ok, err)
	}
	got, err := settings.Email(ctx, ws.ID)
	if err != nil || got.BaseURL != api.URL+devmail.Path || got.FromEmail != "team@shop.example" || !got.APIKeySet || !got.EventWebhookConfigured {
		t.Fatalf("channel %+v %v", got, err)
	}
	// A real provider stays.
	if _, err := settings.PutEmail(ctx, other.ID, "SG.real", "news@other.example", "", "https://api.sendgrid.com"); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Configure(ctx, settings, other.ID, api.URL); err != nil || ok {
		t.Fatalf("configured over a real provider: %v %v", ok, err)
	}
	if got, _ := settings.Email(ctx, other.ID); got.BaseURL != "https://api.sendgrid.com" {
		t.Fatalf("real provider changed: %+v", got)
	}

	if _, err := send(t, got.BaseURL, devmail.APIKey, "ana@example.com", "Hi", map[string]string{"parcours_workspace_id": ws.ID, "parcours_delivery_id": "d-1"}); err != nil {
		t.Fatal(err)
	}
	msg := m.List(ws.ID)[0]
	wait := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			k := len(events)
			mu.Unlock()
			if k >= n {
				return
			}
		}
		t.Fatalf("fewer than %d events arrived: %v", n, events)
	}
	wait(1)
	if err := m.Simulate(ctx, msg.ID, "click"); err != nil {
		t.Fatal(err)
	}
	wait(2)
	if e := events[0]; e["event"] != "delivered" || e["parcours_delivery_id"] != "d-1" || e["email"] != "ana@example.com" || e["sg_message_id"] != msg.ID {
		t.Fatalf("delivered event %v", e)
	}
	if e := events[1]; e["event"] != "click" || e["url"] != "https://shop.example/new" {
		t.Fatalf("click event %v", e)
	}
	if msg, _ := m.Get(ws.ID, msg.ID); strings.Join(msg.Events, ",") != "delivered,click" {
		t.Fatalf("events noted %v", msg.Events)
	}
	if err := m.Simulate(ctx, msg.ID, "bounce"); err == nil {
		t.Fatal("simulated a bounce")
	}
}

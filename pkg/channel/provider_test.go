package channel_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
)

// endlessAnswer answers status with a body that never ends: 2 MiB, then
// nothing until the client goes away, like a hostile or broken endpoint
// behind a workspace's base URL.
func endlessAnswer(t *testing.T, status int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		chunk := []byte(strings.Repeat("x", 64<<10))
		for range 32 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A provider's answer is read up to channel.MaxProviderResponse: a refusal
// with an endless body is recorded as the refusal it is, at once, instead of
// holding the send (and its memory) until the client's timeout.
func TestProviderAnswersAreReadWithALimit(t *testing.T) {
	t.Parallel()
	srv := endlessAnswer(t, http.StatusBadRequest)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := channel.NewSendGrid([]string{"127.0.0.1"}).Send(ctx, "SG.k", srv.URL, channel.Email{
		FromEmail: "news@shop.example", To: "ana@example.com", Subject: "Hi", Text: "Hi"})
	var se *channel.SendError
	if !errors.As(err, &se) || !se.Permanent || se.Status != http.StatusBadRequest {
		t.Fatalf("sendgrid send: %v, want the 400 refusal", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("sendgrid send took %v: the answer was read past the limit", d)
	}
	if len(se.Reason) > 300 {
		t.Fatalf("reason of %d bytes", len(se.Reason))
	}
}

// Settings saved before the operator narrowed PARCOURS_PROVIDER_URL_ALLOW
// keep their base URL, but the key is no longer sent there: the send fails
// with the reason, and the host never sees the key.
func TestStoredKeyIsNotSentToAHostNoLongerAllowed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "welcome", "Welcome", "<p>Hi</p>", "Hi")
	ana := e.Profile(t, "ana@example.com", nil)
	narrowed := *e.Ledger
	narrowed.Settings = channel.NewStore(e.Pool, e.Ledger.Settings.Box()).AllowProviderHosts("api.sendgrid.com")
	d, err := narrowed.Send(ctx, channel.SendRequest{BusinessKey: "k1", WorkspaceID: e.WorkspaceID, ProfileID: ana, TemplateSlug: "welcome", Channel: "email", Class: "transactional"})
	if d.Status != "failed" || !strings.Contains(d.Reason, "PARCOURS_PROVIDER_URL_ALLOW") {
		t.Fatalf("send: %+v %v, want failed naming the setting", d, err)
	}
	if n := e.SendGrid.Calls(); n != 0 {
		t.Fatalf("the host got %d calls", n)
	}
	// The same store still sends where the operator allows it.
	if d, err := e.Ledger.Send(ctx, channel.SendRequest{BusinessKey: "k2", WorkspaceID: e.WorkspaceID, ProfileID: ana, TemplateSlug: "welcome", Channel: "email", Class: "transactional"}); err != nil || d.Status != "sent" {
		t.Fatalf("allowed send: %+v %v", d, err)
	}
}

func TestCheckWebhookURL(t *testing.T) {
	t.Parallel()
	for raw, ok := range map[string]bool{
		"https://crm.example.com/hooks":   true,
		"http://crm.example.com/hooks":    false, // personal data in clear across the internet
		"http://203.0.113.7/hooks":        false,
		"http://127.0.0.1:8080/hooks":     true, // a receiver on this machine (the dial guard still asks PARCOURS_OUTBOUND_ALLOW)
		"http://localhost:8080/hooks":     true,
		"http://[::1]:8080/hooks":         true,
		"http://10.1.2.3/hooks":           true, // a private address, written as one
		"https://user:pw@crm.example.com": false,
		"ftp://crm.example.com":           false,
		"crm.example.com/hooks":           false,
	} {
		if err := channel.CheckWebhookURL(raw); (err == nil) != ok {
			t.Errorf("CheckWebhookURL(%q) = %v, want ok=%v", raw, err, ok)
		}
	}
}

// A webhook saved as plain http to a public host (before that was refused)
// is not posted: personal data would cross the internet in clear.
func TestWebhookRefusesPlainHTTPToPublicHosts(t *testing.T) {
	t.Parallel()
	_, err := channel.NewWebhook(nil).Post(context.Background(), "http://crm.example.com/hooks", "secret-secret-secret", "d-1", []byte(`{}`))
	var se *channel.SendError
	if !errors.As(err, &se) || !se.Permanent || !se.NotSent || !strings.Contains(se.Reason, "https") {
		t.Fatalf("post: %v, want a permanent refusal asking for https", err)
	}
}

// PutWebhook refuses plain http to a public host.
func TestWebhookChannelNeedsHTTPS(t *testing.T) {
	t.Parallel()
	e := channeltest.NewEnv(t)
	_, err := e.Ledger.Settings.PutWebhook(context.Background(), e.WorkspaceID, "http://crm.example.com/hooks", "secret-secret-secret")
	var fe *channel.FieldError
	if !errors.As(err, &fe) || fe.Field != "url" || !strings.Contains(fe.Reason, "https") {
		t.Fatalf("put: %v", err)
	}
}

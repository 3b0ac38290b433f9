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

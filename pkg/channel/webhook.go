package channel

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries a webhook's signature: t=<unix seconds>,v1=<hex
// HMAC-SHA256 of "<t>.<body>"> under the workspace's signing secret. The
// receiver recomputes it and rejects old timestamps (replays).
const SignatureHeader = "X-Parcours-Signature"

// Sign returns the SignatureHeader value for body at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmacSHA256([]byte(secret), append([]byte(ts+"."), body...))
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac)
}

// VerifySignature checks a SignatureHeader value against body, accepting
// timestamps within tolerance of now. Receivers written in Go can use it.
func VerifySignature(secret, header string, body []byte, now time.Time, tolerance time.Duration) bool {
	var ts, v1 string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			v1 = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return false
	}
	got, err := hex.DecodeString(v1)
	if err != nil {
		return false
	}
	return hmac.Equal(got, hmacSHA256([]byte(secret), append([]byte(ts+"."), body...)))
}

// Webhook posts signed JSON to a workspace's URL.
type Webhook struct {
	// Client must dial through SafeTransport (NewWebhook does so).
	Client *http.Client
	Now    func() time.Time
}

// NewWebhook returns a Webhook whose dials are guarded; allow lists hosts
// (e.g. "127.0.0.1") that may be private anyway.
func NewWebhook(allow []string) *Webhook {
	return &Webhook{
		// A receiver that has not answered in 15 s is treated as down; the
		// activity retries.
		Client: &http.Client{Transport: SafeTransport(allow), Timeout: 15 * time.Second,
			// Redirects are not followed: a redirect is an answer, not a delivery.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		Now: time.Now,
	}
}

// Post sends body to url, signed with secret. The id goes in
// X-Parcours-Delivery so that a receiver can dedupe.
// A URL CheckWebhookURL refuses (plain http to a public host, saved before
// that was refused) is a permanent error: nothing is sent.
func (w *Webhook) Post(ctx context.Context, url, secret, deliveryID string, body []byte) (Result, error) {
	if err := CheckWebhookURL(url); err != nil {
		return Result{}, &SendError{Permanent: true, NotSent: true, Reason: "webhook URL " + err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Result{}, &SendError{Permanent: true, Reason: "webhook URL: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Parcours-Webhook/1")
	req.Header.Set("X-Parcours-Delivery", deliveryID)
	if secret != "" {
		req.Header.Set(SignatureHeader, Sign(secret, w.Now(), body))
	}
	resp, err := w.Client.Do(req)
	if err != nil {
		return Result{}, classifyNetError("webhook", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return Result{}, nil
	case resp.StatusCode == http.StatusTooManyRequests:
		return Result{}, &SendError{Status: resp.StatusCode, Reason: "webhook answered 429", RetryAfter: retryAfter(resp.Header, time.Now())}
	case resp.StatusCode >= 500:
		return Result{}, &SendError{Status: resp.StatusCode, Reason: fmt.Sprintf("webhook answered %d", resp.StatusCode)}
	}
	return Result{}, &SendError{Permanent: true, Status: resp.StatusCode, Reason: fmt.Sprintf("webhook answered %d: %s", resp.StatusCode, strings.TrimSpace(string(snippet)))}
}

// retryAfter reads Retry-After (seconds) for a 429 from a webhook receiver.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

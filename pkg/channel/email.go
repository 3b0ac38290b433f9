package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sendgrid/rest"
	"github.com/sendgrid/sendgrid-go"
	"github.com/sendgrid/sendgrid-go/helpers/mail"
)

// DefaultSendGridURL is SendGrid's global API host.
const DefaultSendGridURL = "https://api.sendgrid.com"

// Result is what a provider answered to an accepted message.
type Result struct {
	ProviderMessageID string
}

// SendError is a provider's refusal, classified: Permanent errors are
// recorded on the delivery and not retried; the others are retried, after
// RetryAfter when the provider said how long to wait.
type SendError struct {
	Permanent bool
	Status    int // HTTP status; 0 for a network error
	Reason    string
	// Code is the provider's error code when it gave one (Twilio's 21211).
	Code       string
	RetryAfter time.Duration
	// NotSent is true when the provider certainly did not accept the
	// message (an answer was read, or the connection never opened). A
	// network error after the request left is ambiguous: NotSent is false.
	NotSent bool
}

func (e *SendError) Error() string { return e.Reason }

// Email is one message to send.
type Email struct {
	FromEmail, FromName string
	To                  string
	Subject, HTML, Text string
	// CustomArgs come back on SendGrid's event webhook: ids only, never PII.
	CustomArgs map[string]string
	// UnsubscribeURL, when set, is announced in List-Unsubscribe with
	// List-Unsubscribe-Post (RFC 8058 one-click).
	UnsubscribeURL string
}

// SendGrid sends email through SendGrid's v3 mail/send API with the official
// sendgrid-go client.
type SendGrid struct {
	// Client makes the HTTP calls. sendgrid.MakeRequestWithContext would use
	// the package-global rest.DefaultClient; a client per sender keeps the
	// guarded transport and timeout here.
	Client *http.Client
	Now    func() time.Time
}

// NewSendGrid returns a sender whose dials are guarded by SafeTransport
// (the base URL is workspace-configurable); allow lists exempt hosts.
// Answers are read up to MaxProviderResponse.
func NewSendGrid(allow []string) *SendGrid {
	// SendGrid answers mail/send in well under a second; 30 s covers a slow
	// region without holding an activity slot for long.
	return &SendGrid{Client: &http.Client{Transport: limitBodies(SafeTransport(allow), MaxProviderResponse), Timeout: 30 * time.Second,
		// An API answer is final: a redirect is not followed with the key.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, Now: time.Now}
}

// Send posts m with apiKey to baseURL ("" means SendGrid's global host).
func (s *SendGrid) Send(ctx context.Context, apiKey, baseURL string, m Email) (Result, error) {
	if baseURL == "" {
		baseURL = DefaultSendGridURL
	}
	msg := mail.NewV3Mail()
	msg.SetFrom(mail.NewEmail(m.FromName, m.FromEmail))
	msg.Subject = m.Subject
	p := mail.NewPersonalization()
	p.AddTos(mail.NewEmail("", m.To))
	for k, v := range m.CustomArgs {
		p.SetCustomArg(k, v)
	}
	msg.AddPersonalizations(p)
	// SendGrid wants text/plain before text/html.
	if m.Text != "" {
		msg.AddContent(mail.NewContent("text/plain", m.Text))
	}
	if m.HTML != "" {
		msg.AddContent(mail.NewContent("text/html", m.HTML))
	}
	if m.UnsubscribeURL != "" {
		msg.SetHeader("List-Unsubscribe", "<"+m.UnsubscribeURL+">")
		msg.SetHeader("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
	}
	req := sendgrid.GetRequest(apiKey, "/v3/mail/send", strings.TrimRight(baseURL, "/"))
	req.Method = rest.Post
	req.Body = mail.GetRequestBody(msg)
	resp, err := (&rest.Client{HTTPClient: s.Client}).SendWithContext(ctx, req)
	if err != nil {
		return Result{}, classifyNetError("sendgrid", err)
	}
	return classifySendGrid(resp, s.now())
}

func (s *SendGrid) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// classifySendGrid maps an answer to a Result or a SendError: 2xx accepted;
// 429 retryable at X-RateLimit-Reset; other 4xx permanent; 5xx retryable.
func classifySendGrid(resp *rest.Response, now time.Time) (Result, error) {
	h := http.Header(resp.Headers)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return Result{ProviderMessageID: h.Get("X-Message-Id")}, nil
	case resp.StatusCode == http.StatusTooManyRequests:
		wait := time.Duration(0)
		if reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			wait = time.Unix(reset, 0).Sub(now)
		}
		// Never hammer: at least a second, and a reset an hour away is a
		// misconfigured clock, not a plan.
		wait = min(max(wait, time.Second), time.Hour)
		return Result{}, &SendError{Status: 429, Reason: "sendgrid rate limit (429)", RetryAfter: wait, NotSent: true}
	case resp.StatusCode >= 500:
		return Result{}, &SendError{Status: resp.StatusCode, Reason: fmt.Sprintf("sendgrid answered %d", resp.StatusCode), NotSent: true}
	}
	return Result{}, &SendError{Permanent: true, Status: resp.StatusCode, NotSent: true,
		Reason: fmt.Sprintf("sendgrid refused the message (%d): %s", resp.StatusCode, sendGridErrors(resp.Body))}
}

// sendGridErrors reads {"errors":[{"message","field"}]}.
func sendGridErrors(body string) string {
	var v struct {
		Errors []struct {
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"errors"`
	}
	if json.Unmarshal([]byte(body), &v) != nil || len(v.Errors) == 0 {
		if len(body) > 200 {
			body = body[:200]
		}
		return strings.TrimSpace(body)
	}
	var parts []string
	for _, e := range v.Errors {
		if e.Field != "" {
			parts = append(parts, e.Field+": "+e.Message)
		} else {
			parts = append(parts, e.Message)
		}
	}
	return strings.Join(parts, "; ")
}

// classifyNetError: a refused dial is permanent (the address is forbidden);
// a connection that never opened is retryable and certainly not sent; any
// other network error is retryable but ambiguous.
func classifyNetError(what string, err error) error {
	if errors.Is(err, ErrForbiddenAddress) {
		return &SendError{Permanent: true, NotSent: true, Reason: what + ": " + err.Error()}
	}
	var op *net.OpError
	notSent := errors.As(err, &op) && op.Op == "dial"
	var dns *net.DNSError
	if errors.As(err, &dns) {
		notSent = true
	}
	return &SendError{NotSent: notSent, Reason: what + ": " + err.Error()}
}

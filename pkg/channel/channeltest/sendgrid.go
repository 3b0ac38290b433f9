// Package channeltest provides a fake SendGrid for tests: an httptest server
// speaking the v3 mail/send wire format.
package channeltest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/devmail"
)

// Mail is one accepted v3 mail/send request, as the fake parsed it (the
// wire types are devmail's, shared with the dev server's mailbox).
type Mail = devmail.Mail

// Address is a v3 email object.
type Address = devmail.Address

// Content is a v3 content part.
type Content = devmail.Content

// Message is one email as its recipient gets it (a personalization applied).
type Message = devmail.Email

// Answer is what the fake says to the next requests instead of 202.
type Answer struct {
	Status int
	// Reset is sent as X-RateLimit-Reset with a 429.
	Reset time.Time
	Body  string
}

// SendGrid is the fake.
type SendGrid struct {
	*httptest.Server
	APIKey string

	mu       sync.Mutex
	accepted []Mail
	answers  []Answer
	calls    int
	n        int
	latency  time.Duration
}

// NewSendGrid starts a fake accepting apiKey; it is closed at cleanup.
func NewSendGrid(t testing.TB, apiKey string) *SendGrid {
	f := StartSendGrid(apiKey)
	t.Cleanup(f.Close)
	return f
}

// StartSendGrid starts a fake accepting apiKey outside a test (the
// benchmarks); Close it when done.
func StartSendGrid(apiKey string) *SendGrid {
	f := &SendGrid{APIKey: apiKey}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

// SetLatency makes every later request take at least d before its answer,
// like a provider across the internet.
func (f *SendGrid) SetLatency(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency = d
}

// Messages returns every email accepted so far, one per personalization.
func (f *SendGrid) Messages() []Message {
	var out []Message
	for _, m := range f.Accepted() {
		out = append(out, m.Messages()...)
	}
	return out
}

// Then queues answers for the next requests (after them, 202 again).
func (f *SendGrid) Then(a ...Answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers = append(f.answers, a...)
}

// Accepted returns the mails accepted so far.
func (f *SendGrid) Accepted() []Mail {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Mail(nil), f.accepted...)
}

// Calls counts every mail/send request, accepted or not.
func (f *SendGrid) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func sgError(w http.ResponseWriter, status int, msg, field string) {
	devmail.WriteError(w, status, msg, field)
}

func (f *SendGrid) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v3/mail/send" {
		sgError(w, http.StatusNotFound, "not found", "")
		return
	}
	if e := devmail.Authorized(r, f.APIKey); e != nil {
		e.Write(w)
		return
	}
	f.mu.Lock()
	f.calls++
	var next *Answer
	if len(f.answers) > 0 {
		next = &f.answers[0]
		f.answers = f.answers[1:]
	}
	latency := f.latency
	f.mu.Unlock()
	if latency > 0 {
		time.Sleep(latency)
	}
	if next != nil {
		switch next.Status {
		case http.StatusTooManyRequests:
			w.Header().Set("X-RateLimit-Limit", "600")
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(next.Reset.Unix(), 10))
			sgError(w, 429, "too many requests", "")
		case http.StatusBadRequest:
			body := next.Body
			if body == "" {
				body = `{"errors":[{"message":"Does not contain a valid address.","field":"personalizations.0.to.0.email","help":"http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"}]}`
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			io.WriteString(w, body)
		default:
			sgError(w, next.Status, "internal error", "")
		}
		return
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		sgError(w, 400, "unreadable body", "")
		return
	}
	var m Mail
	if err := json.Unmarshal(raw, &m); err != nil {
		sgError(w, 400, "Bad Request", "")
		return
	}
	if msg, field := check(m); msg != "" {
		sgError(w, 400, msg, field)
		return
	}
	f.mu.Lock()
	f.n++
	m.MessageID = fmt.Sprintf("sg-msg-%d", f.n)
	f.accepted = append(f.accepted, m)
	f.mu.Unlock()
	w.Header().Set("X-Message-Id", m.MessageID)
	w.WriteHeader(http.StatusAccepted)
}

// check applies SendGrid's documented limits of a v3 mail/send request
// (https://www.twilio.com/docs/sendgrid/api-reference/mail-send/errors):
// the message and field it answers 400 with, or "".
func check(m Mail) (string, string) {
	switch {
	case len(m.Personalizations) == 0:
		return "The personalizations field is required and must have at least one personalization.", "personalizations"
	case len(m.Personalizations) > 1000:
		return fmt.Sprintf("The personalization block is limited to 1000 personalizations per API request. You have provided %d personalizations. Please consider splitting this into multiple requests and resending your request.", len(m.Personalizations)), "personalizations"
	case m.From.Email == "":
		return "The from object must be provided for every email send.", "from"
	}
	seen := map[string]bool{}
	recipients := 0
	contentOK := false
	for _, c := range m.Content {
		if c.Value != "" {
			contentOK = true
		}
	}
	if !contentOK {
		return "The content value must be a string at least one character in length.", "content.0.value"
	}
	for i, p := range m.Personalizations {
		if len(p.To) == 0 {
			return "The to array is required for all personalization objects, and must have at least one email object with a valid email address.", fmt.Sprintf("personalizations.%d.to", i)
		}
		if p.Subject == "" && m.Subject == "" {
			return "The subject is required. You can get around this requirement if you use a template with a subject defined or if every single personalization has a subject defined.", "subject"
		}
		size := 0
		for k, v := range p.Substitutions {
			size += len(k) + len(v)
		}
		if size > 50_000 {
			return "Substitutions are limited to 50,000 bytes per personalization block.", fmt.Sprintf("personalizations.%d.substitutions", i)
		}
		for _, list := range [][]Address{p.To, p.CC, p.BCC} {
			for j, a := range list {
				recipients++
				e := strings.ToLower(a.Email)
				if !strings.Contains(e, "@") {
					return "Does not contain a valid address.", fmt.Sprintf("personalizations.%d.to.%d.email", i, j)
				}
				if seen[e] {
					return "Each unique email address in the personalizations array should only be included once. You have included " + a.Email + " more than once.", fmt.Sprintf("personalizations.%d.to.%d.email", i, j)
				}
				seen[e] = true
			}
		}
	}
	if recipients > 1000 {
		return "There is a limit of 1000 total recipients (to + cc + bcc) per request.", "personalizations"
	}
	return "", ""
}

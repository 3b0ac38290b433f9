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
	"sync"
	"testing"
	"time"
)

// Mail is one accepted v3 mail/send request, as the fake parsed it.
type Mail struct {
	Personalizations []struct {
		To         []Address         `json:"to"`
		CustomArgs map[string]string `json:"custom_args"`
	} `json:"personalizations"`
	From    Address           `json:"from"`
	Subject string            `json:"subject"`
	Content []Content         `json:"content"`
	Headers map[string]string `json:"headers"`
	// MessageID is the X-Message-Id the fake answered.
	MessageID string `json:"-"`
}

// Address is a v3 email object.
type Address struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

// Content is a v3 content part.
type Content struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Body returns the content of type typ ("text/html", "text/plain").
func (m Mail) Body(typ string) string {
	for _, c := range m.Content {
		if c.Type == typ {
			return c.Value
		}
	}
	return ""
}

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
}

// NewSendGrid starts a fake accepting apiKey; it is closed at cleanup.
func NewSendGrid(t testing.TB, apiKey string) *SendGrid {
	f := &SendGrid{APIKey: apiKey}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
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
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"message":%q,"field":%q,"help":null}]}`, msg, field)
}

func (f *SendGrid) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v3/mail/send" {
		sgError(w, http.StatusNotFound, "not found", "")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.APIKey {
		sgError(w, http.StatusUnauthorized, "The provided authorization grant is invalid, expired, or revoked", "")
		return
	}
	f.mu.Lock()
	f.calls++
	var next *Answer
	if len(f.answers) > 0 {
		next = &f.answers[0]
		f.answers = f.answers[1:]
	}
	f.mu.Unlock()
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
	if len(m.Personalizations) == 0 || len(m.Personalizations[0].To) == 0 {
		sgError(w, 400, "The personalizations field is required and must have at least one personalization.", "personalizations")
		return
	}
	if m.From.Email == "" {
		sgError(w, 400, "The from object must be provided for every email send.", "from")
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

// Package devmail is the dev server's built-in fake SendGrid: an HTTP
// handler that speaks SendGrid's v3 mail/send wire format (the JSON body,
// the Bearer key, 202 with X-Message-Id, SendGrid's error bodies) and keeps
// the last messages in memory for the console's Mailbox page. `parcours dev`
// mounts it on the API listener and points a workspace's email channel at it
// when none is configured, so journeys "send" without a SendGrid account.
//
// The wire types and their checks are shared with the tests' fake
// (pkg/channel/channeltest), so both accept and refuse what SendGrid does.
package devmail

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// Mail is one v3 mail/send request body, the parts Parcours sends.
type Mail struct {
	Personalizations []Personalization `json:"personalizations"`
	From             Address           `json:"from"`
	Subject          string            `json:"subject"`
	Content          []Content         `json:"content"`
	Headers          map[string]string `json:"headers"`
	// MessageID is the X-Message-Id the fake answered (not on the wire).
	MessageID string `json:"-"`
}

// Personalization is one v3 personalization: recipients, and what changes
// for them — subject, substitutions (keys replaced in subject and content),
// custom args, headers.
type Personalization struct {
	To            []Address         `json:"to"`
	CC            []Address         `json:"cc,omitempty"`
	BCC           []Address         `json:"bcc,omitempty"`
	Subject       string            `json:"subject,omitempty"`
	Substitutions map[string]string `json:"substitutions,omitempty"`
	CustomArgs    map[string]string `json:"custom_args,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"`
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

// Email is one email as its recipient gets it: the message with one
// personalization applied.
type Email struct {
	To                  Address
	From                Address
	Subject, HTML, Text string
	// CustomArgs and Headers are the personalization's over the message's.
	CustomArgs, Headers map[string]string
}

// Messages returns the emails of a request, one per recipient of each
// personalization (to only: cc and bcc get the same copy), with the
// personalization's subject, substitutions, custom args and headers applied.
func (m Mail) Messages() []Email {
	var out []Email
	for _, p := range m.Personalizations {
		keys := make([]string, 0, len(p.Substitutions))
		for k := range p.Substitutions {
			keys = append(keys, k)
		}
		// Longest keys first, so that "-name-" never eats "-name-long-".
		slices.SortFunc(keys, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
		pairs := make([]string, 0, 2*len(keys))
		for _, k := range keys {
			pairs = append(pairs, k, p.Substitutions[k])
		}
		sub := strings.NewReplacer(pairs...)
		subject := m.Subject
		if p.Subject != "" {
			subject = p.Subject
		}
		headers := maps.Clone(m.Headers)
		if headers == nil {
			headers = map[string]string{}
		}
		maps.Copy(headers, p.Headers)
		for _, to := range p.To {
			out = append(out, Email{
				To: to, From: m.From, Subject: sub.Replace(subject),
				HTML: sub.Replace(m.Body("text/html")), Text: sub.Replace(m.Body("text/plain")),
				CustomArgs: maps.Clone(p.CustomArgs), Headers: headers,
			})
		}
	}
	return out
}

// WireError is a refusal in SendGrid's words: status, message and field.
type WireError struct {
	Status         int
	Message, Field string
}

func (e *WireError) Error() string { return fmt.Sprintf("%d %s (%s)", e.Status, e.Message, e.Field) }

// Write answers the error as SendGrid does: {"errors":[{"message","field","help"}]}.
func (e *WireError) Write(w http.ResponseWriter) {
	WriteError(w, e.Status, e.Message, e.Field)
}

// WriteError writes a SendGrid error body.
func WriteError(w http.ResponseWriter, status int, msg, field string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]any{"errors": []map[string]any{{"message": msg, "field": field, "help": nil}}})
	w.Write(body)
}

// ParseMail decodes and checks a mail/send body as SendGrid does for the
// fields Parcours uses: at least one personalization with a recipient, and
// a from address.
func ParseMail(raw []byte) (Mail, *WireError) {
	var m Mail
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, &WireError{Status: http.StatusBadRequest, Message: "Bad Request"}
	}
	if len(m.Personalizations) == 0 || len(m.Personalizations[0].To) == 0 {
		return m, &WireError{Status: http.StatusBadRequest, Message: "The personalizations field is required and must have at least one personalization.", Field: "personalizations"}
	}
	if m.From.Email == "" {
		return m, &WireError{Status: http.StatusBadRequest, Message: "The from object must be provided for every email send.", Field: "from"}
	}
	return m, nil
}

// Authorized checks a request's Bearer key as SendGrid does.
func Authorized(r *http.Request, apiKey string) *WireError {
	if r.Header.Get("Authorization") != "Bearer "+apiKey {
		return &WireError{Status: http.StatusUnauthorized, Message: "The provided authorization grant is invalid, expired, or revoked"}
	}
	return nil
}

package channel

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DefaultTwilioURL is Twilio's REST API host (US1). Regional hosts
// (api.dublin.ie1.twilio.com, ...) go in the channel's base URL.
const DefaultTwilioURL = "https://api.twilio.com"

// TwilioSignatureHeader carries the signature of Twilio's webhooks (status
// callbacks).
const TwilioSignatureHeader = "X-Twilio-Signature"

// Twilio error codes Parcours acts on.
const (
	// TwilioErrUnsubscribed: the recipient replied STOP; Twilio refuses
	// every message to them from this sender until they reply START.
	TwilioErrUnsubscribed = "21610"
)

// SMS is one text message to send.
type SMS struct {
	// To is the recipient in E.164 (+33612345678).
	To string
	// From (E.164) or MessagingServiceSID (MG...) names the sender; with
	// both, Twilio picks From within the service.
	From, MessagingServiceSID string
	Body                      string
	// StatusCallback, when set, is where Twilio posts status changes.
	StatusCallback string
}

// Twilio sends SMS through Twilio's REST API (the Messages resource),
// with plain net/http: one form-encoded POST per message.
type Twilio struct {
	// Client must dial through SafeTransport (NewTwilio does so): the base
	// URL is workspace-configurable.
	Client *http.Client
	Now    func() time.Time
}

// NewTwilio returns a sender whose dials are guarded by SafeTransport;
// allow lists exempt hosts (e.g. "127.0.0.1" for a fake Twilio in tests).
func NewTwilio(allow []string) *Twilio {
	return &Twilio{
		// Twilio answers a Messages POST in well under a second; 30 s
		// covers a slow region without holding an activity slot for long.
		Client: &http.Client{Transport: limitBodies(SafeTransport(allow), MaxProviderResponse), Timeout: 30 * time.Second,
			// An API answer is final: a redirect is not followed with the credentials.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		Now: time.Now,
	}
}

// twilioMessage is the part of Twilio's Message resource Parcours reads.
type twilioMessage struct {
	SID    string `json:"sid"`
	Status string `json:"status"`
}

// twilioError is Twilio's error body.
type twilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// Send posts m to {baseURL}/2010-04-01/Accounts/{accountSID}/Messages.json
// with HTTP basic auth accountSID:authToken ("" baseURL means
// DefaultTwilioURL). The Result's ProviderMessageID is the message SID. A
// refusal is a *SendError: 429 and 5xx retryable (after Retry-After when
// Twilio gives one), any other status permanent, with Twilio's code in Code.
func (t *Twilio) Send(ctx context.Context, accountSID, authToken, baseURL string, m SMS) (Result, error) {
	if baseURL == "" {
		baseURL = DefaultTwilioURL
	}
	form := url.Values{"To": {m.To}, "Body": {m.Body}}
	if m.From != "" {
		form.Set("From", m.From)
	}
	if m.MessagingServiceSID != "" {
		form.Set("MessagingServiceSid", m.MessagingServiceSID)
	}
	if m.StatusCallback != "" {
		form.Set("StatusCallback", m.StatusCallback)
	}
	endpoint := strings.TrimRight(baseURL, "/") + "/2010-04-01/Accounts/" + url.PathEscape(accountSID) + "/Messages.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Result{}, permanent("twilio base URL: %v", err)
	}
	req.SetBasicAuth(accountSID, authToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "Parcours/1")
	resp, err := t.Client.Do(req)
	if err != nil {
		return Result{}, classifyNetError("twilio", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return classifyTwilio(resp.StatusCode, resp.Header, body, m.To, t.now())
}

func (t *Twilio) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// classifyTwilio maps Twilio's answer to a Result or a *SendError. Every
// branch read an answer, so the message is certainly not sent unless it
// says 2xx. to is scrubbed from Twilio's messages (they quote the number).
func classifyTwilio(status int, h http.Header, body []byte, to string, now time.Time) (Result, error) {
	if status >= 200 && status < 300 {
		var m twilioMessage
		if err := json.Unmarshal(body, &m); err != nil || m.SID == "" {
			// Accepted, but without a SID status callbacks cannot be
			// matched; the message went, so it is recorded as sent.
			return Result{}, nil
		}
		return Result{ProviderMessageID: m.SID}, nil
	}
	var te twilioError
	_ = json.Unmarshal(body, &te)
	reason := strings.TrimSpace(te.Message)
	if reason == "" {
		reason = strings.TrimSpace(string(body))
		if len(reason) > 200 {
			reason = reason[:200]
		}
	}
	if to != "" {
		reason = strings.ReplaceAll(reason, to, "<to>")
		reason = strings.ReplaceAll(reason, strings.TrimPrefix(to, "+"), "<to>")
	}
	code := ""
	if te.Code != 0 {
		code = strconv.Itoa(te.Code)
	}
	se := &SendError{Status: status, Code: code, NotSent: true}
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		se.RetryAfter = retryAfterHeader(h, now)
		se.Reason = fmt.Sprintf("twilio answered %d", status)
	default:
		se.Permanent = true
		se.Reason = fmt.Sprintf("twilio refused the message (%d)", status)
	}
	if code != "" {
		se.Reason += ", error " + code
	}
	if reason != "" {
		se.Reason += ": " + reason
	}
	if te.MoreInfo != "" {
		se.Reason += " (" + te.MoreInfo + ")"
	}
	return Result{}, se
}

// retryAfterHeader reads Retry-After, in seconds or as an HTTP date,
// bounded to [1 s, 1 h] (an hour away is a misconfigured clock, not a
// plan); 0 when absent, for the activity's own backoff.
func retryAfterHeader(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil {
		d = time.Duration(s) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	} else {
		return 0
	}
	return min(max(d, time.Second), time.Hour)
}

// TwilioSignature computes Twilio's webhook signature: base64 of the
// HMAC-SHA1, keyed by the auth token, of the full URL Twilio posted to
// followed by every POST parameter sorted by name, name then value (a
// repeated name once per value, values sorted).
func TwilioSignature(authToken, fullURL string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		vs := append([]string(nil), params[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// VerifyTwilioSignature checks a X-Twilio-Signature value. fullURL is the
// URL as Twilio knows it (the public URL, not the one a proxy forwarded
// to); like Twilio's own helpers it is tried with and without the
// scheme's default port, which Twilio may or may not have signed.
func VerifyTwilioSignature(authToken, fullURL string, params url.Values, signature string) bool {
	if authToken == "" || signature == "" {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return false
	}
	for _, u := range urlPortVariants(fullURL) {
		want, _ := base64.StdEncoding.DecodeString(TwilioSignature(authToken, u, params))
		if hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

// urlPortVariants returns raw, and raw with the scheme's default port
// added or removed.
func urlPortVariants(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return []string{raw}
	}
	def := map[string]string{"https": "443", "http": "80"}[u.Scheme]
	if def == "" {
		return []string{raw}
	}
	v := *u
	host := u.Hostname()
	switch u.Port() {
	case "":
		v.Host = net.JoinHostPort(host, def)
	case def:
		if strings.Contains(host, ":") {
			host = "[" + host + "]" // IPv6
		}
		v.Host = host
	default:
		return []string{raw}
	}
	return []string{raw, v.String()}
}

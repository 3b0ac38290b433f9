package channeltest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/channel"
)

// Twilio credentials the fake accepts by default.
const (
	TwilioAccountSID = "AC0123456789abcdef0123456789abcdef"
	TwilioAuthToken  = "fedcba9876543210fedcba9876543210"
	TwilioFrom       = "+14155550100"
)

// SMSMessage is one message the fake accepted, as it parsed the form.
type SMSMessage struct {
	SID                 string
	To, From            string
	MessagingServiceSID string
	Body                string
	StatusCallback      string
}

// TwilioAnswer is what the fake says to the next request instead of 201.
type TwilioAnswer struct {
	Status int
	// Code is Twilio's error code in the body (20429 for a 429 when 0).
	Code    int
	Message string
	// RetryAfter, when set, is sent as Retry-After (seconds).
	RetryAfter time.Duration
}

// Twilio is a fake of Twilio's Messages API: an httptest server speaking
// its wire format (form-encoded POST with basic auth, JSON answers with
// Twilio's error shape). It can also post signed status callbacks.
type Twilio struct {
	*httptest.Server
	AccountSID, AuthToken string

	mu       sync.Mutex
	accepted []SMSMessage
	answers  []TwilioAnswer
	calls    int
}

// NewTwilio starts a fake accepting the default credentials; it is closed
// at cleanup.
func NewTwilio(t testing.TB) *Twilio {
	f := &Twilio{AccountSID: TwilioAccountSID, AuthToken: TwilioAuthToken}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// Then queues answers for the next requests (after them, 201 again).
func (f *Twilio) Then(a ...TwilioAnswer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers = append(f.answers, a...)
}

// Accepted returns the messages accepted so far.
func (f *Twilio) Accepted() []SMSMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]SMSMessage(nil), f.accepted...)
}

// Calls counts every Messages request that authenticated, accepted or not.
func (f *Twilio) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func twilioError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"code": code, "message": msg, "more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), "status": status,
	})
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

func (f *Twilio) serve(w http.ResponseWriter, r *http.Request) {
	path := "/2010-04-01/Accounts/" + f.AccountSID + "/Messages.json"
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/2010-04-01/Accounts/") {
		twilioError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user != f.AccountSID || pass != f.AuthToken || r.URL.Path != path {
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	f.mu.Lock()
	f.calls++
	var next *TwilioAnswer
	if len(f.answers) > 0 {
		next = &f.answers[0]
		f.answers = f.answers[1:]
	}
	f.mu.Unlock()
	if next != nil {
		code, msg := next.Code, next.Message
		if code == 0 {
			code = map[int]int{429: 20429, 500: 20500, 503: 20503}[next.Status]
		}
		if msg == "" {
			msg = map[int]string{429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}[next.Status]
		}
		if next.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(next.RetryAfter/time.Second)))
		}
		twilioError(w, next.Status, code, msg)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		twilioError(w, http.StatusBadRequest, 20001, "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		twilioError(w, http.StatusBadRequest, 20001, "Unreadable form")
		return
	}
	m := SMSMessage{To: r.PostForm.Get("To"), From: r.PostForm.Get("From"), MessagingServiceSID: r.PostForm.Get("MessagingServiceSid"),
		Body: r.PostForm.Get("Body"), StatusCallback: r.PostForm.Get("StatusCallback")}
	switch {
	case m.To == "":
		twilioError(w, http.StatusBadRequest, 21604, "A 'To' phone number is required.")
		return
	case !e164.MatchString(m.To):
		twilioError(w, http.StatusBadRequest, 21211, "The 'To' number "+m.To+" is not a valid phone number.")
		return
	case m.From == "" && m.MessagingServiceSID == "":
		twilioError(w, http.StatusBadRequest, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message")
		return
	case m.Body == "":
		twilioError(w, http.StatusBadRequest, 21602, "Message body is required.")
		return
	case len([]rune(m.Body)) > channel.MaxSMSChars:
		twilioError(w, http.StatusBadRequest, 21617, "The concatenated message body exceeds the 1600 character limit.")
		return
	}
	b := make([]byte, 16)
	rand.Read(b)
	m.SID = "SM" + hex.EncodeToString(b)
	f.mu.Lock()
	f.accepted = append(f.accepted, m)
	f.mu.Unlock()
	segments, _ := channel.SMSSegments(m.Body)
	now := time.Now().UTC().Format(time.RFC1123Z)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{
		"account_sid": f.AccountSID, "api_version": "2010-04-01", "body": m.Body, "date_created": now, "date_updated": now,
		"date_sent": nil, "direction": "outbound-api", "error_code": nil, "error_message": nil, "from": m.From,
		"messaging_service_sid": nilIfEmpty(m.MessagingServiceSID), "num_media": "0", "num_segments": strconv.Itoa(segments),
		"price": nil, "price_unit": "USD", "sid": m.SID, "status": "queued", "to": m.To,
		"uri": "/2010-04-01/Accounts/" + f.AccountSID + "/Messages/" + m.SID + ".json",
	})
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// StatusParams are the parameters of Twilio's status callback for m.
func (f *Twilio) StatusParams(m SMSMessage, status, errorCode string) url.Values {
	v := url.Values{
		"AccountSid": {f.AccountSID}, "ApiVersion": {"2010-04-01"}, "From": {m.From}, "To": {m.To},
		"MessageSid": {m.SID}, "MessageStatus": {status}, "SmsSid": {m.SID}, "SmsStatus": {status},
		// Twilio names the number again, and may say where it is.
		"ChannelToAddress": {m.To}, "ChannelPrefix": {"sms"}, "ToCountry": {"FR"}, "ToCity": {"Lyon"},
	}
	if m.MessagingServiceSID != "" {
		v.Set("MessagingServiceSid", m.MessagingServiceSID)
	}
	if errorCode != "" {
		v.Set("ErrorCode", errorCode)
	}
	return v
}

// PostStatus posts a status callback for m to its StatusCallback URL as
// Twilio does: form-encoded, signed with the auth token over that URL.
func (f *Twilio) PostStatus(m SMSMessage, status, errorCode string) (*http.Response, error) {
	params := f.StatusParams(m, status, errorCode)
	return PostSigned(m.StatusCallback, m.StatusCallback, f.AuthToken, params)
}

// PostSigned posts params to target with an X-Twilio-Signature computed
// with token over signedURL (token "" sends no signature).
func PostSigned(target, signedURL, token string, params url.Values) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(params.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	if token != "" {
		req.Header.Set(channel.TwilioSignatureHeader, channel.TwilioSignature(token, signedURL, params))
	}
	return http.DefaultClient.Do(req)
}

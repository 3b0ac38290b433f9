package soak

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Fault is what the fake SendGrid does with one mail/send request.
type Fault int

// Faults the fake can inject.
const (
	// Accept answers 202 with an X-Message-Id (after Delay, if set).
	Accept Fault = iota
	// RateLimit answers 429 with X-RateLimit-Reset = Reset.
	RateLimit
	// ServerError answers 500.
	ServerError
	// BadRequest answers 400 (an address SendGrid refuses): permanent.
	BadRequest
	// AcceptThenDrop takes the message (it counts as sent: SendGrid would
	// deliver it) and closes the connection without an answer.
	AcceptThenDrop
	// DropUnread closes the connection without an answer and without
	// taking the message.
	DropUnread
)

func (f Fault) String() string {
	return [...]string{"accept", "429", "500", "400", "accept+drop", "drop"}[f]
}

// Decision is the fake's plan for one request.
type Decision struct {
	Fault Fault
	// Delay holds the answer back. With Accept, the message is logged as
	// taken when the request arrives, so a client that gives up waiting has
	// still sent it, as with the real SendGrid.
	Delay time.Duration
	// Reset is the X-RateLimit-Reset of a 429.
	Reset time.Time
}

// Request is one mail/send call as the fake saw it, whatever it answered.
type Request struct {
	At         time.Time
	DeliveryID string // custom_args.parcours_delivery_id
	Workspace  string // custom_args.parcours_workspace_id
	To         string
	Subject    string
	Answer     Fault
	// Taken is true when the message counts as sent (Accept, AcceptThenDrop).
	Taken bool
}

// Planner decides the fate of each request; nil accepts everything.
type Planner func(r Request) Decision

// FakeSendGrid is a local stand-in for SendGrid's v3 mail/send endpoint,
// speaking its wire format (JSON body, Bearer key, 202 with X-Message-Id,
// errors as {"errors":[...]}). It logs every request, and the Planner
// injects delay, 429 with a reset time, 500, 400 and dropped connections.
type FakeSendGrid struct {
	URL    string
	APIKey string

	srv *http.Server
	ln  net.Listener

	mu      sync.Mutex
	plan    Planner
	log     []Request
	n       int
	arrived chan Request
}

// StartFakeSendGrid listens on a free loopback port.
func StartFakeSendGrid(apiKey string) (*FakeSendGrid, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fake sendgrid: %w", err)
	}
	f := &FakeSendGrid{URL: "http://" + ln.Addr().String(), APIKey: apiKey, ln: ln}
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = f.srv.Serve(ln) }()
	return f, nil
}

// Close stops the fake; held requests are cut.
func (f *FakeSendGrid) Close() { _ = f.srv.Close() }

// SetPlan replaces the planner (nil: accept everything at once).
func (f *FakeSendGrid) SetPlan(p Planner) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plan = p
}

// Arrivals returns a channel receiving every request as it arrives, before
// it is answered (buffered; requests are dropped when nobody reads).
func (f *FakeSendGrid) Arrivals() <-chan Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.arrived == nil {
		f.arrived = make(chan Request, 1024)
	}
	return f.arrived
}

// Log returns every request so far, in arrival order.
func (f *FakeSendGrid) Log() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.log...)
}

// Taken returns the messages that count as sent.
func (f *FakeSendGrid) Taken() []Request {
	var out []Request
	for _, r := range f.Log() {
		if r.Taken {
			out = append(out, r)
		}
	}
	return out
}

func sgError(w http.ResponseWriter, status int, msg, field string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"message":%q,"field":%q,"help":null}]}`, msg, field)
}

// mail is the part of a v3 mail/send body the fake reads.
type mail struct {
	Personalizations []struct {
		To []struct {
			Email string `json:"email"`
		} `json:"to"`
		CustomArgs map[string]string `json:"custom_args"`
	} `json:"personalizations"`
	From struct {
		Email string `json:"email"`
	} `json:"from"`
	Subject string `json:"subject"`
}

func (f *FakeSendGrid) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v3/mail/send" {
		sgError(w, http.StatusNotFound, "not found", "")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.APIKey {
		sgError(w, http.StatusUnauthorized, "The provided authorization grant is invalid, expired, or revoked", "")
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return // the client went away
	}
	var m mail
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Personalizations) == 0 || len(m.Personalizations[0].To) == 0 || m.From.Email == "" {
		sgError(w, http.StatusBadRequest, "The personalizations and from fields are required.", "personalizations")
		return
	}
	p := m.Personalizations[0]
	req := Request{At: time.Now(), DeliveryID: p.CustomArgs["parcours_delivery_id"], Workspace: p.CustomArgs["parcours_workspace_id"],
		To: p.To[0].Email, Subject: m.Subject}

	f.mu.Lock()
	d := Decision{Fault: Accept}
	if f.plan != nil {
		d = f.plan(req)
	}
	req.Answer = d.Fault
	req.Taken = d.Fault == Accept || d.Fault == AcceptThenDrop
	f.log = append(f.log, req)
	f.n++
	id := fmt.Sprintf("soak-msg-%d", f.n)
	if f.arrived != nil {
		select {
		case f.arrived <- req:
		default:
		}
	}
	f.mu.Unlock()

	if d.Delay > 0 {
		select {
		case <-time.After(d.Delay):
		case <-r.Context().Done():
			return // the client gave up; the message stays taken
		}
	}
	switch d.Fault {
	case Accept:
		w.Header().Set("X-Message-Id", id)
		w.WriteHeader(http.StatusAccepted)
	case RateLimit:
		w.Header().Set("X-RateLimit-Limit", "600")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(d.Reset.Unix(), 10))
		sgError(w, http.StatusTooManyRequests, "too many requests", "")
	case ServerError:
		sgError(w, http.StatusInternalServerError, "internal error", "")
	case BadRequest:
		sgError(w, http.StatusBadRequest, "Does not contain a valid address.", "personalizations.0.to.0.email")
	case AcceptThenDrop, DropUnread:
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
			}
		}
	}
}

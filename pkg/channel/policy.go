package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // quiet hours read IANA zones the same way on every host

	"github.com/jackc/pgx/v5"
)

// Policy outcomes: what a journey's send does when a frequency cap or quiet
// hours hold it back. Transactional messages are never held back.
const (
	// PolicyDefer waits until the send is allowed, then sends.
	PolicyDefer = "defer"
	// PolicyDrop records the delivery as skipped with the reason.
	PolicyDrop = "drop"
)

// Skip reasons a policy records on a dropped delivery.
const (
	ReasonFrequencyCap = "frequency_cap"
	ReasonQuietHours   = "quiet_hours"
)

// Policy is a workspace's delivery policy for marketing messages.
type Policy struct {
	FrequencyCaps []FrequencyCap `json:"frequency_caps"`
	QuietHours    *QuietHours    `json:"quiet_hours"`
	// DefaultTimezone is the IANA zone of profiles without a usable
	// `timezone` trait. Default UTC.
	DefaultTimezone string    `json:"default_timezone"`
	UpdatedAt       time.Time `json:"updated_at,omitzero"`
}

// FrequencyCap allows at most Max marketing messages on Channel to one
// profile within any window of length Per.
type FrequencyCap struct {
	Channel string `json:"channel"`
	// Purpose is marketing: transactional messages are exempt.
	Purpose string `json:"purpose"`
	Max     int    `json:"max"`
	// Per is the window: 30m, 24h, 7d, 4w.
	Per string `json:"per"`
}

// QuietHours forbids marketing sends on Channels between Start and End
// (HH:MM, the profile's local time; Start after End spans midnight).
type QuietHours struct {
	Start    string   `json:"start"`
	End      string   `json:"end"`
	Channels []string `json:"channels"`
}

// PolicyError lists every invalid field of a policy.
type PolicyError struct {
	Errors []FieldError
}

func (e *PolicyError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, f := range e.Errors {
		parts[i] = f.Error()
	}
	return "invalid delivery policy: " + strings.Join(parts, "; ")
}

// policyChannels are the channels a policy may name.
var policyChannels = []string{ChannelEmail, "sms", ChannelWebhook}

// ParseWindow reads a cap window: a whole number of minutes (m), hours (h),
// days (d) or weeks (w), from 1m to 366d.
func ParseWindow(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("%q is not a window such as 24h, 7d or 4w", s)
	if len(s) < 2 {
		return 0, bad
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n <= 0 {
		return 0, bad
	}
	unit := map[byte]time.Duration{'m': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[len(s)-1]]
	if unit == 0 || n > 366*24*60 {
		return 0, bad
	}
	d := time.Duration(n) * unit
	if d > 366*24*time.Hour {
		return 0, fmt.Errorf("%q is longer than a year", s)
	}
	return d, nil
}

func parseClock(s string) (int, bool) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}

// Validate checks p and normalises it (purpose defaults to marketing).
func (p *Policy) Validate() error {
	var errs []FieldError
	add := func(field, format string, a ...any) {
		errs = append(errs, FieldError{field, fmt.Sprintf(format, a...)})
	}
	if len(p.FrequencyCaps) > 20 {
		add("frequency_caps", "at most 20 caps")
	}
	for i := range p.FrequencyCaps {
		c := &p.FrequencyCaps[i]
		f := fmt.Sprintf("frequency_caps[%d]", i)
		if !slices.Contains(policyChannels, c.Channel) {
			add(f+".channel", "must be email, sms or webhook")
		}
		switch c.Purpose {
		case "":
			c.Purpose = Marketing
		case Marketing:
		case Transactional:
			add(f+".purpose", "transactional messages are exempt from caps; use marketing")
		default:
			add(f+".purpose", "must be marketing")
		}
		if c.Max < 1 || c.Max > 1000 {
			add(f+".max", "must be a whole number from 1 to 1000")
		}
		if _, err := ParseWindow(c.Per); err != nil {
			add(f+".per", "%v", err)
		}
	}
	if q := p.QuietHours; q != nil {
		start, ok1 := parseClock(q.Start)
		if !ok1 {
			add("quiet_hours.start", "%q is not a time of day such as 21:00", q.Start)
		}
		end, ok2 := parseClock(q.End)
		if !ok2 {
			add("quiet_hours.end", "%q is not a time of day such as 08:00", q.End)
		}
		if ok1 && ok2 && start == end {
			add("quiet_hours.end", "must differ from start")
		}
		if len(q.Channels) == 0 {
			add("quiet_hours.channels", "name at least one channel: email, sms or webhook")
		}
		for i, ch := range q.Channels {
			if !slices.Contains(policyChannels, ch) {
				add(fmt.Sprintf("quiet_hours.channels[%d]", i), "%q is not email, sms or webhook", ch)
			}
		}
	}
	if p.DefaultTimezone != "" {
		if _, err := loadZone(p.DefaultTimezone); err != nil {
			add("default_timezone", "%q is not an IANA time zone such as Europe/Paris", p.DefaultTimezone)
		}
	}
	if len(errs) > 0 {
		return &PolicyError{Errors: errs}
	}
	if p.FrequencyCaps == nil {
		p.FrequencyCaps = []FrequencyCap{}
	}
	return nil
}

// loadZone loads an IANA zone; "Local" and "" are refused (the server's
// zone means nothing to a customer).
func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, errors.New("no zone")
	}
	return time.LoadLocation(name)
}

// PutPolicy validates and saves the workspace's delivery policy.
func (s *Store) PutPolicy(ctx context.Context, workspaceID string, p Policy) (Policy, error) {
	if err := p.Validate(); err != nil {
		return p, err
	}
	p.UpdatedAt = time.Time{}
	raw, err := json.Marshal(p)
	if err != nil {
		return p, fmt.Errorf("encode delivery policy: %w", err)
	}
	err = s.pool.QueryRow(ctx, `
		INSERT INTO delivery_policies (workspace_id, policy) VALUES ($1, $2)
		ON CONFLICT (workspace_id) DO UPDATE SET policy = EXCLUDED.policy, updated_at = now()
		RETURNING updated_at`, workspaceID, raw).Scan(&p.UpdatedAt)
	if err != nil {
		return p, fmt.Errorf("save delivery policy: %w", err)
	}
	return p, nil
}

// Policy returns the workspace's delivery policy (empty when none is set).
func (s *Store) Policy(ctx context.Context, workspaceID string) (Policy, error) {
	return loadPolicy(ctx, s.pool, workspaceID)
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func loadPolicy(ctx context.Context, db queryRower, workspaceID string) (Policy, error) {
	var raw []byte
	var at time.Time
	err := db.QueryRow(ctx, `SELECT policy, updated_at FROM delivery_policies WHERE workspace_id = $1`, workspaceID).Scan(&raw, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return Policy{FrequencyCaps: []FrequencyCap{}}, nil
	}
	if err != nil {
		return Policy{}, fmt.Errorf("load delivery policy: %w", err)
	}
	var p Policy
	if err := json.Unmarshal(raw, &p); err != nil {
		return Policy{}, fmt.Errorf("decode delivery policy: %w", err)
	}
	if p.FrequencyCaps == nil {
		p.FrequencyCaps = []FrequencyCap{}
	}
	p.UpdatedAt = at
	return p, nil
}

// capWindow is a frequency cap as the check uses it.
type capWindow struct {
	max int
	per time.Duration
}

// rulesFor returns the caps and quiet hours that apply to a marketing
// message on channel.
func (p Policy) rulesFor(channel string) ([]capWindow, *QuietHours) {
	var caps []capWindow
	for _, c := range p.FrequencyCaps {
		if c.Channel != channel || (c.Purpose != "" && c.Purpose != Marketing) {
			continue
		}
		if per, err := ParseWindow(c.Per); err == nil && c.Max > 0 {
			caps = append(caps, capWindow{c.Max, per})
		}
	}
	var quiet *QuietHours
	if q := p.QuietHours; q != nil && slices.Contains(q.Channels, channel) {
		quiet = q
	}
	return caps, quiet
}

// zone is the profile's zone: its timezone trait, else the workspace
// default, else UTC.
func (p Policy) zone(trait string) *time.Location {
	if loc, err := loadZone(trait); err == nil {
		return loc
	}
	if loc, err := loadZone(p.DefaultTimezone); err == nil {
		return loc
	}
	return time.UTC
}

// quietUntil reports whether now falls in the quiet hours in zone loc, and
// when they end.
func quietUntil(now time.Time, loc *time.Location, q *QuietHours) (time.Time, bool) {
	if q == nil {
		return time.Time{}, false
	}
	start, ok1 := parseClock(q.Start)
	end, ok2 := parseClock(q.End)
	if !ok1 || !ok2 || start == end {
		return time.Time{}, false
	}
	local := now.In(loc)
	m := local.Hour()*60 + local.Minute()
	var quiet bool
	if start < end {
		quiet = m >= start && m < end
	} else {
		quiet = m >= start || m < end
	}
	if !quiet {
		return time.Time{}, false
	}
	at := time.Date(local.Year(), local.Month(), local.Day(), end/60, end%60, 0, 0, loc)
	if !at.After(local) {
		at = time.Date(local.Year(), local.Month(), local.Day()+1, end/60, end%60, 0, 0, loc)
	}
	return at, true
}

// capUntil reports whether sending at now would exceed a cap, given the
// times of the messages already counted (ascending), and from when it
// would not.
func capUntil(now time.Time, caps []capWindow, sent []time.Time) (time.Time, bool) {
	var until time.Time
	hit := false
	for _, c := range caps {
		var in []time.Time
		for _, t := range sent {
			if t.After(now.Add(-c.per)) {
				in = append(in, t)
			}
		}
		if len(in) < c.max {
			continue
		}
		hit = true
		// Allowed once all but max-1 of them have left the window.
		if at := in[len(in)-c.max].Add(c.per); at.After(until) {
			until = at
		}
	}
	return until, hit
}

// policyDecision is what the policy says about a send at a given time.
type policyDecision struct {
	// Reason is frequency_cap or quiet_hours; "" means send now.
	Reason string
	// Until is the earliest time the send is allowed.
	Until time.Time
}

// decide applies caps and quiet hours to a marketing send at now, given the
// times of the messages the caps count (ascending). A cap is reported
// before quiet hours; Until satisfies both.
func decide(now time.Time, loc *time.Location, caps []capWindow, quiet *QuietHours, sent []time.Time) policyDecision {
	var d policyDecision
	if _, hit := capUntil(now, caps, sent); hit {
		d.Reason = ReasonFrequencyCap
	} else if _, hit := quietUntil(now, loc, quiet); hit {
		d.Reason = ReasonQuietHours
	} else {
		return d
	}
	at := now
	// Each step only moves forward and at most two rules apply: a few
	// rounds reach a time both allow.
	for range 16 {
		moved := false
		if t, hit := capUntil(at, caps, sent); hit {
			at, moved = t, true
		}
		if t, hit := quietUntil(at, loc, quiet); hit {
			at, moved = t, true
		}
		if !moved {
			break
		}
	}
	d.Until = at
	return d
}

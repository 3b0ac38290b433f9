// Package segment evaluates segment rules: expr-lang conditions over a
// profile and its behaviour, compiled once at save time against the typed
// Env, with the dependencies (event names, windows, traits, other segments)
// read from the compiled AST so that a record only re-evaluates the segments
// it can change.
//
// Evaluation is pure: the evaluation time is an input, never time.Now, so a
// result is reproducible and usable from workflow code.
package segment

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/rules"
)

// NeverDays is what days_since answers for a time that never happened (a
// profile that never ordered has days_since(profile.last_order_at) >= any window).
const NeverDays = 1e6

// Profile is what a rule sees as `profile`.
type Profile struct {
	ID         string              `expr:"id"`
	State      string              `expr:"state"`
	Traits     map[string]any      `expr:"traits"`
	Identities map[string][]string `expr:"identities"`
	Consents   map[string]bool     `expr:"consents"`

	EventCount    int        `expr:"event_count"`
	PageViews     int        `expr:"page_views"`
	ScreenViews   int        `expr:"screen_views"`
	Sessions      int        `expr:"sessions"`
	OrderCount    int        `expr:"order_count"`
	TotalRevenue  float64    `expr:"total_revenue"`
	AvgOrderValue float64    `expr:"average_order_value"`
	LastOrderAt   *time.Time `expr:"last_order_at"`
	FirstSeenAt   *time.Time `expr:"first_seen_at"`
	LastSeenAt    *time.Time `expr:"last_seen_at"`
	Sources       []string   `expr:"sources"`
	Channels      []string   `expr:"channels"`
}

// Event is one behavioural record a rule's functions look at.
type Event struct {
	Name       string
	At         time.Time
	Properties map[string]any
	// raw holds the properties as stored when Properties was not decoded
	// yet: most rules only count events, so loading does not decode them.
	raw []byte
}

// props returns the event's properties, decoding them on first use.
func (e *Event) props() map[string]any {
	if e.Properties == nil && e.raw != nil {
		if err := json.Unmarshal(e.raw, &e.Properties); err != nil {
			e.Properties = map[string]any{} // stored as jsonb: cannot happen
		}
		e.raw = nil
	}
	return e.Properties
}

// Env is the typed environment of a segment rule. The functions are fields
// so that each evaluation binds them to one profile's data and one time.
type Env struct {
	Profile Profile `expr:"profile"`
	// count("Order Completed", "30d"): how many such events in the window.
	Count func(event, window string) int `expr:"count"`
	// sum("Order Completed", "total", "90d"): the sum of a numeric property in the window.
	Sum func(event, property, window string) float64 `expr:"sum"`
	// performed("Cart Updated", "2h"): at least one such event in the window.
	Performed func(event, window string) bool `expr:"performed"`
	// last("Page Viewed"): {properties, timestamp, days_ago} of the latest such event, or nil.
	Last func(event string) map[string]any `expr:"last"`
	// days_since(profile.last_order_at): days from a time to the evaluation time (NeverDays for none).
	DaysSince func(t any) float64 `expr:"days_since"`
	// in_segment("vip"): membership in another segment, by slug.
	InSegment func(slug string) bool `expr:"in_segment"`
	// consented("email"): the profile consented to the channel.
	Consented func(channel string) bool `expr:"consented"`
	// opened("welcome"): a human opened an email of that template (machine opens, e.g. Apple Mail privacy, do not count).
	Opened func(template string) bool `expr:"opened"`
	// clicked("welcome"): a link in an email of that template was clicked.
	Clicked func(template string) bool `expr:"clicked"`
}

// Email engagement events recorded from the SendGrid event webhook.
const (
	emailOpened  = "Email Opened"
	emailClicked = "Email Clicked"
)

// Data is what evaluation needs of one profile.
type Data struct {
	Profile Profile
	// Events holds the profile's events of the names the rules depend on,
	// within their longest window, in any order.
	Events []Event
	// Segments holds the slugs of the segments the profile is in.
	Segments map[string]bool
	// changedAt holds, per segment slug, when the profile last entered or
	// left it: an evaluation as of an earlier time must not override it.
	changedAt map[string]time.Time
}

// vocabulary is what a segment rule may use, for error messages.
const vocabulary = "profile (traits, state, identities, consents, computed traits such as order_count), count, sum, performed, last, days_since, in_segment, consented, opened, clicked"

// Deps is what a rule depends on, read from its AST.
type Deps struct {
	// Events are the event names the behavioural functions read.
	Events []string `json:"events"`
	// MaxWindow is the longest window they read; 0 means all time.
	MaxWindow time.Duration `json:"max_window"`
	// AllTime is true when a function reads all history (last, or the "all" window).
	AllTime bool `json:"all_time"`
	// Traits is true when the rule reads profile traits, identities or consents.
	Traits bool `json:"traits"`
	// Types are record types whose every record matters (page for page_views).
	Types []string `json:"types,omitempty"`
	// Computed is true when the rule reads computed traits that any record
	// changes (event_count, sessions, last_seen_at, sources, ...).
	Computed bool `json:"computed"`
	// Segments are the slugs in_segment reads.
	Segments []string `json:"segments"`
	// TimeWindows is true when the rule's answer can change with time alone
	// (windows, days_since): the scheduled recompute must visit it.
	TimeWindows bool `json:"time_windows"`
}

// Rule is a compiled segment rule.
type Rule struct {
	Source  string
	Deps    Deps
	program *vm.Program
}

// Compile checks a segment rule and reads its dependencies. Errors are
// *rules.Error with a line and column.
func Compile(src string) (*Rule, error) {
	prog, err := rules.Compile(src, Env{}, vocabulary)
	if err != nil {
		return nil, err
	}
	r := &Rule{Source: src, program: prog}
	v := &depVisitor{src: src, deps: &r.Deps}
	node := prog.Node()
	ast.Walk(&node, v)
	if v.err != nil {
		return nil, v.err
	}
	slices.Sort(r.Deps.Events)
	r.Deps.Events = slices.Compact(r.Deps.Events)
	slices.Sort(r.Deps.Types)
	r.Deps.Types = slices.Compact(r.Deps.Types)
	slices.Sort(r.Deps.Segments)
	r.Deps.Segments = slices.Compact(r.Deps.Segments)
	return r, nil
}

type depVisitor struct {
	src  string
	deps *Deps
	err  error
}

func (v *depVisitor) Visit(node *ast.Node) {
	if v.err != nil {
		return
	}
	switch n := (*node).(type) {
	case *ast.MemberNode:
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == "profile" {
			if p, ok := n.Property.(*ast.StringNode); ok {
				switch p.Value {
				case "traits", "identities", "consents", "id":
					v.deps.Traits = true
				case "order_count", "total_revenue", "average_order_value", "last_order_at":
					v.deps.Events = append(v.deps.Events, profile.OrderEvent) // only orders change them
				case "page_views":
					v.deps.Types = append(v.deps.Types, "page")
				case "screen_views":
					v.deps.Types = append(v.deps.Types, "screen")
				default: // event_count, sessions, seen times, sources, channels, state: any record
					v.deps.Computed = true
				}
			}
		}
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok {
			return
		}
		literal := func(i int, what string) (string, bool) {
			if i >= len(n.Arguments) {
				return "", false
			}
			s, ok := n.Arguments[i].(*ast.StringNode)
			if !ok {
				v.err = rules.ErrorAt(v.src, n.Arguments[i], fmt.Sprintf("%s: write the %s in quotes, e.g. \"Order Completed\"", id.Value, what))
				return "", false
			}
			return s.Value, true
		}
		window := func(i int) {
			w, ok := literal(i, "window")
			if !ok {
				return
			}
			d, err := ParseWindow(w)
			if err != nil {
				v.err = rules.ErrorAt(v.src, n.Arguments[i], err.Error())
				return
			}
			v.deps.TimeWindows = true
			if d == 0 {
				v.deps.AllTime = true
			} else if d > v.deps.MaxWindow {
				v.deps.MaxWindow = d
			}
		}
		switch id.Value {
		case "count", "performed":
			if name, ok := literal(0, "event name"); ok {
				v.deps.Events = append(v.deps.Events, name)
				window(1)
			}
		case "sum":
			if name, ok := literal(0, "event name"); ok {
				v.deps.Events = append(v.deps.Events, name)
				if _, ok := literal(1, "property name"); ok {
					window(2)
				}
			}
		case "last":
			if name, ok := literal(0, "event name"); ok {
				v.deps.Events = append(v.deps.Events, name)
				v.deps.AllTime = true
				v.deps.TimeWindows = true // days_ago changes with time
			}
		case "days_since":
			v.deps.TimeWindows = true
		case "in_segment":
			if slug, ok := literal(0, "segment slug"); ok {
				v.deps.Segments = append(v.deps.Segments, slug)
			}
		case "consented":
			v.deps.Traits = true
		case "opened", "clicked":
			if _, ok := literal(0, "template slug"); ok {
				v.deps.Events = append(v.deps.Events, map[string]string{"opened": emailOpened, "clicked": emailClicked}[id.Value])
				v.deps.AllTime = true
			}
		}
	}
}

// ParseWindow reads a window such as 30m, 2h, 30d, 4w; "all" (or "") means
// all history and returns 0.
func ParseWindow(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return 0, nil
	}
	var mult time.Duration
	switch s[len(s)-1] {
	case 'm':
		mult = time.Minute
	case 'h':
		mult = time.Hour
	case 'd':
		mult = 24 * time.Hour
	case 'w':
		mult = 7 * 24 * time.Hour
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n <= 0 || mult == 0 || n > 100000 {
		return 0, fmt.Errorf("window %q is not a duration such as 30m, 2h, 30d, 4w or \"all\"", s)
	}
	// 100000w would overflow a time.Duration (about 292 years) into a
	// window that means nothing, or a negative one.
	if time.Duration(n) > math.MaxInt64/mult {
		return 0, fmt.Errorf("window %q is longer than 290 years: write \"all\" for the whole history", s)
	}
	return time.Duration(n) * mult, nil
}

// Evaluate runs the rule for one profile at time now.
func (r *Rule) Evaluate(d *Data, now time.Time) (bool, error) {
	out, err := expr.Run(r.program, Bind(d, now))
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}

// Run evaluates the rule against an environment built by Bind (to bind a
// profile once and run several rules on it).
func (r *Rule) Run(env Env) (bool, error) {
	out, err := expr.Run(r.program, env)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}

// Bind builds the environment of one profile at time now.
func Bind(d *Data, now time.Time) Env {
	// since is the start of a window (zero for all time); ok is false for a
	// window that does not parse (refused at compile time anyway).
	since := func(window string) (from time.Time, ok bool) {
		w, err := ParseWindow(window)
		if err != nil {
			return time.Time{}, false
		}
		if w == 0 {
			return time.Time{}, true
		}
		return now.Add(-w), true
	}
	inWindow := func(e *Event, from time.Time) bool {
		return !e.At.After(now) && (from.IsZero() || e.At.After(from))
	}
	return Env{
		Profile: d.Profile,
		Count: func(event, window string) int {
			from, ok := since(window)
			if !ok {
				return 0
			}
			n := 0
			for i := range d.Events {
				if d.Events[i].Name == event && inWindow(&d.Events[i], from) {
					n++
				}
			}
			return n
		},
		Sum: func(event, property, window string) float64 {
			from, ok := since(window)
			if !ok {
				return 0
			}
			total := 0.0
			for i := range d.Events {
				e := &d.Events[i]
				if e.Name == event && inWindow(e, from) {
					if f, ok := number(e.props()[property]); ok {
						total += f
					}
				}
			}
			return math.Round(total*100) / 100
		},
		Performed: func(event, window string) bool {
			from, ok := since(window)
			if !ok {
				return false
			}
			for i := range d.Events {
				if d.Events[i].Name == event && inWindow(&d.Events[i], from) {
					return true
				}
			}
			return false
		},
		Last: func(event string) map[string]any {
			var last *Event
			for i := range d.Events {
				e := &d.Events[i]
				if e.Name == event && !e.At.After(now) && (last == nil || e.At.After(last.At)) {
					last = e
				}
			}
			if last == nil {
				return nil
			}
			return map[string]any{"properties": last.props(), "timestamp": last.At, "days_ago": now.Sub(last.At).Hours() / 24}
		},
		DaysSince: func(t any) float64 { return daysSince(t, now) },
		InSegment: func(slug string) bool { return d.Segments[slug] },
		Consented: func(channel string) bool { return d.Profile.Consents[channel] },
		Opened: func(template string) bool {
			for i := range d.Events {
				e := &d.Events[i]
				if e.Name == emailOpened && !e.At.After(now) && e.props()["template"] == template && e.props()["machine_open"] != true {
					return true
				}
			}
			return false
		},
		Clicked: func(template string) bool {
			for i := range d.Events {
				e := &d.Events[i]
				if e.Name == emailClicked && !e.At.After(now) && e.props()["template"] == template {
					return true
				}
			}
			return false
		},
	}
}

func daysSince(t any, now time.Time) float64 {
	var at time.Time
	switch v := t.(type) {
	case time.Time:
		at = v
	case *time.Time:
		if v == nil {
			return NeverDays
		}
		at = *v
	case string:
		p, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			if p, err = time.Parse("2006-01-02", v); err != nil {
				return NeverDays
			}
		}
		at = p
	default:
		return NeverDays
	}
	return now.Sub(at).Hours() / 24
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case string:
		f, err := strconv.ParseFloat(n, 64)
		return f, err == nil
	}
	return 0, false
}

// Package journey is the model of a journey definition (trigger, entry
// rules, a graph of nodes, exit criteria, goal) and its validation, which
// names the node and field at fault. It is pure: the Temporal workflow that
// runs a definition lives in package workflows.
package journey

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/rules"
	"github.com/parcours/parcours/pkg/segment"
)

// Definition is a journey as a marketer writes it (JSON).
type Definition struct {
	Name    string  `json:"name"`
	Trigger Trigger `json:"trigger"`
	Entry   Entry   `json:"entry"`
	Start   string  `json:"start"`
	Nodes   []Node  `json:"nodes"`
	Exits   []Exit  `json:"exits,omitempty"`
	Goal    *Goal   `json:"goal,omitempty"`
}

// Trigger types.
const (
	TriggerEvent          = "event"
	TriggerSegmentEntered = "segment_entered"
	TriggerSegmentExited  = "segment_exited"
	TriggerAPI            = "api"
)

// Trigger says what starts a run.
type Trigger struct {
	Type string `json:"type"`
	// Event name, for event triggers.
	Event string `json:"event,omitempty"`
	// Filter is an expr condition on the triggering record (type, event, properties, traits, context).
	Filter string `json:"filter,omitempty"`
	// CorrelationKey is a record path such as properties.cart_id: one run per value, and
	// wait_for_event nodes match events carrying the same value.
	CorrelationKey string `json:"correlation_key,omitempty"`
	// Segment slug, for segment triggers.
	Segment string `json:"segment,omitempty"`
}

// Re-entry policies.
const (
	ReEntryOnce          = "once"
	ReEntryOneAtATime    = "one_at_a_time"
	ReEntryEveryTime     = "every_time"
	ReEntryAfterCooldown = "cooldown"
)

// Entry rules.
type Entry struct {
	ReEntry  string `json:"re_entry"`
	Cooldown string `json:"cooldown,omitempty"`
	// Filter is a segment-style condition on the profile, checked at entry.
	Filter string `json:"filter,omitempty"`
}

// Node types.
const (
	NodeSend          = "send"
	NodeWait          = "wait"
	NodeWaitForEvent  = "wait_for_event"
	NodeBranch        = "branch"
	NodeSplit         = "split"
	NodeUpdateProfile = "update_profile"
	NodeWebhook       = "webhook"
	NodeExit          = "exit"
)

// Node is one step of the graph. Which fields apply depends on Type.
type Node struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Next string `json:"next,omitempty"`

	// send
	Channel  string `json:"channel,omitempty"`
	Template string `json:"template,omitempty"`
	// Class is marketing (default) or transactional (receipts, password
	// resets: not held back by marketing opt-outs, caps or quiet hours).
	Class string `json:"class,omitempty"`
	// OnPolicy is what a send (or webhook) held back by the workspace's
	// frequency caps or quiet hours does: defer (default: wait until
	// allowed, then send) or drop (record it skipped with the reason).
	OnPolicy string `json:"on_policy,omitempty"`

	// wait: Duration, or Until a time of day ("09:00") in the profile's time zone on Weekdays,
	// or until the profile's Date trait (e.g. "traits.renewal_at") shifted by Offset ("-3d",
	// "+2h"), its next anniversary when EveryYear (birthdays). A profile without that date, or
	// whose moment has passed, goes to OnMissing, or ends its run when OnMissing is empty.
	Duration  string   `json:"duration,omitempty"`
	Until     string   `json:"until,omitempty"`
	Weekdays  []string `json:"weekdays,omitempty"`
	Date      string   `json:"date,omitempty"`
	Offset    string   `json:"offset,omitempty"`
	EveryYear bool     `json:"every_year,omitempty"`
	OnMissing string   `json:"on_missing,omitempty"`

	// wait_for_event
	Event     string `json:"event,omitempty"`
	Match     string `json:"match,omitempty"`
	Timeout   string `json:"timeout,omitempty"`
	OnEvent   string `json:"on_event,omitempty"`
	OnTimeout string `json:"on_timeout,omitempty"`

	// branch
	Branches []Branch `json:"branches,omitempty"`
	Else     string   `json:"else,omitempty"`

	// split
	Variants []Variant `json:"variants,omitempty"`

	// update_profile
	Traits map[string]any `json:"traits,omitempty"`

	// webhook: a signed JSON POST of the profile to URL (once per run and node).
	URL string `json:"url,omitempty"`
}

// Message classes of a send node.
const (
	ClassMarketing     = "marketing"
	ClassTransactional = "transactional"
)

// What a send held back by a delivery policy does.
const (
	PolicyDefer = "defer"
	PolicyDrop  = "drop"
)

// MessageClass is the send's class: marketing unless it says transactional.
func (n *Node) MessageClass() string {
	if n.Class == ClassTransactional {
		return ClassTransactional
	}
	return ClassMarketing
}

// PolicyAction is what the send does when a delivery policy holds it back:
// defer unless it says drop.
func (n *Node) PolicyAction() string {
	if n.OnPolicy == PolicyDrop {
		return PolicyDrop
	}
	return PolicyDefer
}

// Branch is one way of a branch node.
type Branch struct {
	Condition string `json:"condition"`
	Next      string `json:"next"`
}

// Variant is one arm of a weighted split.
type Variant struct {
	Name   string `json:"name"`
	Weight int    `json:"weight"`
	Next   string `json:"next"`
}

// Exit ends a run wherever it is when a matching event arrives.
type Exit struct {
	Event  string `json:"event"`
	Filter string `json:"filter,omitempty"`
}

// Goal counts a conversion when the event arrives within the window after entry.
type Goal struct {
	Event  string `json:"event"`
	Filter string `json:"filter,omitempty"`
	Within string `json:"within"`
}

// FieldError names the place of a definition at fault: "nodes[email1].template".
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

// ValidationError lists everything wrong with a definition.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, f := range e.Errors {
		parts[i] = f.Field + ": " + f.Reason
	}
	return "invalid journey: " + strings.Join(parts, "; ")
}

// Parse decodes a JSON definition, rejecting unknown fields.
func Parse(raw []byte) (Definition, error) {
	var d Definition
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return d, &ValidationError{Errors: []FieldError{{Field: "(definition)", Reason: "is not a valid journey JSON document: " + err.Error()}}}
	}
	return d, nil
}

// EventRecord is what trigger filters, wait matches and exit filters see: the
// record, and the record that started the run.
type EventRecord struct {
	Type       string         `expr:"type"`
	Event      string         `expr:"event"`
	Properties map[string]any `expr:"properties"`
	Traits     map[string]any `expr:"traits"`
	Context    map[string]any `expr:"context"`
	Trigger    map[string]any `expr:"trigger"`
}

const eventVocabulary = "type, event, properties, traits, context, trigger (the record that started the run)"

// CompileEventRule compiles a condition on a record.
func CompileEventRule(src string) (*vm.Program, error) {
	return rules.Compile(src, EventRecord{}, eventVocabulary)
}

var idRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$`)

var datePathRe = regexp.MustCompile(`^traits\.[A-Za-z0-9_]+$`)

// ParseDuration reads a journey duration: 30s, 30m, 2h, 7d, 4w. Seconds
// are for tests and fast follow-ups; windows of segment rules start at
// minutes.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "s") {
		n, err := strconv.Atoi(strings.TrimSuffix(s, "s"))
		if err != nil || n <= 0 || n > 100000 {
			return 0, fmt.Errorf("%q is not a duration such as 30s, 30m, 1h, 7d", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := segment.ParseWindow(s)
	if err != nil || s == "all" || s == "" {
		return 0, fmt.Errorf("%q is not a duration such as 30s, 30m, 1h, 7d", s)
	}
	return d, nil
}

// ParseOffset reads a signed duration such as -3d, +2h, 30m or 0.
func ParseOffset(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" || s == "" {
		return 0, nil
	}
	sign := time.Duration(1)
	switch s[0] {
	case '-':
		sign, s = -1, s[1:]
	case '+':
		s = s[1:]
	}
	d, err := ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not an offset such as -3d, +2h or 0", s)
	}
	return sign * d, nil
}

var weekdays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// Validate checks a definition and reports every error, each naming the
// node and field.
func Validate(d Definition) error {
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	rule := func(field, src string, compile func(string) error) {
		if src == "" {
			return
		}
		if err := compile(src); err != nil {
			if re, ok := err.(*rules.Error); ok {
				errs = append(errs, FieldError{Field: field, Reason: re.Message, Line: re.Line, Column: re.Column})
				return
			}
			add(field, "%v", err)
		}
	}
	policy := func(node, v string) {
		if v != "" && v != PolicyDefer && v != PolicyDrop {
			add(node+".on_policy", "must be defer (wait until the frequency cap or quiet hours allow it) or drop")
		}
	}
	eventRule := func(src string) error { _, err := CompileEventRule(src); return err }
	profileRule := func(src string) error { _, err := segment.Compile(src); return err }
	duration := func(field, s string, required bool) {
		if s == "" {
			if required {
				add(field, "is required, e.g. 1h, 24h, 7d")
			}
			return
		}
		if _, err := ParseDuration(s); err != nil {
			add(field, "%q is not a duration such as 30s, 30m, 1h, 24h, 7d", s)
		}
	}

	if strings.TrimSpace(d.Name) == "" || len(d.Name) > 200 {
		add("name", "must be 1-200 characters")
	}
	switch d.Trigger.Type {
	case TriggerEvent:
		if d.Trigger.Event == "" {
			add("trigger.event", "an event trigger needs the event name, e.g. \"Cart Updated\"")
		}
		rule("trigger.filter", d.Trigger.Filter, eventRule)
		if k := d.Trigger.CorrelationKey; k != "" && !regexp.MustCompile(`^(properties|traits|context)(\.[A-Za-z0-9_]+)+$`).MatchString(k) {
			add("trigger.correlation_key", "%q must be a record path such as properties.cart_id", k)
		}
	case TriggerSegmentEntered, TriggerSegmentExited:
		if d.Trigger.Segment == "" {
			add("trigger.segment", "a segment trigger needs the segment's slug")
		}
	case TriggerAPI:
	default:
		add("trigger.type", "must be event, segment_entered, segment_exited or api")
	}
	switch d.Entry.ReEntry {
	case ReEntryOnce, ReEntryOneAtATime, ReEntryEveryTime:
	case ReEntryAfterCooldown:
		duration("entry.cooldown", d.Entry.Cooldown, true)
	case "":
		add("entry.re_entry", "is required: once, one_at_a_time, every_time or cooldown")
	default:
		add("entry.re_entry", "must be once, one_at_a_time, every_time or cooldown")
	}
	rule("entry.filter", d.Entry.Filter, profileRule)

	byID := map[string]*Node{}
	for i := range d.Nodes {
		n := &d.Nodes[i]
		field := fmt.Sprintf("nodes[%d]", i)
		if !idRe.MatchString(n.ID) {
			add(field+".id", "must be 1-63 letters, digits, _ or -")
			continue
		}
		if byID[n.ID] != nil {
			add(field+".id", "%q is used by two nodes", n.ID)
			continue
		}
		byID[n.ID] = n
	}
	if len(d.Nodes) == 0 {
		add("nodes", "a journey needs at least one node")
	} else if byID[d.Start] == nil {
		add("start", "%q is not a node id", d.Start)
	}
	ref := func(field, target string, required bool) {
		if target == "" {
			if required {
				add(field, "is required: the id of the next node")
			}
			return
		}
		if byID[target] == nil {
			add(field, "%q is not a node id", target)
		}
	}
	for _, n := range d.Nodes {
		f := "nodes[" + n.ID + "]"
		switch n.Type {
		case NodeSend:
			if n.Channel != "email" && n.Channel != "sms" && n.Channel != "webhook" {
				add(f+".channel", "must be email, sms or webhook")
			}
			if n.Template == "" {
				add(f+".template", "a send needs a template slug")
			}
			if n.Class != "" && n.Class != ClassMarketing && n.Class != ClassTransactional {
				add(f+".class", "must be marketing or transactional")
			}
			policy(f, n.OnPolicy)
			ref(f+".next", n.Next, true)
		case NodeWait:
			switch {
			case n.Date != "" && (n.Duration != "" || n.Until != ""):
				add(f+".date", "give one of duration, until or date")
			case n.Date != "":
				if !datePathRe.MatchString(n.Date) {
					add(f+".date", "%q must be a profile trait holding a date, such as traits.renewal_at", n.Date)
				}
				if n.Offset != "" {
					if _, err := ParseOffset(n.Offset); err != nil {
						add(f+".offset", "%q is not an offset such as -3d, +2h or 0", n.Offset)
					}
				}
				ref(f+".on_missing", n.OnMissing, false)
			case n.Duration != "" && n.Until != "":
				add(f+".until", "give duration or until, not both")
			case n.Until != "":
				if _, err := time.Parse("15:04", n.Until); err != nil {
					add(f+".until", "%q is not a time of day such as 09:00", n.Until)
				}
				for _, w := range n.Weekdays {
					if !slices.Contains(weekdays, strings.ToLower(w)) {
						add(f+".weekdays", "%q is not one of mon, tue, wed, thu, fri, sat, sun", w)
					}
				}
			default:
				duration(f+".duration", n.Duration, true)
			}
			ref(f+".next", n.Next, true)
		case NodeWaitForEvent:
			if n.Event == "" {
				add(f+".event", "is required: the event to wait for, e.g. \"Order Completed\"")
			}
			rule(f+".match", n.Match, eventRule)
			duration(f+".timeout", n.Timeout, true)
			ref(f+".on_event", n.OnEvent, true)
			ref(f+".on_timeout", n.OnTimeout, true)
		case NodeBranch:
			if len(n.Branches) == 0 {
				add(f+".branches", "a branch needs at least one condition")
			}
			for i, b := range n.Branches {
				rule(fmt.Sprintf("%s.branches[%d].condition", f, i), b.Condition, profileRule)
				if b.Condition == "" {
					add(fmt.Sprintf("%s.branches[%d].condition", f, i), "is required")
				}
				ref(fmt.Sprintf("%s.branches[%d].next", f, i), b.Next, true)
			}
			ref(f+".else", n.Else, true)
		case NodeSplit:
			total := 0
			for i, v := range n.Variants {
				if v.Weight <= 0 {
					add(fmt.Sprintf("%s.variants[%d].weight", f, i), "must be a positive whole number")
				}
				total += v.Weight
				ref(fmt.Sprintf("%s.variants[%d].next", f, i), v.Next, true)
			}
			if len(n.Variants) < 2 {
				add(f+".variants", "a split needs at least two variants")
			} else if total != 100 {
				add(f+".variants", "weights add up to %d; they must add up to 100", total)
			}
		case NodeUpdateProfile:
			if len(n.Traits) == 0 {
				add(f+".traits", "set at least one trait")
			}
			ref(f+".next", n.Next, true)
		case NodeWebhook:
			if u, err := url.Parse(n.URL); n.URL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
				add(f+".url", "must be an http(s) URL without credentials, e.g. https://crm.example.com/hooks/parcours")
			} else if err := channel.CheckWebhookURL(n.URL); err != nil { // https, as the send requires
				add(f+".url", "%s", err)
			}
			policy(f, n.OnPolicy)
			ref(f+".next", n.Next, true)
		case NodeExit:
			if n.Next != "" {
				add(f+".next", "an exit node ends the run; remove next")
			}
		default:
			add(f+".type", "%q is not one of send, wait, wait_for_event, branch, split, update_profile, webhook, exit", n.Type)
		}
	}
	for i, x := range d.Exits {
		if x.Event == "" {
			add(fmt.Sprintf("exits[%d].event", i), "is required")
		}
		rule(fmt.Sprintf("exits[%d].filter", i), x.Filter, eventRule)
	}
	if d.Goal != nil {
		if d.Goal.Event == "" {
			add("goal.event", "is required")
		}
		rule("goal.filter", d.Goal.Filter, eventRule)
		duration("goal.within", d.Goal.Within, true)
	}
	if len(errs) == 0 {
		errs = append(errs, graphErrors(d, byID)...)
	}
	if len(errs) > 0 {
		return &ValidationError{Errors: errs}
	}
	return nil
}

// Successors lists the nodes a node can lead to, in a fixed order.
func (n *Node) Successors() []string {
	var out []string
	switch n.Type {
	case NodeWaitForEvent:
		out = []string{n.OnEvent, n.OnTimeout}
	case NodeBranch:
		for _, b := range n.Branches {
			out = append(out, b.Next)
		}
		out = append(out, n.Else)
	case NodeSplit:
		for _, v := range n.Variants {
			out = append(out, v.Next)
		}
	case NodeExit:
	case NodeWait:
		out = []string{n.Next}
		if n.OnMissing != "" {
			out = append(out, n.OnMissing)
		}
	default:
		out = []string{n.Next}
	}
	return out
}

// graphErrors reports unreachable nodes and cycles: every run must end.
func graphErrors(d Definition, byID map[string]*Node) []FieldError {
	var errs []FieldError
	const (
		unseen = iota
		active
		done
	)
	state := map[string]int{}
	var cycle string
	var visit func(id string)
	visit = func(id string) {
		if cycle != "" {
			return
		}
		switch state[id] {
		case active:
			cycle = id
			return
		case done:
			return
		}
		state[id] = active
		for _, next := range byID[id].Successors() {
			visit(next)
		}
		state[id] = done
	}
	visit(d.Start)
	if cycle != "" {
		errs = append(errs, FieldError{Field: "nodes[" + cycle + "]", Reason: "is part of a loop: a journey's graph must lead to an end (use a wait_for_event timeout instead of going back)"})
	}
	for _, n := range d.Nodes {
		if state[n.ID] == unseen {
			errs = append(errs, FieldError{Field: "nodes[" + n.ID + "]", Reason: "cannot be reached from start " + d.Start})
		}
	}
	return errs
}

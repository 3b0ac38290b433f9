package journey

import (
	"fmt"
	"slices"
	"strings"
)

// scenarioTexts describe the built-in scenarios for a marketer choosing one.
var scenarioTexts = map[string]struct{ Title, Description string }{
	"welcome": {"Welcome series",
		"Greets each new sign-up with a welcome email, then, two days later, sends tips to those who have not ordered yet. Counts a conversion when they order within 14 days."},
	"abandoned_cart": {"Abandoned cart rescue",
		"When a cart is updated and no order follows within an hour, reminds the person of their cart; a day later, offers a coupon. Stops as soon as they order."},
	"resend_non_openers": {"Resend to non-openers",
		"Sends the newsletter, waits two days, and sends it again, with another subject, to those who did not open it (automatic opens by mail privacy proxies do not count)."},
	"thank_you": {"Thank you, new customer",
		"Thanks a prospect once, when they become a customer (they enter the segment of customers)."},
}

// Adjustments change a scenario before it becomes a draft: everything a
// marketer chooses on the scenario form. Empty fields keep the scenario's.
type Adjustments struct {
	Name string
	// TriggerEvent replaces the event of an event trigger, e.g. "identify"
	// to welcome people at their first identify call.
	TriggerEvent string
	// Segment replaces the segment (slug) of a segment trigger.
	Segment string
	// Durations by node id: a wait's duration or a wait_for_event's timeout.
	Durations map[string]string
	// Templates by send node id: the slug of the template it sends.
	Templates map[string]string
}

// Adjust applies a to the scenario, and lists what it could not apply,
// each naming its field (durations.<node>, templates.<node>, ...). The
// definition is validated when the draft is saved.
func (s *Scenario) Adjust(a Adjustments) []FieldError {
	var bad []FieldError
	d := &s.Definition
	if name := strings.TrimSpace(a.Name); name != "" {
		d.Name = name
	}
	if ev := strings.TrimSpace(a.TriggerEvent); ev != "" {
		if d.Trigger.Type != TriggerEvent {
			bad = append(bad, FieldError{Field: "trigger_event", Reason: "this scenario starts on a segment, not an event"})
		} else {
			d.Trigger.Event = ev
		}
	}
	if seg := strings.TrimSpace(a.Segment); seg != "" {
		if d.Trigger.Type != TriggerSegmentEntered && d.Trigger.Type != TriggerSegmentExited {
			bad = append(bad, FieldError{Field: "segment", Reason: "this scenario starts on an event, not a segment"})
		} else {
			d.Trigger.Segment, s.Segment = seg, seg
		}
	}
	for _, id := range sortedKeys(a.Durations) {
		found := false
		for i := range d.Nodes {
			n := &d.Nodes[i]
			switch {
			case n.ID != id:
			case n.Type == NodeWait && n.Until == "" && n.Date == "":
				n.Duration, found = a.Durations[id], true
			case n.Type == NodeWaitForEvent:
				n.Timeout, found = a.Durations[id], true
			}
		}
		if !found {
			bad = append(bad, FieldError{Field: "durations." + id, Reason: "is not a wait or wait_for_event node of this scenario"})
		}
	}
	for _, id := range sortedKeys(a.Templates) {
		slug := strings.TrimSpace(a.Templates[id])
		i := slices.IndexFunc(d.Nodes, func(n Node) bool { return n.ID == id && n.Type == NodeSend })
		switch {
		case i < 0:
			bad = append(bad, FieldError{Field: "templates." + id, Reason: "is not a send node of this scenario"})
		case !idRe.MatchString(slug):
			bad = append(bad, FieldError{Field: "templates." + id, Reason: fmt.Sprintf("%q is not a template slug (lower-case letters, digits, - and _)", slug)})
		default:
			d.Nodes[i].Template = slug
		}
	}
	s.Templates = nil
	for _, n := range d.Nodes {
		if n.Type == NodeSend && !slices.Contains(s.Templates, n.Template) {
			s.Templates = append(s.Templates, n.Template)
		}
	}
	return bad
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

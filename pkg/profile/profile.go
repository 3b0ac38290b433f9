// Package profile is the unified customer profile: traits with their
// provenance, computed traits kept current incrementally, and the derived
// state (anonymous, known, omnichannel).
package profile

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/parcours/parcours/pkg/events"
)

// States of a profile.
const (
	StateAnonymous   = "anonymous"
	StateKnown       = "known"
	StateOmnichannel = "omnichannel"
)

// Profile is one person.
type Profile struct {
	ID          string                 `json:"id"`
	State       string                 `json:"state"`
	Traits      map[string]any         `json:"traits"`
	TraitSource map[string]TraitSource `json:"trait_sources"`
	Computed    Computed               `json:"computed"`
	FirstSeenAt *time.Time             `json:"first_seen_at,omitempty"`
	LastSeenAt  *time.Time             `json:"last_seen_at,omitempty"`
	CreatedAt   time.Time              `json:"created_at"`
	UpdatedAt   time.Time              `json:"updated_at"`
	MergedInto  string                 `json:"merged_into,omitempty"`
}

// TraitSource says where a trait's current value came from.
type TraitSource struct {
	Source    string    `json:"source"`
	MessageID string    `json:"message_id"`
	At        time.Time `json:"at"`
}

// Computed are the traits Parcours derives from behaviour.
type Computed struct {
	EventCount    int            `json:"event_count"`
	EventCounts   map[string]int `json:"event_counts"`
	PageViews     int            `json:"page_views"`
	ScreenViews   int            `json:"screen_views"`
	Sessions      int            `json:"sessions"`
	OrderCount    int            `json:"order_count"`
	TotalRevenue  float64        `json:"total_revenue"`
	AvgOrderValue float64        `json:"average_order_value"`
	LastOrderAt   *time.Time     `json:"last_order_at,omitempty"`
	Sources       []string       `json:"sources"`
	Channels      []string       `json:"channels"`
	// lastActivity backs the session count (30 minutes of inactivity starts a session).
	LastActivity *time.Time `json:"last_activity_at,omitempty"`
}

// OrderEvent is the track event that counts as an order (Segment's e-commerce spec).
const OrderEvent = "Order Completed"

// sessionGap is the inactivity after which the next event starts a session.
const sessionGap = 30 * time.Minute

// New returns an empty profile.
func New(id string, now time.Time) *Profile {
	return &Profile{ID: id, State: StateAnonymous, Traits: map[string]any{}, TraitSource: map[string]TraitSource{},
		Computed: Computed{EventCounts: map[string]int{}}, CreatedAt: now, UpdatedAt: now}
}

// Apply folds one record into the profile: traits (last write wins by event
// time, provenance kept) and computed traits.
func (p *Profile) Apply(m *events.Message, source string) {
	if p.Traits == nil {
		p.Traits = map[string]any{}
	}
	if p.TraitSource == nil {
		p.TraitSource = map[string]TraitSource{}
	}
	if p.Computed.EventCounts == nil {
		p.Computed.EventCounts = map[string]int{}
	}
	traits := m.ContextTraits()
	if m.Type == events.TypeIdentify {
		traits = m.Traits
	}
	for k, v := range traits {
		p.SetTrait(k, v, TraitSource{Source: source, MessageID: m.MessageID, At: m.Timestamp})
	}
	ts := m.Timestamp
	if p.FirstSeenAt == nil || ts.Before(*p.FirstSeenAt) {
		p.FirstSeenAt = &ts
	}
	if p.LastSeenAt == nil || ts.After(*p.LastSeenAt) {
		p.LastSeenAt = &ts
	}
	c := &p.Computed
	c.EventCount++
	c.EventCounts[m.NameOrEvent()]++
	switch m.Type {
	case events.TypePage:
		c.PageViews++
	case events.TypeScreen:
		c.ScreenViews++
	}
	if m.Type == events.TypeTrack && m.Event == OrderEvent {
		c.OrderCount++
		c.TotalRevenue = round2(c.TotalRevenue + orderValue(m.Properties))
		c.AvgOrderValue = round2(c.TotalRevenue / float64(c.OrderCount))
		if c.LastOrderAt == nil || ts.After(*c.LastOrderAt) {
			c.LastOrderAt = &ts
		}
	}
	if c.LastActivity == nil || ts.Sub(*c.LastActivity) > sessionGap {
		c.Sessions++
	}
	if c.LastActivity == nil || ts.After(*c.LastActivity) {
		c.LastActivity = &ts
	}
	c.Sources = addSorted(c.Sources, source)
	if ch := Channel(m); ch != "" {
		c.Channels = addSorted(c.Channels, ch)
	}
}

// SetTrait sets a trait unless the stored value is newer.
func (p *Profile) SetTrait(k string, v any, src TraitSource) {
	if cur, ok := p.TraitSource[k]; ok && cur.At.After(src.At) {
		return
	}
	p.Traits[k] = v
	p.TraitSource[k] = src
}

// Absorb folds another profile (being merged into p) into p.
func (p *Profile) Absorb(o *Profile) {
	for k, v := range o.Traits {
		p.SetTrait(k, v, o.TraitSource[k])
	}
	if o.FirstSeenAt != nil && (p.FirstSeenAt == nil || o.FirstSeenAt.Before(*p.FirstSeenAt)) {
		p.FirstSeenAt = o.FirstSeenAt
	}
	if o.LastSeenAt != nil && (p.LastSeenAt == nil || o.LastSeenAt.After(*p.LastSeenAt)) {
		p.LastSeenAt = o.LastSeenAt
	}
	a, b := &p.Computed, o.Computed
	if a.EventCounts == nil {
		a.EventCounts = map[string]int{}
	}
	a.EventCount += b.EventCount
	for k, n := range b.EventCounts {
		a.EventCounts[k] += n
	}
	a.PageViews += b.PageViews
	a.ScreenViews += b.ScreenViews
	a.Sessions += b.Sessions
	a.OrderCount += b.OrderCount
	a.TotalRevenue = round2(a.TotalRevenue + b.TotalRevenue)
	if a.OrderCount > 0 {
		a.AvgOrderValue = round2(a.TotalRevenue / float64(a.OrderCount))
	}
	if b.LastOrderAt != nil && (a.LastOrderAt == nil || b.LastOrderAt.After(*a.LastOrderAt)) {
		a.LastOrderAt = b.LastOrderAt
	}
	if b.LastActivity != nil && (a.LastActivity == nil || b.LastActivity.After(*a.LastActivity)) {
		a.LastActivity = b.LastActivity
	}
	for _, s := range b.Sources {
		a.Sources = addSorted(a.Sources, s)
	}
	for _, s := range b.Channels {
		a.Channels = addSorted(a.Channels, s)
	}
}

// DeriveState sets State from whether the profile is known (has a value of
// the unique identifier) and on how many sources it was seen.
func (p *Profile) DeriveState(known bool) {
	switch {
	case !known:
		p.State = StateAnonymous
	case len(p.Computed.Sources) >= 2:
		p.State = StateOmnichannel
	default:
		p.State = StateKnown
	}
}

// Channel names the kind of touchpoint a record came from: web, mobile,
// server, or what context.channel says.
func Channel(m *events.Message) string {
	if ch, ok := m.Context["channel"].(string); ok && ch != "" {
		return ch
	}
	switch {
	case m.Type == events.TypeScreen:
		return "mobile"
	case m.Context["app"] != nil:
		return "mobile"
	case m.Context["page"] != nil || m.Type == events.TypePage:
		return "web"
	}
	return ""
}

// orderValue reads the order's value: properties.revenue, else total, else value.
func orderValue(props map[string]any) float64 {
	for _, k := range []string{"revenue", "total", "value"} {
		if f, ok := Number(props[k]); ok {
			return f
		}
	}
	return 0
}

// Number reads a JSON number (or numeric string) as a float64.
func Number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
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

func round2(f float64) float64 { return math.Round(f*100) / 100 }

func addSorted(list []string, s string) []string {
	if s == "" || slices.Contains(list, s) {
		return list
	}
	list = append(list, s)
	slices.Sort(list)
	return list
}

package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/identity"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/user"
)

// identifierOption is one choice of the profile search's "Identifier" list.
type identifierOption struct {
	Type, Label string
	Selected    bool
}

// searchTypes are the identifier types a search tries, in order: the
// built-in ones of the lookup API (lookupParams), then the workspace's
// identity traits (e.g. customer_number).
func searchTypes(identityTraits []string) []string {
	types := []string{identity.Email, identity.UserID, identity.Phone, identity.AnonymousID}
	for _, t := range identityTraits {
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	return types
}

// findProfiles looks an identifier up, as GET /v1/profiles/lookup does
// (normalised with identity.Normalize, then the identities index): of one
// type, or of every type when typ is "".
func (s *Server) findProfiles(ctx context.Context, workspaceID string, types []string, typ, value string) ([]string, error) {
	if typ != "" {
		types = []string{typ}
	}
	var ids []string
	for _, t := range types {
		norm := identity.Normalize(t, value)
		if norm == "" {
			continue
		}
		id, err := s.Profiles.Lookup(ctx, workspaceID, t, norm)
		if errors.Is(err, profile.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// profileCard is a profile as a list shows it.
type profileCard struct {
	ID, Label, State, Detail string
}

type profilesData struct {
	Query, Type string
	Options     []identifierOption
	Searched    bool
	Results     []profileCard
	// Erased says what an erasure just removed (nil: none).
	Erased *erasedNotice
}

func (s *Server) profilesPage(c echo.Context, sess user.Session) error {
	ctx := c.Request().Context()
	ws, err := s.Workspaces.Get(ctx, sess.User.WorkspaceID)
	if err != nil {
		return err
	}
	types := searchTypes(ws.IdentityTraits)
	d := profilesData{Query: strings.TrimSpace(c.QueryParam("q")), Type: c.QueryParam("type"), Erased: erasedNoticeOf(c)}
	if d.Type != "" && !slices.Contains(types, d.Type) {
		d.Type = ""
	}
	d.Options = append(d.Options, identifierOption{Type: "", Label: "Any identifier", Selected: d.Type == ""})
	for _, t := range types {
		d.Options = append(d.Options, identifierOption{Type: t, Label: humanLabel(t), Selected: d.Type == t})
	}
	if d.Query != "" {
		d.Searched = true
		ids, err := s.findProfiles(ctx, ws.ID, types, d.Type, d.Query)
		if err != nil {
			return err
		}
		if len(ids) == 1 {
			return c.Redirect(http.StatusSeeOther, "/profiles/"+url.PathEscape(ids[0]))
		}
		for _, id := range ids {
			card, err := s.profileCard(ctx, ws.ID, id)
			if err != nil {
				return err
			}
			d.Results = append(d.Results, card)
		}
	}
	return s.render(c, http.StatusOK, "profiles.html", view{Title: "Profiles", Nav: "profiles", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// profileCard loads what a list shows of a profile.
func (s *Server) profileCard(ctx context.Context, workspaceID, id string) (profileCard, error) {
	v, err := s.Profiles.Get(ctx, workspaceID, id)
	if errors.Is(err, profile.ErrNotFound) {
		return profileCard{ID: id, Label: "A profile erased since", State: ""}, nil
	}
	if err != nil {
		return profileCard{}, err
	}
	card := profileCard{ID: v.ID, Label: profileLabel(v), State: stateLabel(v.State)}
	if v.LastSeenAt != nil {
		card.Detail = "last seen " + fmtTime(v.LastSeenAt)
	}
	return card, nil
}

// profileLabel names a person as a marketer would: their name, else their
// email, else another identifier.
func profileLabel(v *profile.View) string {
	str := func(k string) string { s, _ := v.Traits[k].(string); return strings.TrimSpace(s) }
	if n := str("name"); n != "" {
		return n
	}
	if n := strings.TrimSpace(str("first_name") + " " + str("last_name")); n != "" {
		return n
	}
	for _, typ := range []string{identity.Email, identity.Phone, identity.UserID} {
		for _, id := range v.Identities {
			if id.Type == typ {
				if typ == identity.UserID {
					return "User " + id.Value
				}
				return id.Value
			}
		}
	}
	for _, id := range v.Identities {
		if id.Type != identity.AnonymousID {
			return humanLabel(id.Type) + " " + id.Value
		}
	}
	return "Anonymous visitor"
}

// traitRow is one trait with where its value came from.
type traitRow struct {
	Name, Value, Source string
	At                  *time.Time
}

type statRow struct{ Label, Value string }

type eventRow struct {
	At                   time.Time
	What, Source, Detail string
	// Kind is "" for a record, journey or delivery for what Parcours did.
	Kind string
}

type profileData struct {
	V          *profile.View
	Label      string
	State      string
	StateHelp  string
	Identities []profile.Identity
	Traits     []traitRow
	Computed   []statRow
	TopEvents  []statRow
	Events     []eventRow
	MoreEvents bool
	Journeys   []profileRunRow
	Deliveries []deliveryRow
	Consents   []consentRow
	// Actions are undo a merge, download and erase (console_profile_actions.go).
	Actions profileActions
}

func (s *Server) profilePage(c echo.Context, sess user.Session) error {
	id := c.Param("id")
	v, err := s.consoleProfile(c, sess)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	if v.ID != id { // merged: show the surviving profile at its own address
		return c.Redirect(http.StatusSeeOther, "/profiles/"+url.PathEscape(v.ID))
	}
	d := profileData{V: v, Label: profileLabel(v), State: stateLabel(v.State), Identities: v.Identities}
	for _, st := range profileStates {
		if st.State == v.State {
			d.StateHelp = st.Help
		}
	}
	names := make([]string, 0, len(v.Traits))
	for k := range v.Traits {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		row := traitRow{Name: k, Value: fmtValue(v.Traits[k])}
		if src, ok := v.TraitSource[k]; ok {
			row.Source = src.Source
			at := src.At
			row.At = &at
		}
		d.Traits = append(d.Traits, row)
	}
	cp := v.Computed
	d.Computed = []statRow{
		{"Events", strconv.Itoa(cp.EventCount)},
		{"Page views", strconv.Itoa(cp.PageViews)},
		{"Screen views", strconv.Itoa(cp.ScreenViews)},
		{"Sessions", strconv.Itoa(cp.Sessions)},
		{"Orders", strconv.Itoa(cp.OrderCount)},
		{"Total revenue", strconv.FormatFloat(cp.TotalRevenue, 'f', 2, 64)},
		{"Average order value", strconv.FormatFloat(cp.AvgOrderValue, 'f', 2, 64)},
		{"Last order", fmtTime(cp.LastOrderAt)},
		{"Sources", orDash(strings.Join(cp.Sources, ", "))},
		{"Channels", orDash(strings.Join(cp.Channels, ", "))},
	}
	evNames := make([]string, 0, len(cp.EventCounts))
	for k := range cp.EventCounts {
		evNames = append(evNames, k)
	}
	sort.Slice(evNames, func(i, j int) bool {
		a, b := cp.EventCounts[evNames[i]], cp.EventCounts[evNames[j]]
		return a > b || a == b && evNames[i] < evNames[j]
	})
	for i, k := range evNames {
		if i == 10 {
			break
		}
		d.TopEvents = append(d.TopEvents, statRow{k, strconv.Itoa(cp.EventCounts[k])})
	}
	evs, next, err := s.Profiles.Timeline(ctx, ws, v.ID, "", 50)
	if err != nil {
		return err
	}
	d.MoreEvents = next != ""
	for _, ev := range evs {
		d.Events = append(d.Events, eventRow{At: ev.Timestamp, What: eventTitle(ev), Source: ev.Source, Detail: eventDetail(ev)})
	}
	if err := s.profileActivity(ctx, ws, v.ID, &d); err != nil {
		return err
	}
	if d.Actions, err = s.profileActionsFor(ctx, sess, v, c.QueryParam("split")); err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "profile.html", view{Title: d.Label, Nav: "profiles", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// eventTitle says what a record is: "Order Completed", "Page: Pricing", ...
func eventTitle(ev profile.Event) string {
	switch ev.Type {
	case "track":
		return ev.Name
	case "identify":
		return "Identified"
	case "alias":
		return "Alias"
	}
	t := strings.ToUpper(ev.Type[:1]) + ev.Type[1:]
	if ev.Name != "" {
		return t + ": " + ev.Name
	}
	return t
}

// eventDetail summarises a record's properties or traits on one line.
func eventDetail(ev profile.Event) string {
	raw := ev.Properties
	if ev.Type == "identify" || ev.Type == "group" {
		raw = ev.Traits
	}
	var m map[string]any
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		// Events Parcours records (Email Delivered, ...) carry ids for
		// machines; the page names the template and journey instead.
		if ev.Source == "parcours" && strings.HasSuffix(k, "_id") {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+fmtValue(m[k]))
	}
	out := strings.Join(parts, " · ")
	if r := []rune(out); len(r) > 160 {
		out = string(r[:157]) + "…"
	}
	return out
}

// fmtTime writes a time for people, in UTC; nil is a dash. It accepts
// time.Time and *time.Time.
func fmtTime(t any) string {
	switch v := t.(type) {
	case time.Time:
		if v.IsZero() {
			return "—"
		}
		return v.UTC().Format("2 Jan 2006, 15:04 UTC")
	case *time.Time:
		if v == nil {
			return "—"
		}
		return fmtTime(*v)
	}
	return fmt.Sprint(t)
}

// fmtValue writes a trait or property value: strings as they are, numbers
// without exponent, anything else as JSON.
func fmtValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "—"
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		if x {
			return "yes"
		}
		return "no"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// humanLabel turns an identifier name into words: user_id → User ID,
// customer_number → Customer number.
func humanLabel(s string) string {
	switch s {
	case identity.UserID:
		return "User ID"
	case identity.AnonymousID:
		return "Anonymous ID"
	case identity.Email:
		return "Email"
	case identity.Phone:
		return "Phone"
	}
	s = strings.ReplaceAll(s, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

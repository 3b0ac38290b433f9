package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/user"
	"github.com/parcours/parcours/workflows/simulate"
)

// "Simulate with this profile" (/journeys/:id/simulate): a person found by
// any identifier, as the Profiles search finds them, optional extra traits
// and events, run through the simulator of POST /v1/journeys/:id/simulate
// (the real workflow code, time skipped, nothing sent or written). The
// result reads as a timeline: entered or why not, each step, each wait and
// how it ended, the rendered messages, the traits set, the conversion.

// simulateForm is the form, as typed.
type simulateForm struct {
	Person, Type, ProfileID string
	Options                 []identifierOption
	// Version is "" for the draft, else a published version number.
	Version      string
	Versions     []editChoice
	Traits       string
	TriggerProps string
	Events       string
	// Trigger is the event that starts the journey ("" when not an event).
	Trigger string
	Errors  map[string]string
	// Matches lists the people the identifier found when it found several.
	Matches []profileCard
}

// timelineEntry is one line of the simulated timeline.
type timelineEntry struct {
	At, After string
	Kind      string
	Text      string
	// Detail says how a wait ended, or why a message would not go.
	Detail  string
	Message *simulate.Message
}

type simulateResultView struct {
	Person     string
	Entered    bool
	NotEntered string
	Outcome    string
	Timeline   []timelineEntry
	Traits     []kvRow
	Goal       string
}

type journeySimulateData struct {
	ID, Name string
	Form     simulateForm
	Error    string
	Result   *simulateResultView
}

// newSimulateForm prepares the form for a journey: identifier types and
// versions to choose from.
func (s *Server) newSimulateForm(c echo.Context, ws string, j journey.Journey) (simulateForm, []string, error) {
	w, err := s.Workspaces.Get(c.Request().Context(), ws)
	if err != nil {
		return simulateForm{}, nil, err
	}
	types := searchTypes(w.IdentityTraits)
	f := simulateForm{Errors: map[string]string{}}
	if j.Draft.Trigger.Type == journey.TriggerEvent {
		f.Trigger = j.Draft.Trigger.Event
	}
	f.Versions = []editChoice{{Value: "", Label: "The draft (what you are editing)"}}
	if j.PublishedVersion != nil {
		for v := *j.PublishedVersion; v >= 1 && v > *j.PublishedVersion-5; v-- {
			label := "Version " + strconv.Itoa(v)
			if v == *j.PublishedVersion {
				label += " (published)"
			}
			f.Versions = append(f.Versions, editChoice{Value: strconv.Itoa(v), Label: label})
		}
	}
	return f, types, nil
}

func (f *simulateForm) options(types []string) {
	f.Options = []identifierOption{{Type: "", Label: "Any identifier", Selected: f.Type == ""}}
	for _, t := range types {
		f.Options = append(f.Options, identifierOption{Type: t, Label: humanLabel(t), Selected: f.Type == t})
	}
	for i := range f.Versions {
		f.Versions[i].Selected = f.Versions[i].Value == f.Version
	}
}

func (s *Server) journeySimulatePage(c echo.Context, sess user.Session) error {
	ws := sess.User.WorkspaceID
	j, err := s.loadJourney(c, ws, c.Param("id"))
	if err != nil {
		return err
	}
	f, types, err := s.newSimulateForm(c, ws, j)
	if err != nil {
		return err
	}
	f.Person = strings.TrimSpace(c.QueryParam("person"))
	f.options(types)
	return s.renderSimulate(c, sess, http.StatusOK, journeySimulateData{ID: j.ID, Name: j.Name, Form: f})
}

// journeySimulateForm runs the simulation the form describes.
func (s *Server) journeySimulateForm(c echo.Context, sess user.Session) error {
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	j, err := s.loadJourney(c, ws, c.Param("id"))
	if err != nil {
		return err
	}
	f, types, err := s.newSimulateForm(c, ws, j)
	if err != nil {
		return err
	}
	f.Person, f.Type, f.ProfileID = strings.TrimSpace(c.FormValue("person")), c.FormValue("type"), c.FormValue("profile_id")
	f.Version, f.Traits, f.TriggerProps, f.Events = c.FormValue("version"), c.FormValue("traits"), c.FormValue("trigger_properties"), c.FormValue("events")
	if f.Type != "" && !slices.Contains(types, f.Type) {
		f.Type = ""
	}
	f.options(types)
	d := journeySimulateData{ID: j.ID, Name: j.Name, Form: f}
	req := simulateRequest{}
	if f.Version != "" {
		if req.Version, err = strconv.Atoi(f.Version); err != nil || req.Version < 1 {
			f.Errors["version"] = "choose the draft or one of the versions"
		}
	}
	// The person: the one chosen among several matches, else the identifier's.
	switch {
	case f.ProfileID != "" && isUUID(f.ProfileID):
		req.ProfileID = f.ProfileID
	case f.Person == "":
		f.Errors["person"] = "enter the email, phone number, user ID or another identifier of the person to simulate"
	default:
		ids, err := s.findProfiles(ctx, ws, types, f.Type, f.Person)
		if err != nil {
			return err
		}
		switch len(ids) {
		case 0:
			f.Errors["person"] = "no profile has this identifier: try an email, a phone number or a user ID"
		case 1:
			req.ProfileID = ids[0]
		default:
			for _, id := range ids {
				card, err := s.profileCard(ctx, ws, id)
				if err != nil {
					return err
				}
				f.Matches = append(f.Matches, card)
			}
			f.Errors["person"] = "several people have this identifier: choose one below"
		}
	}
	var bad string
	if req.Traits, bad = parseTraitLines(f.Traits); bad != "" {
		f.Errors["traits"] = bad
	}
	if req.Events, bad = parseEventLines(f.Events); bad != "" {
		f.Errors["events"] = bad
	}
	if f.Trigger != "" && req.Version == 0 {
		req.Trigger = &simulate.Event{Event: f.Trigger}
	} else if req.Version > 0 {
		if def, err := s.Journeys.Version(ctx, ws, j.ID, req.Version); err == nil && def.Trigger.Type == journey.TriggerEvent {
			req.Trigger = &simulate.Event{Event: def.Trigger.Event}
		}
	}
	if req.Trigger != nil && strings.TrimSpace(f.TriggerProps) != "" {
		if err := json.Unmarshal([]byte(f.TriggerProps), &req.Trigger.Properties); err != nil {
			f.Errors["trigger_properties"] = `write the properties as JSON, such as {"cart_id": "c1", "total": 42}`
		}
	}
	d.Form = f
	if len(f.Errors) > 0 {
		d.Error = "The simulation did not run: fix what is marked below."
		return s.renderSimulate(c, sess, http.StatusUnprocessableEntity, d)
	}
	res, err := s.runSimulation(ctx, ws, j.ID, req)
	var p *Problem
	if errors.As(err, &p) && p.Status == http.StatusUnprocessableEntity {
		d.Error = "The simulation did not run: " + simulateProblemWords(p)
		return s.renderSimulate(c, sess, http.StatusUnprocessableEntity, d)
	}
	if err != nil {
		return err
	}
	def := j.Draft
	if req.Version > 0 {
		if def, err = s.Journeys.Version(ctx, ws, j.ID, req.Version); err != nil {
			return err
		}
	}
	w, err := s.journeyWords(ctx, ws)
	if err != nil {
		return err
	}
	card, err := s.profileCard(ctx, ws, req.ProfileID)
	if err != nil {
		return err
	}
	d.Result = simulationTimeline(res, def, w, card.Label)
	return s.renderSimulate(c, sess, http.StatusOK, d)
}

// simulateProblemWords says what was wrong with a simulation request; a
// journey that is not valid points to the editor.
func simulateProblemWords(p *Problem) string {
	var parts []string
	for _, f := range p.Errors {
		switch {
		case strings.HasPrefix(f.Field, "events["):
			parts = append(parts, "event line "+eventLineOf(f.Field)+": "+f.Reason)
		default:
			parts = append(parts, fieldWords(f.Field)+": "+f.Reason)
		}
	}
	msg := p.Detail
	if p.Detail == "The journey is not valid." {
		msg = "the draft is not valid; fix it in the editor first."
	}
	if len(parts) > 0 {
		msg += " " + strings.Join(parts, "; ") + "."
	}
	return msg
}

func eventLineOf(field string) string {
	n, err := strconv.Atoi(strings.TrimSuffix(strings.SplitN(strings.TrimPrefix(field, "events["), "]", 2)[0], "]"))
	if err != nil {
		return "?"
	}
	return strconv.Itoa(n + 1)
}

func (s *Server) renderSimulate(c echo.Context, sess user.Session, status int, d journeySimulateData) error {
	return s.render(c, status, "journey_simulate.html", view{Title: "Simulate " + d.Name, Nav: "journeys", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// parseTraitLines reads "key = value" lines (values as in the editor:
// JSON when they are JSON, else text).
func parseTraitLines(src string) (map[string]any, string) {
	out := map[string]any{}
	for i, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, "line " + strconv.Itoa(i+1) + ": write one trait a line as name = value, such as plan = pro"
		}
		out[strings.TrimSpace(k)] = traitValue(strings.TrimSpace(v))
	}
	return out, ""
}

// parseEventLines reads "after event name" lines, with optional JSON
// properties at the end: `20m Order Completed {"cart_id": "c1"}`.
func parseEventLines(src string) ([]simulate.Event, string) {
	var out []simulate.Event
	for i, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		after, rest, _ := strings.Cut(line, " ")
		ev := simulate.Event{After: after}
		if k := strings.Index(rest, "{"); k >= 0 {
			if err := json.Unmarshal([]byte(rest[k:]), &ev.Properties); err != nil {
				return nil, "line " + strconv.Itoa(i+1) + `: the properties after the event's name must be JSON, such as {"cart_id": "c1"}`
			}
			rest = rest[:k]
		}
		ev.Event = strings.TrimSpace(rest)
		if _, err := journey.ParseDuration(after); err != nil || ev.Event == "" {
			return nil, "line " + strconv.Itoa(i+1) + ": write when, then the event, such as 20m Order Completed"
		}
		out = append(out, ev)
	}
	return out, ""
}

// simulationTimeline writes a simulation's result for people.
func simulationTimeline(res simulate.Result, def journey.Definition, w journeyWords, person string) *simulateResultView {
	v := &simulateResultView{Person: person, Entered: res.Entered, NotEntered: res.NotEntered}
	switch {
	case !res.Entered:
	case res.Outcome.Kind == journey.OutcomeStillWaiting:
		v.Outcome = "was still waiting when the simulation stopped, 90 days in"
	default:
		v.Outcome = outcomeWords(res.Outcome)
	}
	start := time.Time{}
	if len(res.Steps) > 0 {
		start = res.Steps[0].At
	} else if len(res.Events) > 0 {
		start = res.Events[0].At
	}
	after := func(t time.Time) string {
		d := t.Sub(start)
		if d <= 0 {
			return "at once"
		}
		return "after " + spokenDuration(d)
	}
	nodes := map[string]journey.Node{}
	for _, n := range def.Nodes {
		nodes[n.ID] = n
	}
	waits := map[string]simulate.Wait{}
	for _, wt := range res.Waits {
		waits[wt.Node+"@"+wt.From.String()] = wt
	}
	type timed struct {
		at    time.Time
		order int
		e     timelineEntry
	}
	var all []timed
	for _, ev := range res.Events {
		all = append(all, timed{ev.At, 0, timelineEntry{Kind: "Event", Text: "“" + ev.Event + "” is recorded"}})
	}
	used := map[int]bool{}
	for _, st := range res.Steps {
		n := nodes[st.Node]
		words := w.step(n)
		e := timelineEntry{Kind: words.Kind, Text: words.Text}
		if wt, ok := waits[st.Node+"@"+st.At.String()]; ok {
			e.Detail = waitWords(wt, n)
		}
		// The step's message, as it would go, shown with the step (a step
		// passed twice sends twice: each message goes with one pass).
		for i := range res.Messages {
			m := res.Messages[i]
			if m.Node != st.Node || used[i] {
				continue
			}
			used[i], e.Message = true, &m
			switch {
			case m.URL != "":
				e.Detail = "the profile would be posted to " + m.URL
			case m.Skipped != "":
				e.Detail = "it would not go: " + m.Skipped
			default:
				e.Detail = "to " + m.To
			}
		}
		all = append(all, timed{st.At, 1, e})
	}
	slices.SortStableFunc(all, func(a, b timed) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.order - b.order
	})
	for _, t := range all {
		t.e.At, t.e.After = fmtTime(t.at), after(t.at)
		v.Timeline = append(v.Timeline, t.e)
	}
	for _, k := range sortedTraitKeys(res.Traits) {
		v.Traits = append(v.Traits, kvRow{Key: k, Value: traitText(res.Traits[k])})
	}
	if res.Goal != nil {
		v.Goal = "Converted: “" + res.Goal.Event + "” came within the goal's window"
		if res.Goal.AttributedTo != "" {
			v.Goal += ", credited to the step " + res.Goal.AttributedTo
		}
	}
	return v
}

// waitWords says how a wait ended.
func waitWords(wt simulate.Wait, n journey.Node) string {
	long := spokenDuration(wt.To.Sub(wt.From))
	switch wt.Resolution.How {
	case simulate.EndTimer:
		return "waited " + long
	case simulate.EndEvent:
		return "“" + n.Event + "” came after " + long
	case simulate.EndTimeout:
		return "“" + n.Event + "” did not come within " + humanDuration(n.Timeout) + ": went the timeout way"
	case simulate.EndMissingDate:
		return "the profile has no such date (or it has passed)"
	case simulate.EndStillWaiting:
		return "still waiting when the simulation stopped"
	}
	return "the run ended during the wait: " + outcomeWords(wt.Resolution.Run)
}

// spokenDuration writes a duration as people say it: 2 days 3 hours.
func spokenDuration(d time.Duration) string {
	if d < time.Minute {
		return humanDuration(strconv.Itoa(int(d.Seconds())) + "s")
	}
	days, rest := int(d/(24*time.Hour)), d%(24*time.Hour)
	hours, mins := int(rest/time.Hour), int(rest%time.Hour/time.Minute)
	var parts []string
	if days > 0 {
		parts = append(parts, humanDuration(strconv.Itoa(days)+"d"))
	}
	if hours > 0 {
		parts = append(parts, humanDuration(strconv.Itoa(hours)+"h"))
	}
	if mins > 0 && days == 0 {
		parts = append(parts, humanDuration(strconv.Itoa(mins)+"m"))
	}
	if len(parts) == 0 {
		return "0 minutes"
	}
	return strings.Join(parts, " ")
}

package api

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/journey"
	tpl "github.com/parcours/parcours/pkg/template"
	"github.com/parcours/parcours/pkg/user"
)

// journeyWords names a journey's steps, trigger and ways in words a
// marketer reads: template and segment names instead of slugs, durations
// in days and hours.
type journeyWords struct {
	templates map[string]string // slug → name
	segments  map[string]string // slug → name
}

func (s *Server) journeyWords(ctx context.Context, ws string) (journeyWords, error) {
	w := journeyWords{templates: map[string]string{}, segments: map[string]string{}}
	if s.Templates != nil {
		ts, err := s.Templates.List(ctx, ws)
		if err != nil {
			return w, err
		}
		for _, t := range ts {
			w.templates[t.Slug] = t.Name
		}
	}
	if s.Segments != nil {
		segs, err := s.Segments.List(ctx, ws)
		if err != nil {
			return w, err
		}
		for _, sg := range segs {
			w.segments[sg.Slug] = sg.Name
		}
	}
	return w, nil
}

// humanDuration writes a journey duration in words: 2d → 2 days, 1h → 1 hour.
func humanDuration(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	units := map[byte]string{'s': "second", 'm': "minute", 'h': "hour", 'd': "day", 'w': "week"}
	unit, ok := units[s[len(s)-1]]
	n, err := strconv.Atoi(s[:len(s)-1])
	if !ok || err != nil {
		return s
	}
	if n != 1 {
		unit += "s"
	}
	return strconv.Itoa(n) + " " + unit
}

func (w journeyWords) template(slug string) string {
	if slug == "" {
		return "(no template chosen yet)"
	}
	if name, ok := w.templates[slug]; ok {
		return "“" + name + "”"
	}
	return "template " + slug + " (not created yet)"
}

func (w journeyWords) segment(slug string) string {
	if name, ok := w.segments[slug]; ok {
		return "“" + name + "”"
	}
	return "segment " + slug + " (not created yet)"
}

// trigger says what starts a run.
func (w journeyWords) trigger(d journey.Definition) string {
	t := d.Trigger
	var s string
	switch t.Type {
	case journey.TriggerEvent:
		switch t.Event {
		case "identify":
			s = "When a person is identified (an identify call)"
		case "page", "screen", "track", "group", "alias":
			s = "On every " + t.Event + " call"
		default:
			s = "When “" + t.Event + "” happens"
		}
	case journey.TriggerSegmentEntered:
		s = "When a person enters the segment " + w.segment(t.Segment)
	case journey.TriggerSegmentExited:
		s = "When a person leaves the segment " + w.segment(t.Segment)
	case journey.TriggerAPI:
		s = "When another system enters a person through the API"
	default:
		s = "Trigger " + t.Type
	}
	return s
}

// reEntry says how often a person may go through the journey.
func reEntry(e journey.Entry) string {
	switch e.ReEntry {
	case journey.ReEntryOnce:
		return "once per person"
	case journey.ReEntryOneAtATime:
		return "one run at a time per person"
	case journey.ReEntryEveryTime:
		return "every time it happens"
	case journey.ReEntryAfterCooldown:
		return "again after " + humanDuration(e.Cooldown)
	}
	return e.ReEntry
}

// step describes a node.
func (w journeyWords) step(n journey.Node) diagramStep {
	st := diagramStep{ID: n.ID, Counted: true, Class: "other"}
	switch n.Type {
	case journey.NodeSend:
		st.Class = "send"
		switch n.Channel {
		case "sms":
			st.Kind = "Text message"
		case "webhook":
			st.Kind = "Webhook message"
		default:
			st.Kind = "Email"
		}
		st.Text = "Send " + w.template(n.Template)
	case journey.NodeWait:
		st.Kind, st.Class = "Wait", "wait"
		switch {
		case n.Until != "":
			st.Text = "Until " + n.Until + " in their time zone"
			if len(n.Weekdays) > 0 {
				st.Text += " on " + strings.Join(n.Weekdays, ", ")
			}
		case n.Date != "":
			st.Text = "Until their " + humanLabel(strings.TrimPrefix(n.Date, "traits."))
			if off := strings.TrimSpace(n.Offset); off != "" && off != "0" {
				if strings.HasPrefix(off, "-") {
					st.Text = humanDuration(off[1:]) + " before their " + humanLabel(strings.TrimPrefix(n.Date, "traits."))
				} else {
					st.Text = humanDuration(strings.TrimPrefix(off, "+")) + " after their " + humanLabel(strings.TrimPrefix(n.Date, "traits."))
				}
			}
			if n.EveryYear {
				st.Text += ", every year"
			}
		default:
			st.Text = humanDuration(n.Duration)
		}
	case journey.NodeWaitForEvent:
		st.Kind, st.Class = "Wait for an event", "wait"
		st.Text = "“" + n.Event + "”, up to " + humanDuration(n.Timeout)
	case journey.NodeBranch:
		st.Kind, st.Class = "Check", "branch"
		st.Text = "Which way does the person go?"
	case journey.NodeSplit:
		st.Kind, st.Class = "Split", "branch"
		var parts []string
		for _, v := range n.Variants {
			parts = append(parts, v.Name+" "+strconv.Itoa(v.Weight)+"%")
		}
		st.Text = strings.Join(parts, " · ")
	case journey.NodeUpdateProfile:
		st.Kind = "Update profile"
		keys := make([]string, 0, len(n.Traits))
		for k := range n.Traits {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		st.Text = "Set " + strings.Join(keys, ", ")
	case journey.NodeWebhook:
		st.Kind = "Webhook"
		host := n.URL
		if u, err := url.Parse(n.URL); err == nil && u.Host != "" {
			host = u.Host
		}
		st.Text = "Post the profile to " + host
	case journey.NodeExit:
		st.Kind, st.Class = "End", "exit"
		st.Text = "The run ends here"
	default:
		st.Kind, st.Text = n.Type, n.ID
	}
	return st
}

// edge names a way between two steps.
func (w journeyWords) edge(d journey.Definition) func(journey.Edge) string {
	return func(e journey.Edge) string {
		var n journey.Node
		for _, x := range d.Nodes {
			if x.ID == e.From {
				n = x
			}
		}
		switch e.Kind {
		case journey.EdgeEvent:
			return "if “" + n.Event + "” comes"
		case journey.EdgeTimeout:
			return "after " + humanDuration(n.Timeout)
		case journey.EdgeBranch:
			return "if " + e.Label
		case journey.EdgeElse:
			return "otherwise"
		case journey.EdgeVariant:
			return e.Label
		case journey.EdgeOnMissing:
			return "if they have no date"
		}
		return ""
	}
}

// endReason says how a run ended, from its recorded end_reason.
func endReason(r string) string { return outcomeWords(journey.ParseOutcome(r)) }

// outcomeWords says how a run ended.
func outcomeWords(o journey.Outcome) string {
	switch o.Kind {
	case journey.OutcomeCompleted:
		return "reached the end"
	case journey.OutcomeGoal:
		return "reached the goal"
	case journey.OutcomeRemoved:
		return "removed by hand"
	case journey.OutcomeMerged:
		return "profile merged"
	case journey.OutcomeExited:
		return "left on " + humanLabel(o.Exit)
	}
	return o.String()
}

// funnelRow is one step of the funnel table: the runs that went through
// it, and for a message step what its messages did (pkg/report, since the
// journey was created).
type funnelRow struct {
	diagramStep
	Share                            string
	Message                          bool
	Sent, Opened, Clicked, Converted int
	OpenShare, ClickShare            string
	RunsURL                          string
}

type endRow struct {
	Reason string
	Count  int
}

// journeyPageData is the journey page's data.
type journeyPageData struct {
	ID, Name, Status, StatusKey string
	Version                     int
	Trigger, ReEntry, Goal      string
	Diagram                     template.HTML
	Funnel                      []funnelRow
	Ended                       []endRow
	Entered, Running            int
	Runs                        []runRow
	RunsURL                     string
	CanEdit                     bool
	// Impact of publishing the draft (nil when the draft is what runs).
	Impact     *journey.Impact
	CanPublish bool
	Notice     string
	Missing    []string
	// Converted counts the journey's conversions (its goal).
	Converted int
	Simulate  simulateForm
}

func (s *Server) loadJourney(c echo.Context, ws, id string) (journey.Journey, error) {
	if !isUUID(id) {
		return journey.Journey{}, problem(http.StatusNotFound, "There is no such journey in this workspace.")
	}
	j, err := s.Journeys.Get(c.Request().Context(), ws, id)
	if errors.Is(err, journey.ErrNotFound) {
		return j, problem(http.StatusNotFound, "There is no such journey in this workspace.")
	}
	return j, err
}

func (s *Server) journeyPage(c echo.Context, sess user.Session) error {
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	j, err := s.loadJourney(c, ws, c.Param("id"))
	if err != nil {
		return err
	}
	w, err := s.journeyWords(ctx, ws)
	if err != nil {
		return err
	}
	// The diagram shows what runs: the published version, else the draft.
	def := j.Draft
	d := journeyPageData{ID: j.ID, Name: j.Name, Status: journeyStatusLabels[j.Status], StatusKey: j.Status,
		RunsURL: s.journeyRunsURL(j.ID), CanEdit: sess.User.Role.Allows(user.RoleMarketer)}
	if j.PublishedVersion != nil {
		d.Version = *j.PublishedVersion
		if def, err = s.Journeys.Version(ctx, ws, j.ID, d.Version); err != nil {
			return err
		}
	}
	impact, err := s.Journeys.Impact(ctx, ws, j.ID)
	if err != nil {
		return err
	}
	// A draft whose trigger, entry rules, exits or goal changed has
	// something to publish too, though no step changed.
	if j.PublishedVersion == nil || len(impact.Added)+len(impact.Removed)+len(impact.Changed) > 0 || !sameDefinition(def, j.Draft) {
		d.Impact, d.CanPublish = &impact, true
	}
	d.Trigger, d.ReEntry = w.trigger(def), reEntry(def.Entry)
	if def.Entry.Filter != "" {
		d.Trigger += ", if " + def.Entry.Filter
	}
	if def.Goal != nil {
		d.Goal = "“" + def.Goal.Event + "” within " + humanDuration(def.Goal.Within) + " of entering"
	}
	st, err := s.Journeys.Stats(ctx, ws, j.ID)
	if err != nil {
		return err
	}
	d.Entered = st.Entered
	for _, n := range st.AtNode {
		d.Running += n
	}
	steps := map[string]diagramStep{"": {Kind: "Start", Text: d.Trigger, Class: "start"}}
	for _, n := range def.Nodes {
		step := w.step(n)
		step.Passed, step.Here = st.Visited[n.ID], st.AtNode[n.ID]
		step.Link = "/journeys/" + url.PathEscape(j.ID) + "/runs?node=" + url.QueryEscape(n.ID)
		steps[n.ID] = step
	}
	d.Diagram = diagramSVG(def, steps, w.edge(def))
	if d.Funnel, d.Converted, err = s.journeyFunnel(ctx, ws, j, def, steps, d.Entered); err != nil {
		return err
	}
	if d.Simulate, _, err = s.newSimulateForm(c, ws, j); err != nil {
		return err
	}
	for reason, n := range st.Ended {
		d.Ended = append(d.Ended, endRow{Reason: endReason(reason), Count: n})
	}
	slices.SortFunc(d.Ended, func(a, b endRow) int { return b.Count - a.Count })
	sc := journey.Scenario{Definition: def, Segment: def.Trigger.Segment}
	for _, n := range def.Nodes {
		if n.Type == journey.NodeSend && !slices.Contains(sc.Templates, n.Template) {
			sc.Templates = append(sc.Templates, n.Template)
		}
	}
	if d.Missing, err = s.scenarioMissing(ctx, ws, sc); err != nil {
		return err
	}
	runs, err := s.Journeys.Runs(ctx, ws, j.ID, 50)
	if err != nil {
		return err
	}
	labels := map[string]string{}
	for _, r := range runs {
		rr := runRow{ProfileID: r.ProfileID, EnteredAt: r.EnteredAt, URL: s.runURL(r.WorkflowID, r.RunID), Ended: r.EndedAt != nil}
		if rr.Profile, err = s.cachedLabel(ctx, labels, ws, r.ProfileID); err != nil {
			return err
		}
		switch {
		case r.EndReason != nil:
			rr.Where = "Ended: " + endReason(*r.EndReason)
		case r.Node != nil:
			st := steps[*r.Node]
			rr.Where = "At: " + st.Kind + " — " + st.Text
		default:
			rr.Where = "Starting"
		}
		d.Runs = append(d.Runs, rr)
	}
	switch c.QueryParam("done") {
	case "created":
		d.Notice = "The journey is created as a draft. Check it below, then publish it to start it."
	case "publish":
		d.Notice = "Published: new people enter this version from now on."
		if d.Version > 1 {
			d.Notice += " Runs in flight finish on the version they started on."
		}
	case "pause":
		d.Notice = "Paused: nobody new enters; runs in flight go on."
	case "resume":
		d.Notice = "Resumed: people enter again."
	}
	return s.render(c, http.StatusOK, "journey.html", view{Title: j.Name, Nav: "journeys", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// journeyAction publishes, pauses or resumes a journey from its page.
func (s *Server) journeyAction(action string) pageHandler {
	return func(c echo.Context, sess user.Session) error {
		ctx := c.Request().Context()
		ws := sess.User.WorkspaceID
		j, err := s.loadJourney(c, ws, c.Param("id"))
		if err != nil {
			return err
		}
		switch action {
		case "publish":
			if ok, err := s.confirmPublish(c, sess, j); !ok || err != nil {
				return err
			}
			_, err = s.Journeys.Publish(ctx, ws, j.ID)
		case "pause":
			_, err = s.Journeys.SetStatus(ctx, ws, j.ID, "paused")
		case "resume":
			_, err = s.Journeys.SetStatus(ctx, ws, j.ID, "live")
		}
		var ve *journey.ValidationError
		switch {
		case errors.As(err, &ve):
			msgs := make([]string, len(ve.Errors))
			for i, f := range ve.Errors {
				msgs[i] = f.Field + ": " + f.Reason
			}
			return problem(http.StatusUnprocessableEntity, "The journey cannot be published: "+strings.Join(msgs, "; ")+".")
		case errors.Is(err, journey.ErrNeverPublished):
			return problem(http.StatusConflict, "Publish the journey first.")
		case err != nil:
			return err
		}
		return c.Redirect(http.StatusSeeOther, "/journeys/"+url.PathEscape(j.ID)+"?done="+action)
	}
}

// pct writes n out of total as a whole percentage ("—" when total is 0).
func pct(n, total int) string {
	if total == 0 {
		return "—"
	}
	return strconv.Itoa((n*100+total/2)/total) + "%"
}

// scenarioForm is the form of one scenario.
type scenarioForm struct {
	Name, Title, Description string
	JourneyName              string
	// TriggerEvent is set for event-triggered scenarios.
	TriggerEvent string
	EventChoices []string
	// Segment is set for segment-triggered scenarios.
	Segment     string
	SegmentName string
	Segments    []segmentRow
	// SegmentRule is the rule of the segment the form offers to create.
	SegmentRule string
	Trigger     string
	Waits       []scenarioWait
	Sends       []scenarioSend
	Steps       []string
	Errors      map[string]string
	Error       string
}

type scenarioWait struct{ Node, Label, Value string }

// scenarioSend is a send node: the template it sends, existing or to create.
type scenarioSend struct {
	Node, Label, Slug string
	// Default is the starter template offered for the slug, if any.
	DefaultName string
	Exists      bool
	Options     []templateOption
}

type templateOption struct {
	Slug, Name string
	Selected   bool
}

type newJourneyData struct {
	Scenarios []journey.Scenario
	Form      *scenarioForm
	CanEdit   bool
	// Scratch is the "Start from scratch" form (refused input kept).
	Scratch scratchForm
}

// scratchForm creates an empty journey to build in the editor.
type scratchForm struct {
	Name, TriggerEvent, Error string
}

// createDefault is the value of a template (or segment) choice that asks
// for the starter one, created with the journey.
const createDefault = "__create__"

// defaultSegmentRules are the rules the scenario form offers for the
// segments scenarios start on.
var defaultSegmentRules = map[string]struct{ Name, Rule string }{
	"customers": {"Customers", "profile.order_count >= 1"},
}

func (s *Server) scenarioForm(c echo.Context, ws string, sc journey.Scenario) (*scenarioForm, error) {
	ctx := c.Request().Context()
	w, err := s.journeyWords(ctx, ws)
	if err != nil {
		return nil, err
	}
	f := &scenarioForm{Name: sc.Name, Title: sc.Title, Description: sc.Description, JourneyName: sc.Definition.Name, Errors: map[string]string{}}
	def := sc.Definition
	switch def.Trigger.Type {
	case journey.TriggerEvent:
		f.TriggerEvent = def.Trigger.Event
		f.EventChoices = []string{def.Trigger.Event, "identify"}
	case journey.TriggerSegmentEntered, journey.TriggerSegmentExited:
		f.Segment = def.Trigger.Segment
		if f.Segments, err = s.segmentRows(c, ws); err != nil {
			return nil, err
		}
		if _, ok := w.segments[f.Segment]; !ok {
			if r, ok := defaultSegmentRules[f.Segment]; ok {
				f.SegmentName, f.SegmentRule = r.Name, r.Rule
			}
		}
	}
	f.Trigger = w.trigger(def)
	ts, err := s.Templates.List(ctx, ws)
	if err != nil {
		return nil, err
	}
	for _, n := range def.Nodes {
		switch {
		case n.Type == journey.NodeWait && n.Until == "" && n.Date == "":
			f.Waits = append(f.Waits, scenarioWait{Node: n.ID, Label: "Wait (" + w.step(n).Text + " by default)", Value: n.Duration})
		case n.Type == journey.NodeWaitForEvent:
			f.Waits = append(f.Waits, scenarioWait{Node: n.ID, Label: "Wait for “" + n.Event + "” at most", Value: n.Timeout})
		case n.Type == journey.NodeSend:
			snd := scenarioSend{Node: n.ID, Slug: n.Template, Label: "Email " + strconv.Itoa(len(f.Sends)+1)}
			if dt, ok := tpl.Default(n.Template); ok {
				snd.DefaultName = dt.Name
			}
			for _, t := range ts {
				if t.Channel != "email" || (t.Kind != "" && t.Kind != tpl.KindMessage) {
					continue // partials and layouts are not sent on their own
				}
				snd.Options = append(snd.Options, templateOption{Slug: t.Slug, Name: t.Name, Selected: t.Slug == n.Template})
				snd.Exists = snd.Exists || t.Slug == n.Template
			}
			f.Sends = append(f.Sends, snd)
		}
	}
	for _, row := range def.Layout().Layers {
		for _, id := range row {
			for _, n := range def.Nodes {
				if n.ID == id {
					st := w.step(n)
					f.Steps = append(f.Steps, st.Kind+": "+st.Text)
				}
			}
		}
	}
	return f, nil
}

func (s *Server) newJourneyPage(c echo.Context, sess user.Session) error {
	d := newJourneyData{CanEdit: sess.User.Role.Allows(user.RoleMarketer)}
	for _, n := range journey.Scenarios() {
		sc, err := journey.LoadScenario(n)
		if err != nil {
			return err
		}
		d.Scenarios = append(d.Scenarios, sc)
	}
	if name := c.QueryParam("scenario"); name != "" {
		sc, err := journey.LoadScenario(name)
		if err != nil {
			return problem(http.StatusNotFound, "There is no such scenario. Choose one of the list.")
		}
		if d.Form, err = s.scenarioForm(c, sess.User.WorkspaceID, sc); err != nil {
			return err
		}
	}
	return s.render(c, http.StatusOK, "journey_new.html", view{Title: "New journey", Nav: "journeys", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// createJourneyForm creates a journey draft from a scenario and the form's
// choices: its name, trigger, waits, and for each email an existing
// template or the starter one, created now.
func (s *Server) createJourneyForm(c echo.Context, sess user.Session) error {
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	sc, err := journey.LoadScenario(c.FormValue("scenario"))
	if err != nil {
		return problem(http.StatusNotFound, "There is no such scenario. Choose one of the list.")
	}
	form, err := s.scenarioForm(c, ws, sc)
	if err != nil {
		return err
	}
	adj := journey.Adjustments{Name: c.FormValue("name"), TriggerEvent: c.FormValue("trigger_event"),
		Durations: map[string]string{}, Templates: map[string]string{}}
	form.JourneyName = strings.TrimSpace(adj.Name)
	if form.TriggerEvent != "" {
		form.TriggerEvent = strings.TrimSpace(adj.TriggerEvent)
		if form.TriggerEvent == "" {
			form.Errors["trigger_event"] = "name the event that starts the journey, e.g. Signed Up"
		}
	}
	for i, wt := range form.Waits {
		v := strings.TrimSpace(c.FormValue("duration_" + wt.Node))
		form.Waits[i].Value = v
		if _, err := journey.ParseDuration(v); err != nil {
			form.Errors["duration_"+wt.Node] = "write a duration such as 30m, 2h, 2d or 1w"
			continue
		}
		adj.Durations[wt.Node] = v
	}
	var create []tpl.Template
	for i, snd := range form.Sends {
		v := c.FormValue("template_" + snd.Node)
		if v == createDefault {
			dt, ok := tpl.Default(snd.Slug)
			if !ok {
				form.Errors["template_"+snd.Node] = "there is no starter template for this email: choose an existing one"
				continue
			}
			if !snd.Exists {
				create = append(create, dt)
			}
			adj.Templates[snd.Node] = snd.Slug
			continue
		}
		found := false
		for j, o := range snd.Options {
			form.Sends[i].Options[j].Selected = o.Slug == v
			found = found || o.Slug == v
		}
		if !found {
			form.Errors["template_"+snd.Node] = "choose one of the templates, or the starter template"
			continue
		}
		adj.Templates[snd.Node] = v
	}
	var newSegment bool
	if form.Segment != "" {
		v := c.FormValue("segment")
		switch {
		case v == createDefault && form.SegmentRule != "":
			newSegment = true
		case slices.ContainsFunc(form.Segments, func(r segmentRow) bool { return r.Slug == v }):
			adj.Segment = v
		default:
			form.Errors["segment"] = "choose the segment whose new members the journey thanks"
		}
	}
	if form.JourneyName == "" || len(form.JourneyName) > 200 {
		form.Errors["name"] = "give the journey a name of 1 to 200 characters"
	}
	if bad := sc.Adjust(adj); len(bad) > 0 {
		for _, f := range bad {
			form.Errors[strings.ReplaceAll(f.Field, ".", "_")] = f.Reason
		}
	}
	if len(form.Errors) > 0 {
		form.Error = "The journey was not created: fix what is marked below."
		return s.render(c, http.StatusUnprocessableEntity, "journey_new.html", view{Title: "New journey", Nav: "journeys", User: &sess.User, CSRF: sess.CSRF,
			D: newJourneyData{Form: form, CanEdit: true}})
	}
	if newSegment {
		r := defaultSegmentRules[form.Segment]
		sg, err := s.Segments.Create(ctx, ws, form.Segment, r.Name, r.Rule)
		if err != nil {
			return fmt.Errorf("create segment %s: %w", form.Segment, err)
		}
		s.startRecompute(c, ws, "created/"+sg.ID)
	}
	for _, t := range create {
		if _, err := s.Templates.Create(ctx, ws, t); err != nil && !errors.Is(err, tpl.ErrSlugTaken) {
			return fmt.Errorf("create starter template %s: %w", t.Slug, err)
		}
	}
	j, err := s.Journeys.Create(ctx, ws, sc.Definition)
	if err != nil {
		return journeyProblem(err)
	}
	return c.Redirect(http.StatusSeeOther, "/journeys/"+url.PathEscape(j.ID)+"?done=created")
}

package api

import (
	"encoding/json"
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
	"sigs.k8s.io/yaml"

	"github.com/parcours/parcours/pkg/journey"
	tpl "github.com/parcours/parcours/pkg/template"
	"github.com/parcours/parcours/pkg/user"
)

// The journey editor (/journeys/:id/edit) edits a journey's draft: a
// structured form with one fieldset per step, or, under "Advanced", the
// whole definition as YAML. Both are checked by journey.Validate on save,
// and the errors are shown next to the step and field at fault. Saving
// replaces the draft only: as the API does, the published version keeps
// running until the draft is published as the next version.
//
// Adding and removing steps re-renders the form without saving, so that a
// half-built journey is never stored (UpdateDraft refuses one anyway).

// stepKinds are the kinds of step the editor adds, in the order offered.
var stepKinds = []struct{ Type, Label, Base string }{
	{journey.NodeSend, "Send a message", "send"},
	{journey.NodeWait, "Wait", "wait"},
	{journey.NodeWaitForEvent, "Wait for an event", "wait_event"},
	{journey.NodeBranch, "Check a condition (branch)", "check"},
	{journey.NodeSplit, "Split people at random (A/B test)", "split"},
	{journey.NodeUpdateProfile, "Update the profile", "update"},
	{journey.NodeWebhook, "Call a webhook", "webhook"},
	{journey.NodeExit, "End the run", "end"},
}

func stepKindLabel(typ string) string {
	for _, k := range stepKinds {
		if k.Type == typ {
			return k.Label
		}
	}
	return typ
}

// editChoice is one option of a select.
type editChoice struct {
	Value, Label string
	Selected     bool
}

// editProblem is one error of the editor, in words, with the place to fix it.
type editProblem struct {
	Where, Reason, Anchor string
}

// nodeEdit is one step's fieldset.
type nodeEdit struct {
	I int
	// P prefixes the step's form fields ("n0."), IDP their element ids ("f-n0-").
	P, IDP   string
	N        journey.Node
	Kind     string
	Summary  string
	WaitMode string
	// DateTrait is the wait's date trait without its "traits." prefix.
	DateTrait string
	Branches  []journey.Branch
	Variants  []variantRow
	Traits    []kvRow
	Weekdays  []editChoice
	// Errors by field under the step ("" for the step as a whole).
	Errors map[string]string
}

type variantRow struct{ Name, Weight, Next string }

type kvRow struct{ Key, Value string }

// journeyEditData is the editor page's data.
type journeyEditData struct {
	ID, Name, Status, StatusKey string
	// Version is the published version (0 when never published).
	Version int
	Def     journey.Definition
	Nodes   []nodeEdit
	Exits   []journey.Exit
	Goal    journey.Goal
	// Errors of the journey's own fields, by form field name.
	Errors   map[string]string
	Problems []editProblem
	Notice   string
	Error    string
	YAML     string
	YAMLOpen bool
	// Diagram draws the saved draft.
	Diagram template.HTML
	// Changed says the saved draft differs from the published version.
	Changed bool
	Kinds   []editChoice
	steps   []editChoice
	tpls    []tpl.Template
	segs    map[string]string
}

// StepsFor lists the steps a "next" select offers, cur selected.
func (d journeyEditData) StepsFor(cur string) []editChoice {
	out := []editChoice{{Value: "", Label: "Choose a step…", Selected: cur == ""}}
	found := cur == ""
	for _, st := range d.steps {
		st.Selected = st.Value == cur
		found = found || st.Selected
		out = append(out, st)
	}
	if !found {
		out = append(out, editChoice{Value: cur, Label: cur + " (no such step)", Selected: true})
	}
	return out
}

// AfterChoices lists where "Add a step" may insert one: first, or after a
// step with a single way out.
func (d journeyEditData) AfterChoices() []editChoice {
	out := []editChoice{{Value: "", Label: "At the start"}}
	for i, n := range d.Def.Nodes {
		switch n.Type {
		case journey.NodeWaitForEvent, journey.NodeBranch, journey.NodeSplit, journey.NodeExit:
			continue
		}
		out = append(out, editChoice{Value: strconv.Itoa(i), Label: "After " + d.steps[i].Label})
	}
	if len(out) > 1 {
		out[len(out)-1].Selected = true
	}
	return out
}

// TemplatesFor lists the message templates a send step may use, slug selected.
func (d journeyEditData) TemplatesFor(slug string) []editChoice {
	out := []editChoice{{Value: "", Label: "Choose a template…", Selected: slug == ""}}
	found := slug == ""
	for _, t := range d.tpls {
		if t.Kind != "" && t.Kind != tpl.KindMessage {
			continue // partials and layouts are not sent on their own
		}
		c := editChoice{Value: t.Slug, Label: t.Name + " (" + t.Channel + ")", Selected: t.Slug == slug}
		found = found || c.Selected
		out = append(out, c)
	}
	if !found {
		out = append(out, editChoice{Value: slug, Label: slug + " (not created yet)", Selected: true})
	}
	return out
}

// SegmentsFor lists the workspace's segments, slug selected.
func (d journeyEditData) SegmentsFor(slug string) []editChoice {
	out := []editChoice{{Value: "", Label: "Choose a segment…", Selected: slug == ""}}
	found := slug == ""
	keys := make([]string, 0, len(d.segs))
	for k := range d.segs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c := editChoice{Value: k, Label: d.segs[k], Selected: k == slug}
		found = found || c.Selected
		out = append(out, c)
	}
	if !found {
		out = append(out, editChoice{Value: slug, Label: slug + " (not created yet)", Selected: true})
	}
	return out
}

// Choose marks value selected among fixed options given as value|label pairs.
func (d journeyEditData) Choose(value string, pairs ...string) []editChoice {
	var out []editChoice
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, editChoice{Value: pairs[i], Label: pairs[i+1], Selected: pairs[i] == value})
	}
	return out
}

// editForm is the editor's state: the definition the form describes, each
// wait's mode, and errors found while reading it.
type editForm struct {
	def   journey.Definition
	modes []string
	errs  []editErr
}

// editErr is an error at a step (Node >= 0) or at the journey (Node -1).
type editErr struct {
	Node          int
	Field, Reason string
	Line, Column  int
}

func (s *Server) journeyEditPage(c echo.Context, sess user.Session) error {
	j, err := s.loadJourney(c, sess.User.WorkspaceID, c.Param("id"))
	if err != nil {
		return err
	}
	f := editForm{def: j.Draft}
	f.def.Nodes = inDiagramOrder(j.Draft)
	var notice string
	switch c.QueryParam("done") {
	case "created":
		notice = "The journey is created as a draft with a single step that ends it. Add the steps below, then save."
	case "saved":
		notice = "The draft is saved; the diagram shows it."
		if j.PublishedVersion != nil {
			notice += " People keep entering the published version until you publish the draft."
		}
	}
	return s.renderJourneyEdit(c, sess, http.StatusOK, j, f, notice, "", "")
}

// journeyEditForm saves the structured form (or the YAML, or adds or
// removes a step without saving).
func (s *Server) journeyEditForm(c echo.Context, sess user.Session) error {
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	j, err := s.loadJourney(c, ws, c.Param("id"))
	if err != nil {
		return err
	}
	action := c.FormValue("action")
	if action == "yaml" {
		return s.saveJourneyYAML(c, sess, j)
	}
	form, err := c.FormParams()
	if err != nil {
		return problem(http.StatusBadRequest, "The form could not be read. Reload the page and try again.")
	}
	f := readEditForm(form)
	switch {
	case action == "add":
		f.addStep(c.FormValue("add_kind"), c.FormValue("add_after"))
		return s.renderJourneyEdit(c, sess, http.StatusOK, j, f, "Step added below, not saved yet: fill it in, choose where it leads, then save.", "", "")
	case strings.HasPrefix(action, "remove:"):
		i, err := strconv.Atoi(strings.TrimPrefix(action, "remove:"))
		if err == nil && i >= 0 && i < len(f.def.Nodes) {
			f.removeStep(i)
		}
		return s.renderJourneyEdit(c, sess, http.StatusOK, j, f, "Step removed, not saved yet: the steps that led to it now lead to the one after it. Save to keep the change.", "", "")
	}
	if len(f.errs) == 0 {
		f.errs = validationEditErrs(f.def, journey.Validate(f.def))
	}
	if len(f.errs) > 0 {
		return s.renderJourneyEdit(c, sess, http.StatusUnprocessableEntity, j, f, "", "The draft was not saved: fix what is marked below.", "")
	}
	if _, err := s.Journeys.UpdateDraft(ctx, ws, j.ID, f.def); err != nil {
		if f.errs = validationEditErrs(f.def, err); len(f.errs) > 0 {
			return s.renderJourneyEdit(c, sess, http.StatusUnprocessableEntity, j, f, "", "The draft was not saved: fix what is marked below.", "")
		}
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/journeys/"+url.PathEscape(j.ID)+"/edit?done=saved")
}

// saveJourneyYAML saves the draft written as YAML (or JSON, which is YAML).
func (s *Server) saveJourneyYAML(c echo.Context, sess user.Session, j journey.Journey) error {
	src := c.FormValue("yaml")
	def, err := parseDefinitionYAML(src)
	if err == nil {
		_, err = s.Journeys.UpdateDraft(c.Request().Context(), sess.User.WorkspaceID, j.ID, def)
	}
	var ve *journey.ValidationError
	if errors.As(err, &ve) {
		// Listed under the YAML by path: the form below shows the saved draft.
		f := editForm{def: j.Draft}
		for _, fe := range ve.Errors {
			f.errs = append(f.errs, editErr{Node: -1, Field: fe.Field, Reason: fe.Reason, Line: fe.Line, Column: fe.Column})
		}
		return s.renderJourneyEdit(c, sess, http.StatusUnprocessableEntity, j, f, "", "The YAML was not saved: fix what is listed under it.", src)
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/journeys/"+url.PathEscape(j.ID)+"/edit?done=saved")
}

// parseDefinitionYAML reads a definition as the API's YAML body does.
func parseDefinitionYAML(src string) (journey.Definition, error) {
	raw, err := yaml.YAMLToJSON([]byte(src))
	if err != nil {
		return journey.Definition{}, &journey.ValidationError{Errors: []journey.FieldError{{Field: "(definition)", Reason: "is not a valid YAML document: " + err.Error()}}}
	}
	return journey.Parse(raw)
}

// createScratchJourney creates a draft with one step that ends the run,
// and opens it in the editor.
func (s *Server) createScratchJourney(c echo.Context, sess user.Session) error {
	name := strings.TrimSpace(c.FormValue("name"))
	event := strings.TrimSpace(c.FormValue("trigger_event"))
	def := journey.Definition{
		Name: name, Trigger: journey.Trigger{Type: journey.TriggerAPI},
		Entry: journey.Entry{ReEntry: journey.ReEntryOnce},
		Start: "end", Nodes: []journey.Node{{ID: "end", Type: journey.NodeExit}},
	}
	if event != "" {
		def.Trigger = journey.Trigger{Type: journey.TriggerEvent, Event: event}
	}
	if name == "" || len(name) > 200 {
		return s.renderScratchError(c, sess, name, event, "give the journey a name of 1 to 200 characters")
	}
	j, err := s.Journeys.Create(c.Request().Context(), sess.User.WorkspaceID, def)
	var ve *journey.ValidationError
	if errors.As(err, &ve) {
		return s.renderScratchError(c, sess, name, event, ve.Errors[0].Field+": "+ve.Errors[0].Reason)
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/journeys/"+url.PathEscape(j.ID)+"/edit?done=created")
}

func (s *Server) renderScratchError(c echo.Context, sess user.Session, name, event, msg string) error {
	d := newJourneyData{CanEdit: true, Scratch: scratchForm{Name: name, TriggerEvent: event, Error: msg}}
	for _, n := range journey.Scenarios() {
		sc, err := journey.LoadScenario(n)
		if err != nil {
			return err
		}
		d.Scenarios = append(d.Scenarios, sc)
	}
	return s.render(c, http.StatusUnprocessableEntity, "journey_new.html", view{Title: "New journey", Nav: "journeys", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// renderJourneyEdit renders the editor for the form state f; yamlSrc is
// the YAML to show when it was the YAML that failed.
func (s *Server) renderJourneyEdit(c echo.Context, sess user.Session, status int, j journey.Journey, f editForm, notice, errMsg, yamlSrc string) error {
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	w, err := s.journeyWords(ctx, ws)
	if err != nil {
		return err
	}
	d := journeyEditData{ID: j.ID, Name: j.Name, Status: journeyStatusLabels[j.Status], StatusKey: j.Status,
		Def: f.def, Errors: map[string]string{}, Notice: notice, Error: errMsg, segs: w.segments}
	if j.PublishedVersion != nil {
		d.Version = *j.PublishedVersion
		if pub, err := s.Journeys.Version(ctx, ws, j.ID, d.Version); err == nil {
			d.Changed = !sameDefinition(pub, j.Draft)
		}
	}
	if s.Templates != nil {
		if d.tpls, err = s.Templates.List(ctx, ws); err != nil {
			return err
		}
	}
	for _, k := range stepKinds {
		d.Kinds = append(d.Kinds, editChoice{Value: k.Type, Label: k.Label})
	}
	// The saved draft's diagram, without counts: nobody runs a draft.
	steps := map[string]diagramStep{"": {Kind: "Start", Text: w.trigger(j.Draft), Class: "start"}}
	for _, n := range j.Draft.Nodes {
		st := w.step(n)
		st.Counted = false
		steps[n.ID] = st
	}
	d.Diagram = diagramSVG(j.Draft, steps, w.edge(j.Draft))

	for i, n := range f.def.Nodes {
		st := w.step(n)
		d.steps = append(d.steps, editChoice{Value: n.ID, Label: n.ID + " · " + truncate(st.Kind+": "+st.Text, 60)})
		ne := nodeEdit{I: i, P: "n" + strconv.Itoa(i) + ".", IDP: "f-n" + strconv.Itoa(i) + "-", N: n, Kind: stepKindLabel(n.Type),
			Summary: st.Text, Errors: map[string]string{}}
		ne.WaitMode, ne.DateTrait = waitMode(n), strings.TrimPrefix(n.Date, "traits.")
		if i < len(f.modes) && f.modes[i] != "" {
			ne.WaitMode = f.modes[i]
		}
		ne.Branches = append(slices.Clone(n.Branches), journey.Branch{})
		for _, v := range n.Variants {
			ne.Variants = append(ne.Variants, variantRow{Name: v.Name, Weight: strconv.Itoa(v.Weight), Next: v.Next})
		}
		ne.Variants = append(ne.Variants, variantRow{})
		for _, k := range sortedTraitKeys(n.Traits) {
			ne.Traits = append(ne.Traits, kvRow{Key: k, Value: traitText(n.Traits[k])})
		}
		ne.Traits = append(ne.Traits, kvRow{})
		for _, day := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
			ne.Weekdays = append(ne.Weekdays, editChoice{Value: day, Label: humanLabel(day), Selected: slices.Contains(n.Weekdays, day)})
		}
		d.Nodes = append(d.Nodes, ne)
	}
	d.Exits = append(slices.Clone(f.def.Exits), journey.Exit{})
	if f.def.Goal != nil {
		d.Goal = *f.def.Goal
	}
	for _, e := range f.errs {
		p := editProblem{Reason: e.Reason}
		if e.Line > 0 {
			p.Reason += fmt.Sprintf(" (line %d, column %d)", e.Line, e.Column)
		}
		if e.Node >= 0 && e.Node < len(d.Nodes) {
			n := d.Nodes[e.Node]
			if _, dup := n.Errors[e.Field]; !dup {
				n.Errors[e.Field] = p.Reason
			}
			p.Where = "Step " + n.N.ID + " (" + n.Kind + ")"
			if e.Field != "" {
				p.Where += ", " + fieldWords(e.Field)
			}
			p.Anchor = "node-" + strconv.Itoa(e.Node)
		} else {
			p.Where, p.Anchor = fieldWords(e.Field), fieldAnchor(e.Field)
			if yamlSrc != "" {
				p.Anchor = "f-yaml"
			} else if _, dup := d.Errors[e.Field]; !dup {
				d.Errors[e.Field] = p.Reason
			}
		}
		d.Problems = append(d.Problems, p)
	}
	if yamlSrc != "" {
		d.YAML, d.YAMLOpen = yamlSrc, true
	} else if raw, err := yaml.Marshal(j.Draft); err == nil {
		d.YAML = string(raw)
	}
	return s.render(c, status, "journey_edit.html", view{Title: "Edit " + j.Name, Nav: "journeys", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// inDiagramOrder lists the steps as the diagram draws them, top to
// bottom, so that the form reads in the order people go through them.
// The order of nodes means nothing to a journey.
func inDiagramOrder(d journey.Definition) []journey.Node {
	byID := map[string]journey.Node{}
	for _, n := range d.Nodes {
		byID[n.ID] = n
	}
	var out []journey.Node
	seen := map[string]bool{}
	for _, layer := range d.Layout().Layers {
		for _, id := range layer {
			if n, ok := byID[id]; ok && !seen[id] {
				seen[id] = true
				out = append(out, n)
			}
		}
	}
	for _, n := range d.Nodes {
		if !seen[n.ID] {
			seen[n.ID] = true
			out = append(out, n)
		}
	}
	return out
}

// sameDefinition compares two definitions as stored.
func sameDefinition(a, b journey.Definition) bool {
	ra, _ := json.Marshal(a)
	rb, _ := json.Marshal(b)
	return string(ra) == string(rb)
}

func waitMode(n journey.Node) string {
	switch {
	case n.Date != "":
		return "date"
	case n.Until != "":
		return "until"
	}
	return "duration"
}

func sortedTraitKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// traitText writes a trait value as the form shows it: text as is, other
// values (and text that would read as one) as JSON.
func traitText(v any) string {
	if s, ok := v.(string); ok && !json.Valid([]byte(s)) {
		return s
	}
	raw, _ := json.Marshal(v)
	return string(raw)
}

// traitValue reads a trait value from the form: JSON when it is JSON
// (42, true, "42"), else the text itself.
func traitValue(s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err == nil {
		return v
	}
	return s
}

// fieldWords names a definition field in words.
func fieldWords(field string) string {
	words := map[string]string{
		"name": "Journey name", "trigger.type": "Starts when", "trigger.event": "Event that starts it",
		"trigger.segment": "Segment", "trigger.filter": "Only if the record matches", "trigger.correlation_key": "One run per",
		"entry.re_entry": "How often a person may enter", "entry.cooldown": "Cooldown", "entry.filter": "Only people who match",
		"start": "First step", "nodes": "Steps", "goal.event": "Goal event", "goal.within": "Goal window", "goal.filter": "Goal condition",
		"(definition)": "The definition",
	}
	if w, ok := words[field]; ok {
		return w
	}
	if rest, ok := strings.CutPrefix(field, "nodes["); ok {
		id, sub, _ := strings.Cut(rest, "]")
		field = "step " + id + strings.TrimPrefix(sub, ".")
		if sub != "" {
			field = "step " + id + " › " + strings.TrimPrefix(sub, ".")
		}
		return strings.ToUpper(field[:1]) + field[1:]
	}
	return strings.NewReplacer("_", " ", ".", " › ").Replace(field)
}

// fieldAnchor is the element id of a journey-level field in the editor.
func fieldAnchor(field string) string {
	if strings.HasPrefix(field, "exits") {
		return "exits"
	}
	return "f-" + strings.NewReplacer(".", "-", "[", "-", "]", "-").Replace(field)
}

// validationEditErrs places journey.Validate's errors: "nodes[email1].x"
// at step email1's field x, the rest at the journey's fields.
func validationEditErrs(d journey.Definition, err error) []editErr {
	var ve *journey.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []editErr
	for _, fe := range ve.Errors {
		e := editErr{Node: -1, Field: fe.Field, Reason: fe.Reason, Line: fe.Line, Column: fe.Column}
		if rest, ok := strings.CutPrefix(fe.Field, "nodes["); ok {
			if key, field, ok := strings.Cut(rest, "]"); ok {
				e.Node = nodeIndex(d, key, field == ".id")
				e.Field = strings.TrimPrefix(field, ".")
				e.Reason = formReason(e.Field, fe.Reason)
			}
		}
		out = append(out, e)
	}
	return out
}

// nodeIndex finds the step a validation path names: by id, or by position
// when the path is about the id itself (a bad or repeated id).
func nodeIndex(d journey.Definition, key string, byPosition bool) int {
	if i, err := strconv.Atoi(key); err == nil && byPosition && i < len(d.Nodes) {
		return i
	}
	for i, n := range d.Nodes {
		if n.ID == key {
			return i
		}
	}
	return -1
}

// formReason rewords a validation reason for the form, where a step is
// chosen from a list rather than typed as an id.
func formReason(field, reason string) string {
	switch {
	case strings.HasPrefix(reason, "is required: the id of the next node"):
		return "choose the step that comes next"
	case field == "template" && strings.HasPrefix(reason, "a send needs"):
		return "choose the template this step sends (create one on the Templates page)"
	case strings.HasPrefix(reason, "cannot be reached from start"):
		return "no step leads here: choose it as the next step of another one, or as the first step, or remove it"
	case field == "id":
		return "the step name " + reason + " (it names the step in the lists of next steps)"
	}
	return reason
}

// readEditForm reads the structured form into a definition. Fields of
// another kind of step are ignored, so a step holds only what it uses.
func readEditForm(f url.Values) editForm {
	get := func(k string) string { return strings.TrimSpace(f.Get(k)) }
	out := editForm{}
	d := journey.Definition{
		Name:    get("name"),
		Trigger: journey.Trigger{Type: get("trigger.type"), Filter: get("trigger.filter"), CorrelationKey: get("trigger.correlation_key")},
		Entry:   journey.Entry{ReEntry: get("entry.re_entry"), Filter: get("entry.filter")},
		Start:   get("start"),
	}
	switch d.Trigger.Type {
	case journey.TriggerEvent:
		d.Trigger.Event = get("trigger.event")
	case journey.TriggerSegmentEntered, journey.TriggerSegmentExited:
		d.Trigger.Segment = get("trigger.segment")
		d.Trigger.Filter, d.Trigger.CorrelationKey = "", ""
	default:
		d.Trigger.Filter, d.Trigger.CorrelationKey = "", ""
	}
	if d.Entry.ReEntry == journey.ReEntryAfterCooldown {
		d.Entry.Cooldown = get("entry.cooldown")
	}
	count, _ := strconv.Atoi(f.Get("nodes"))
	for i := 0; i < count && i < 500; i++ {
		n, mode, errs := readStep(f, i)
		d.Nodes = append(d.Nodes, n)
		out.modes = append(out.modes, mode)
		out.errs = append(out.errs, errs...)
	}
	for j := 0; j < 50; j++ {
		q := "exits[" + strconv.Itoa(j) + "]."
		if _, ok := f[q+"event"]; !ok {
			break
		}
		x := journey.Exit{Event: get(q + "event"), Filter: get(q + "filter")}
		if x.Event != "" || x.Filter != "" {
			d.Exits = append(d.Exits, x)
		}
	}
	if g := (journey.Goal{Event: get("goal.event"), Within: get("goal.within"), Filter: get("goal.filter")}); g != (journey.Goal{}) {
		d.Goal = &g
	}
	out.def = d
	return out
}

// readStep reads the i-th step of the form (fields "n<i>.…"), with its
// wait mode and what the form itself finds wrong.
func readStep(f url.Values, i int) (journey.Node, string, []editErr) {
	p := "n" + strconv.Itoa(i) + "."
	get := func(k string) string { return strings.TrimSpace(f.Get(k)) }
	g := func(k string) string { return get(p + k) }
	var errs []editErr
	fail := func(field, reason string) { errs = append(errs, editErr{Node: i, Field: field, Reason: reason}) }
	n := journey.Node{ID: g("id"), Type: g("type")}
	mode := ""
	switch n.Type {
	case journey.NodeSend:
		n.Channel, n.Template, n.Next = g("channel"), g("template"), g("next")
		if c := g("class"); c == journey.ClassTransactional {
			n.Class = c
		}
		if pol := g("on_policy"); pol == journey.PolicyDrop {
			n.OnPolicy = pol
		}
	case journey.NodeWait:
		n.Next = g("next")
		switch mode = g("wait_mode"); mode {
		case "until":
			n.Until, n.Weekdays = g("until"), f[p+"weekdays"]
			if n.Until == "" {
				fail("until", "give the time of day to wait for, such as 09:00")
			}
		case "date":
			n.Date, n.Offset, n.EveryYear, n.OnMissing = g("date"), g("offset"), g("every_year") != "", g("on_missing")
			if n.Date == "" {
				fail("date", "name the profile trait that holds the date, such as traits.renewal_at")
			} else if !strings.HasPrefix(n.Date, "traits.") {
				n.Date = "traits." + n.Date
			}
		default:
			mode, n.Duration = "duration", g("duration")
		}
	case journey.NodeWaitForEvent:
		n.Event, n.Match, n.Timeout, n.OnEvent, n.OnTimeout = g("event"), g("match"), g("timeout"), g("on_event"), g("on_timeout")
	case journey.NodeBranch:
		for j := 0; j < 50; j++ {
			q := p + "branches[" + strconv.Itoa(j) + "]."
			if _, ok := f[q+"condition"]; !ok {
				break
			}
			b := journey.Branch{Condition: get(q + "condition"), Next: get(q + "next")}
			if b.Condition != "" || b.Next != "" {
				n.Branches = append(n.Branches, b)
			}
		}
		n.Else = g("else")
	case journey.NodeSplit:
		for j := 0; j < 50; j++ {
			q := p + "variants[" + strconv.Itoa(j) + "]."
			if _, ok := f[q+"name"]; !ok {
				break
			}
			name, weight, next := get(q+"name"), get(q+"weight"), get(q+"next")
			if name == "" && weight == "" && next == "" {
				continue
			}
			w, err := strconv.Atoi(strings.TrimSuffix(weight, "%"))
			if err != nil {
				fail(fmt.Sprintf("variants[%d].weight", len(n.Variants)), "write the share of people as a whole number such as 50")
			}
			n.Variants = append(n.Variants, journey.Variant{Name: name, Weight: w, Next: next})
		}
	case journey.NodeUpdateProfile:
		n.Next = g("next")
		for j := 0; j < 50; j++ {
			q := p + "traits[" + strconv.Itoa(j) + "]."
			if _, ok := f[q+"key"]; !ok {
				break
			}
			k, v := get(q+"key"), get(q+"value")
			switch {
			case k == "" && v == "":
				continue
			case k == "":
				fail("traits", "name the trait that "+v+" is set on")
				continue
			}
			if n.Traits == nil {
				n.Traits = map[string]any{}
			}
			n.Traits[k] = traitValue(v)
		}
	case journey.NodeWebhook:
		n.URL, n.Next = g("url"), g("next")
		if pol := g("on_policy"); pol == journey.PolicyDrop {
			n.OnPolicy = pol
		}
	}
	return n, mode, errs
}

// addStep inserts a step of kind after the step at index after ("" for
// first): the new step leads where that one led.
func (f *editForm) addStep(kind, after string) {
	base := ""
	for _, k := range stepKinds {
		if k.Type == kind {
			base = k.Base
		}
	}
	if base == "" {
		return
	}
	id := base
	for i := 2; slices.ContainsFunc(f.def.Nodes, func(n journey.Node) bool { return n.ID == id }); i++ {
		id = base + "_" + strconv.Itoa(i)
	}
	prev := -1
	if i, err := strconv.Atoi(after); err == nil && i >= 0 && i < len(f.def.Nodes) {
		prev = i
	}
	then := f.def.Start
	if prev >= 0 {
		then = f.def.Nodes[prev].Next
	}
	n := journey.Node{ID: id, Type: kind}
	switch kind {
	case journey.NodeSend:
		n.Channel, n.Next = "email", then
	case journey.NodeWait:
		n.Duration, n.Next = "1d", then
	case journey.NodeWaitForEvent:
		n.Timeout, n.OnEvent, n.OnTimeout = "1d", then, then
	case journey.NodeBranch:
		n.Else = then
	case journey.NodeSplit:
		n.Variants = []journey.Variant{{Name: "A", Weight: 50, Next: then}, {Name: "B", Weight: 50, Next: then}}
	case journey.NodeExit:
	default:
		n.Next = then
	}
	if kind != journey.NodeExit {
		if prev >= 0 {
			f.def.Nodes[prev].Next = id
		} else {
			f.def.Start = id
		}
	}
	f.def.Nodes = append(f.def.Nodes, n)
	f.modes = append(f.modes, "")
	if kind == journey.NodeWait {
		f.modes[len(f.modes)-1] = "duration"
	}
}

// removeStep drops the step at i; the ways that led to it lead where it
// led (when it had a single way out), else nowhere until chosen again.
func (f *editForm) removeStep(i int) {
	gone := f.def.Nodes[i]
	then := ""
	if succ := gone.Successors(); len(succ) == 1 {
		then = succ[0]
	}
	f.def.Nodes = slices.Delete(f.def.Nodes, i, i+1)
	if i < len(f.modes) {
		f.modes = slices.Delete(f.modes, i, i+1)
	}
	swap := func(s *string) {
		if *s == gone.ID {
			*s = then
		}
	}
	swap(&f.def.Start)
	for k := range f.def.Nodes {
		n := &f.def.Nodes[k]
		for _, p := range []*string{&n.Next, &n.OnEvent, &n.OnTimeout, &n.Else, &n.OnMissing} {
			swap(p)
		}
		for b := range n.Branches {
			swap(&n.Branches[b].Next)
		}
		for v := range n.Variants {
			swap(&n.Variants[v].Next)
		}
	}
}

package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/user"
)

// Publishing the changed draft of a journey that already runs goes through
// a preview (/journeys/:id/publish): which steps the new version adds,
// changes and removes, and how many runs in flight sit on them. Those runs
// keep the version they started on; the marketer confirms knowing it. The
// figures are the API's publish preview (journey.Store.Impact).

// previewStep is a step of the preview, in words.
type previewStep struct {
	ID, Kind, Text string
	// Was says what a changed step did in the published version.
	Was string
}

// previewRuns is how many runs of a version are on a step now.
type previewRuns struct {
	Version      int
	Step, Change string
	Runs         int
	RunsURL      string
}

type publishPreviewData struct {
	ID, Name                string
	From, To                int
	Added, Changed, Removed []previewStep
	InFlight, OnChanged     int
	OnRemoved               int
	Runs                    []previewRuns
	Seen                    string
	Notice                  string
	Nothing                 bool
	// Also lists what else changes: the trigger, entry rules, exits, goal.
	Also []string
}

// draftStamp identifies the draft the marketer previewed, so that a draft
// saved meanwhile (another tab, a colleague) is not published unseen.
func draftStamp(j journey.Journey) string { return j.UpdatedAt.UTC().Format(time.RFC3339Nano) }

func (s *Server) publishPreviewPage(c echo.Context, sess user.Session) error {
	j, err := s.loadJourney(c, sess.User.WorkspaceID, c.Param("id"))
	if err != nil {
		return err
	}
	return s.renderPublishPreview(c, sess, http.StatusOK, j, "")
}

func (s *Server) renderPublishPreview(c echo.Context, sess user.Session, status int, j journey.Journey, notice string) error {
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	if j.PublishedVersion == nil {
		// Nothing runs yet: the journey page publishes it in one click.
		return c.Redirect(http.StatusSeeOther, "/journeys/"+url.PathEscape(j.ID))
	}
	impact, err := s.Journeys.Impact(ctx, ws, j.ID)
	if err != nil {
		return err
	}
	pub, err := s.Journeys.Version(ctx, ws, j.ID, *j.PublishedVersion)
	if err != nil {
		return err
	}
	w, err := s.journeyWords(ctx, ws)
	if err != nil {
		return err
	}
	d := publishPreviewData{ID: j.ID, Name: j.Name, From: *j.PublishedVersion, To: impact.ToVersion,
		InFlight: impact.RunsInFlight, OnChanged: impact.RunsOnChanged, OnRemoved: impact.RunsOnRemoved,
		Seen: draftStamp(j), Notice: notice}
	d.Nothing = len(impact.Added)+len(impact.Removed)+len(impact.Changed) == 0 && sameDefinition(pub, j.Draft)
	d.Also = otherChanges(pub, j.Draft, w)
	describe := func(def journey.Definition, id string) (previewStep, bool) {
		for _, n := range def.Nodes {
			if n.ID == id {
				st := w.step(n)
				return previewStep{ID: id, Kind: st.Kind, Text: st.Text}, true
			}
		}
		return previewStep{ID: id, Kind: "Step", Text: id}, false
	}
	for _, id := range impact.Added {
		st, _ := describe(j.Draft, id)
		d.Added = append(d.Added, st)
	}
	for _, id := range impact.Changed {
		st, _ := describe(j.Draft, id)
		old, _ := describe(pub, id)
		st.Was = old.Kind + ": " + old.Text
		if st.Was == st.Kind+": "+st.Text {
			st.Was = "the same words; a setting changed (see the editor)"
		}
		d.Changed = append(d.Changed, st)
	}
	for _, id := range impact.Removed {
		st, _ := describe(pub, id)
		d.Removed = append(d.Removed, st)
	}
	changes := map[string]string{journey.NodeUnchanged: "unchanged", journey.NodeChanged: "changed", journey.NodeRemoved: "removed"}
	for _, ni := range impact.Nodes {
		st, ok := describe(pub, ni.Node)
		if !ok {
			st, _ = describe(j.Draft, ni.Node)
		}
		text := st.Kind + ": " + st.Text
		if ni.Node == "" {
			text, ni.Change = "Starting", journey.NodeUnchanged
		}
		d.Runs = append(d.Runs, previewRuns{Version: ni.Version, Step: text, Change: changes[ni.Change], Runs: ni.Runs,
			RunsURL: "/journeys/" + url.PathEscape(j.ID) + "/runs?node=" + url.QueryEscape(ni.Node)})
	}
	return s.render(c, status, "journey_publish.html", view{Title: "Publish " + j.Name, Nav: "journeys", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// confirmPublish stands between the publish button and a journey that
// already runs: without the preview's confirmation, or when the draft
// changed since the preview, it shows the preview (again). It answers
// true when publishing may go ahead.
func (s *Server) confirmPublish(c echo.Context, sess user.Session, j journey.Journey) (bool, error) {
	if j.PublishedVersion == nil {
		return true, nil
	}
	if c.FormValue("confirm") != "yes" {
		return false, c.Redirect(http.StatusSeeOther, "/journeys/"+url.PathEscape(j.ID)+"/publish")
	}
	if c.FormValue("seen") != draftStamp(j) {
		return false, s.renderPublishPreview(c, sess, http.StatusConflict, j,
			"The journey changed since you opened this preview (saved in another tab, or by a colleague). Check the changes again, then publish.")
	}
	return true, nil
}

// otherChanges says what the draft changes besides its steps.
func otherChanges(pub, draft journey.Definition, w journeyWords) []string {
	differ := func(a, b any) bool {
		ra, _ := json.Marshal(a)
		rb, _ := json.Marshal(b)
		return string(ra) != string(rb)
	}
	var out []string
	if pub.Name != draft.Name {
		out = append(out, "the name becomes “"+draft.Name+"”")
	}
	if differ(pub.Trigger, draft.Trigger) {
		out = append(out, "it starts: "+w.trigger(draft)+" (was: "+w.trigger(pub)+")")
	}
	if differ(pub.Entry, draft.Entry) {
		out = append(out, "people enter "+reEntry(draft.Entry)+" (was: "+reEntry(pub.Entry)+")")
	}
	if pub.Start != draft.Start {
		out = append(out, "the first step becomes "+draft.Start)
	}
	if differ(pub.Exits, draft.Exits) {
		out = append(out, "the events that end a run early change")
	}
	if differ(pub.Goal, draft.Goal) {
		out = append(out, "the goal changes")
	}
	return out
}

package api

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/demo"
	"github.com/parcours/parcours/pkg/user"
)

// Demo data: in `parcours dev`, the Overview offers to load the demo shop
// (pkg/demo, the same loader as `parcours demo`) into the workspace, and
// then says what it loaded. Elsewhere the offer is absent and POST /demo
// answers 404: demo records have no place in a production workspace.

var errDemoDevOnly = problem(http.StatusNotFound, "Demo data can be loaded only in `parcours dev` (or with the `parcours demo` command): a production workspace keeps real people only.")

// demoLoadTimeout bounds a load started from the console. It runs on its
// own deadline rather than the request's (30 s by default): on a busy
// laptop a load may take longer, and a load cut short must be run again.
const demoLoadTimeout = 2 * time.Minute

// devMode reports whether this server is `parcours dev`: only it serves
// the dev mailbox, so the mailbox marks it.
func (s *Server) devMode() bool { return s.DevMailbox != nil }

// demoPanel is the Overview's demo data panel.
type demoPanel struct {
	// Offer shows the Load demo data button: dev mode, to a user who may
	// change data, and not right after a load.
	Offer bool
	// Loaded is what a load just did.
	Loaded *demoSummary
}

// demoSummary is a load's result as the Overview tells it.
type demoSummary struct {
	Added                                   bool
	Accepted, Duplicates, Rejected, Merges  int
	EmailEvents                             int
	Web, Store, CallCentre                  int
	From, To                                time.Time
	Profiles, Anonymous, Known, Omnichannel int
	Segments                                []demo.SegmentResult
	Journeys                                []demo.JourneyResult
	TemplatesCreated, TemplatesKept         int
	Examples                                []demoExample
}

type demoExample struct {
	demo.Example
	URL string
}

func (s *Server) demoPanelFor(sess user.Session, loaded *demo.Result) demoPanel {
	if !s.devMode() || !sess.User.Role.Allows(user.RoleMarketer) {
		return demoPanel{}
	}
	if loaded == nil {
		return demoPanel{Offer: true}
	}
	r := loaded
	sum := &demoSummary{
		Added: r.Added(), Accepted: r.Accepted, Duplicates: r.Duplicates, Rejected: r.Rejected, Merges: r.Merges, EmailEvents: r.EmailEvents,
		Web: r.BySource[demo.SourceWeb], Store: r.BySource[demo.SourceStore], CallCentre: r.BySource[demo.SourceCallCentre],
		From: r.FirstEventAt, To: r.LastEventAt,
		Anonymous: r.Profiles["anonymous"], Known: r.Profiles["known"], Omnichannel: r.Profiles["omnichannel"],
		Segments: r.Segments, Journeys: r.Journeys,
	}
	sum.Profiles = sum.Anonymous + sum.Known + sum.Omnichannel
	for _, t := range r.Templates {
		if t.Created {
			sum.TemplatesCreated++
		} else {
			sum.TemplatesKept++
		}
	}
	for _, ex := range demo.Examples() {
		sum.Examples = append(sum.Examples, demoExample{Example: ex, URL: "/profiles?q=" + url.QueryEscape(ex.Query)})
	}
	return demoPanel{Loaded: sum}
}

// loadDemoForm loads the demo shop into the user's workspace and shows the
// Overview with what was loaded.
func (s *Server) loadDemoForm(c echo.Context, sess user.Session) error {
	if !s.devMode() {
		return errDemoDevOnly
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), demoLoadTimeout)
	defer cancel()
	l := &demo.Loader{Pool: s.Pool, Ingest: s.Ingest, Validation: s.Validation, Segments: s.Segments,
		Journeys: s.Journeys, Templates: s.Templates, Profiles: s.Profiles}
	res, err := l.Load(ctx, sess.User.WorkspaceID, time.Now())
	if err != nil {
		return err
	}
	s.logger.InfoContext(ctx, "demo data loaded", "workspace_id", sess.User.WorkspaceID,
		"records", res.Accepted, "duplicates", res.Duplicates, "merges", res.Merges)
	return s.renderDashboard(c, sess, &res)
}

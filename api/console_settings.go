package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/identity"
	"github.com/parcours/parcours/pkg/user"
	"github.com/parcours/parcours/pkg/workspace"
)

// The console's Settings: the workspace's unique identifier, its channels,
// frequency caps and quiet hours, and its users. Everyone may look (the
// secrets are never shown); changing needs the admin role, except one's own
// password. Each section is its own page under /settings with a shared
// sub-navigation (web/settings_nav.html).

// settingsNav is what every settings page shares: the section to highlight
// and whether the user may change settings.
type settingsNav struct {
	// Section: workspace, channels, delivery, users or account.
	Section string
	// CanEdit: the user is an admin.
	CanEdit bool
}

func settingsNavFor(sess user.Session, section string) settingsNav {
	return settingsNav{Section: section, CanEdit: sess.User.Role.Allows(user.RoleAdmin)}
}

// uniqueChoice is one choice of unique identifier.
type uniqueChoice struct {
	Value, Label, Help string
}

// workspaceSettingsData is the Workspace & identity page's data.
type workspaceSettingsData struct {
	settingsNav
	Name, Slug string
	// UniqueIdentifier is the current choice (or the one the form sent).
	UniqueIdentifier string
	Options          []uniqueChoice
	// Other is the trait typed under "Another trait".
	Other string
	// IdentityTraits is the comma-separated list of identity traits.
	IdentityTraits string
	// FieldErrors by form field: unique_identifier, other_identifier, identity_traits.
	FieldErrors   map[string]string
	Error, Notice string
	// Check is the result of the system check, when one was run.
	Check      *pingResponse
	CheckError string
}

// uniqueChoices lists User ID and each identity trait, the current
// unique identifier first among the traits if it is not listed.
func uniqueChoices(traits []string) []uniqueChoice {
	opts := []uniqueChoice{{Value: identity.UserID, Label: "User ID", Help: "the userId your site, app or CRM sends with identify calls"}}
	for _, t := range traits {
		o := uniqueChoice{Value: t, Label: humanLabel(t)}
		switch t {
		case identity.Email:
			o.Help = "the email address, trimmed and lower-cased"
		case identity.Phone:
			o.Help = "the phone number, in international form when it carries a country prefix"
		default:
			o.Help = "the " + t + " trait"
		}
		opts = append(opts, o)
	}
	return opts
}

func (s *Server) workspaceSettingsData(ctx context.Context, sess user.Session) (workspaceSettingsData, error) {
	w, err := s.Workspaces.Get(ctx, sess.User.WorkspaceID)
	if err != nil {
		return workspaceSettingsData{}, err
	}
	return workspaceSettingsData{
		settingsNav: settingsNavFor(sess, "workspace"), Name: w.Name, Slug: w.Slug,
		UniqueIdentifier: w.UniqueIdentifier, Options: uniqueChoices(w.IdentityTraits),
		IdentityTraits: strings.Join(w.IdentityTraits, ", "), FieldErrors: map[string]string{},
	}, nil
}

func (s *Server) renderWorkspaceSettings(c echo.Context, sess user.Session, status int, d workspaceSettingsData) error {
	return s.render(c, status, "settings_workspace.html", view{Title: "Settings: workspace and identity", Nav: "settings", User: &sess.User, CSRF: sess.CSRF, D: d})
}

func (s *Server) settingsPage(c echo.Context, sess user.Session) error {
	d, err := s.workspaceSettingsData(c.Request().Context(), sess)
	if err != nil {
		return err
	}
	if c.QueryParam("saved") != "" {
		d.Notice = "Saved. Records that arrive from now on are matched with these rules."
	}
	return s.renderWorkspaceSettings(c, sess, http.StatusOK, d)
}

// splitTraitList reads a comma-separated list, without empty items. Spaces
// do not separate: "Customer number" is reported as one wrong name.
func splitTraitList(s string) []string {
	var out []string
	for _, item := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func (s *Server) saveIdentityForm(c echo.Context, sess user.Session) error {
	ctx := c.Request().Context()
	d, err := s.workspaceSettingsData(ctx, sess)
	if err != nil {
		return err
	}
	d.UniqueIdentifier = c.FormValue("unique_identifier")
	d.Other = strings.TrimSpace(c.FormValue("other_identifier"))
	d.IdentityTraits = strings.TrimSpace(c.FormValue("identity_traits"))
	unique := d.UniqueIdentifier
	if unique == "other" {
		unique = d.Other
		if unique == "" {
			d.FieldErrors["other_identifier"] = "type the name of the trait, e.g. customer_number"
		}
	}
	if unique == "" && len(d.FieldErrors) == 0 {
		d.FieldErrors["unique_identifier"] = "choose the identifier that makes a contact known"
	}
	traits := splitTraitList(d.IdentityTraits)
	if traits == nil {
		traits = []string{} // empty: no identity traits (nil would mean "unchanged")
	}
	if len(d.FieldErrors) == 0 {
		_, err = s.Workspaces.UpdateSettings(ctx, sess.User.WorkspaceID, workspace.Settings{UniqueIdentifier: &unique, IdentityTraits: traits})
		var fe *workspace.FieldError
		switch {
		case errors.As(err, &fe) && fe.Field == "unique_identifier":
			field := "unique_identifier"
			if d.UniqueIdentifier == "other" {
				field = "other_identifier"
			}
			d.FieldErrors[field] = "The unique identifier must be User ID or a trait name: lower-case letters, digits and _, starting with a letter (e.g. customer_number)."
		case errors.As(err, &fe):
			d.FieldErrors[fe.Field] = fe.Reason
		case err != nil:
			return err
		default:
			return c.Redirect(http.StatusSeeOther, "/settings?saved=1")
		}
	}
	// Show the choice made, even a new trait, among the options.
	if unique != "" && unique != identity.UserID && !slices.ContainsFunc(d.Options, func(o uniqueChoice) bool { return o.Value == unique }) {
		d.UniqueIdentifier = "other"
	}
	d.Error = "Nothing was saved: fix what is marked below."
	return s.renderWorkspaceSettings(c, sess, http.StatusUnprocessableEntity, d)
}

// systemCheckForm runs the diagnostic workflow (as POST /v1/diagnostics/ping
// does) and shows how it went: the console's way to see that Temporal, a
// worker and the database answer.
func (s *Server) systemCheckForm(c echo.Context, sess user.Session) error {
	ctx := c.Request().Context()
	d, err := s.workspaceSettingsData(ctx, sess)
	if err != nil {
		return err
	}
	if s.Temporal == nil {
		d.CheckError = "This server runs without Temporal: journeys cannot run."
		return s.renderWorkspaceSettings(c, sess, http.StatusServiceUnavailable, d)
	}
	out, err := s.runPing(ctx, sess.User.WorkspaceID, c.Response().Header().Get(echo.HeaderXRequestID))
	var p *Problem
	switch {
	case errors.As(err, &p):
		d.CheckError = p.Detail
		return s.renderWorkspaceSettings(c, sess, p.Status, d)
	case err != nil:
		return err
	}
	d.Check = &out
	return s.renderWorkspaceSettings(c, sess, http.StatusOK, d)
}

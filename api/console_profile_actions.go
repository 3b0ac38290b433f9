package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/identity"
	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/user"
)

// The 360 page's actions on a person: undo a merge (marketers), download
// their data (marketers and admins: the right of access), erase them
// (admins only: it cannot be undone, and the API keeps it to admin keys
// too). Each goes through the same code as its /v1 route (api/profiles.go),
// and each changing one asks for confirmation on a page of its own first.

// profileActions is what the 360 page offers the signed-in user.
type profileActions struct {
	CanUndo, CanExport, CanErase bool
	Merges                       []mergeRow
	// Split is the profile an undo just split off (nil: none).
	Split *profileCard
}

// mergeRow is one entry of the merge history, in words.
type mergeRow struct {
	ID       string
	At       time.Time
	UndoneAt *time.Time
	// LinkedBy lists the identifiers of the record that linked the two.
	LinkedBy string
}

// profileActionsFor fills the 360 page's actions; split is the ?split= of
// the address after an undo.
func (s *Server) profileActionsFor(ctx context.Context, sess user.Session, v *profile.View, split string) (profileActions, error) {
	role := sess.User.Role
	a := profileActions{CanUndo: role.Allows(user.RoleMarketer), CanExport: role.Allows(user.RoleMarketer), CanErase: role.Allows(user.RoleAdmin)}
	for _, m := range v.Merges {
		row := mergeRow{ID: m.ID, At: m.CreatedAt, UndoneAt: m.UndoneAt}
		var keys []identity.Key
		if json.Unmarshal(m.Identities, &keys) == nil {
			parts := make([]string, 0, len(keys))
			for _, k := range keys {
				parts = append(parts, humanLabel(k.Type)+" "+k.Value)
			}
			row.LinkedBy = strings.Join(parts, ", ")
		}
		a.Merges = append(a.Merges, row)
	}
	if isUUID(split) && split != v.ID {
		card, err := s.profileCard(ctx, sess.User.WorkspaceID, split)
		if err != nil {
			return a, err
		}
		a.Split = &card
	}
	return a, nil
}

// consoleProfile loads the profile of the :id of a console route in the
// user's workspace (a merged id gives the survivor).
func (s *Server) consoleProfile(c echo.Context, sess user.Session) (*profile.View, error) {
	id := c.Param("id")
	notFound := problem(http.StatusNotFound, "There is no such profile in this workspace (it may have been erased).")
	if !isUUID(id) {
		return nil, notFound
	}
	v, err := s.Profiles.Get(c.Request().Context(), sess.User.WorkspaceID, id)
	if errors.Is(err, profile.ErrNotFound) {
		return nil, notFound
	}
	return v, err
}

// exportProfilePage downloads the person's data with the console session:
// the same document as GET /v1/profiles/{id}/export. Who took it is logged,
// with ids only.
func (s *Server) exportProfilePage(c echo.Context, sess user.Session) error {
	v, err := s.consoleProfile(c, sess)
	if err != nil {
		return err
	}
	ws := sess.User.WorkspaceID
	s.logger.InfoContext(c.Request().Context(), "profile exported from the console", "workspace_id", ws, "profile_id", v.ID, "user_id", sess.User.ID)
	return s.writeProfileExport(c, ws, v)
}

// undoMergeData is the confirmation page of an undo.
type undoMergeData struct {
	ProfileID, Label, MergeID string
	MergedAt                  time.Time
	Identities                []identity.Key
	Records                   int
}

// undoMergeProblem words the errors of planning or undoing a merge.
func undoMergeProblem(err error) error {
	switch {
	case errors.Is(err, ingest.ErrMergeNotFound):
		return problem(http.StatusNotFound, "This merge is not in the profile's history. Go back to the profile and reload it.")
	case errors.Is(err, ingest.ErrMergeAlreadyUndone):
		return problem(http.StatusConflict, "This merge was already undone: the two profiles are separate. Go back to the profile and reload it.")
	}
	return err
}

// undoMergePage says what undoing the merge will do and asks to confirm.
func (s *Server) undoMergePage(c echo.Context, sess user.Session) error {
	v, err := s.consoleProfile(c, sess)
	if err != nil {
		return err
	}
	mergeID := c.Param("mergeId")
	if !isUUID(mergeID) {
		return undoMergeProblem(ingest.ErrMergeNotFound)
	}
	plan, err := s.Ingest.PlanUnmerge(c.Request().Context(), sess.User.WorkspaceID, v.ID, mergeID)
	if err != nil {
		return undoMergeProblem(err)
	}
	d := undoMergeData{ProfileID: v.ID, Label: profileLabel(v), MergeID: mergeID, MergedAt: plan.MergedAt, Identities: plan.Identities, Records: plan.Records}
	return s.render(c, http.StatusOK, "profile_unmerge.html", view{Title: "Undo a merge: " + d.Label, Nav: "profiles", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// undoMergeForm undoes the merge and shows the profile, with a link to the
// one split off.
func (s *Server) undoMergeForm(c echo.Context, sess user.Session) error {
	v, err := s.consoleProfile(c, sess)
	if err != nil {
		return err
	}
	mergeID := c.Param("mergeId")
	if !isUUID(mergeID) {
		return undoMergeProblem(ingest.ErrMergeNotFound)
	}
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	restored, err := s.unmerge(ctx, ws, v.ID, mergeID)
	if err != nil {
		return undoMergeProblem(err)
	}
	s.logger.InfoContext(ctx, "merge undone from the console", "workspace_id", ws, "profile_id", v.ID, "merge_id", mergeID, "restored_profile_id", restored, "user_id", sess.User.ID)
	return c.Redirect(http.StatusSeeOther, "/profiles/"+url.PathEscape(v.ID)+"?split="+url.QueryEscape(restored))
}

// eraseData is the confirmation page of an erasure.
type eraseData struct {
	ID, Label  string
	Identities []profile.Identity
	Records    int
	Traits     int
	Segments   int
	Journeys   int
	CanExport  bool
	// ConfirmType is the identifier to type ("" when the person has none a
	// marketer would know: then the word ERASE), ConfirmLabel its name in
	// words and ConfirmValue its value.
	ConfirmType, ConfirmLabel, ConfirmValue string
	Typed, Error                            string
}

// eraseConfirmation picks what must be typed to erase a person: their
// email, else their phone, else their user ID, else the word ERASE. Typing
// the person's own identifier makes sure the right one is erased.
func eraseConfirmation(v *profile.View) (typ, value string) {
	for _, t := range []string{identity.Email, identity.Phone, identity.UserID} {
		for _, id := range v.Identities {
			if id.Type == t {
				return t, id.Value
			}
		}
	}
	return "", "ERASE"
}

// confirmed reports whether typed is the confirmation asked for: the
// identifier normalised as the lookup does (any case of an email), or ERASE.
func (d eraseData) confirmed() bool {
	if d.ConfirmType == "" {
		return strings.TrimSpace(d.Typed) == d.ConfirmValue
	}
	return identity.Normalize(d.ConfirmType, d.Typed) == d.ConfirmValue
}

// eraseData loads what the erasure page says about the person.
func (s *Server) eraseData(ctx context.Context, sess user.Session, v *profile.View) (eraseData, error) {
	d := eraseData{ID: v.ID, Label: profileLabel(v), Identities: v.Identities, Records: v.Computed.EventCount,
		Traits: len(v.Traits), Segments: len(v.Segments), CanExport: sess.User.Role.Allows(user.RoleMarketer)}
	d.ConfirmType, d.ConfirmValue = eraseConfirmation(v)
	d.ConfirmLabel = map[string]string{identity.Email: "email", identity.Phone: "phone number", identity.UserID: "user ID"}[d.ConfirmType]
	if s.Journeys != nil {
		runs, err := s.Journeys.OpenRuns(ctx, sess.User.WorkspaceID, v.ID, nil)
		if err != nil {
			return d, err
		}
		d.Journeys = len(runs)
	}
	return d, nil
}

// erasePage names the person, says what erasing removes and asks for the
// typed confirmation.
func (s *Server) erasePage(c echo.Context, sess user.Session) error {
	v, err := s.consoleProfile(c, sess)
	if err != nil {
		return err
	}
	d, err := s.eraseData(c.Request().Context(), sess, v)
	if err != nil {
		return err
	}
	return s.renderErase(c, sess, http.StatusOK, d)
}

func (s *Server) renderErase(c echo.Context, sess user.Session, status int, d eraseData) error {
	return s.render(c, status, "profile_erase.html", view{Title: "Erase " + d.Label, Nav: "profiles", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// eraseForm erases the person once the confirmation is typed, then shows
// the profiles list with what was erased.
func (s *Server) eraseForm(c echo.Context, sess user.Session) error {
	v, err := s.consoleProfile(c, sess)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	d, err := s.eraseData(ctx, sess, v)
	if err != nil {
		return err
	}
	d.Typed = c.FormValue("confirm")
	if !d.confirmed() {
		d.Error = "That does not match: type " + d.ConfirmValue + " exactly. Nothing was erased."
		if strings.TrimSpace(d.Typed) == "" {
			d.Error = "Type " + d.ConfirmValue + " to confirm. Nothing was erased."
		}
		return s.renderErase(c, sess, http.StatusUnprocessableEntity, d)
	}
	ws := sess.User.WorkspaceID
	out, err := s.erase(ctx, ws, v.ID, sess.User.ID)
	if errors.Is(err, ingest.ErrProfileNotFound) {
		return problem(http.StatusNotFound, "This person was already erased.")
	}
	if err != nil {
		return err
	}
	s.logger.InfoContext(ctx, "profile erased from the console", "workspace_id", ws, "profile_id", out.ProfileID, "erasure_id", out.ID, "user_id", sess.User.ID)
	q := url.Values{"erased": {"1"}, "identities": {strconv.Itoa(out.Identities)}, "records": {strconv.Itoa(out.Events)}, "runs": {strconv.Itoa(out.JourneyRuns)}}
	return c.Redirect(http.StatusSeeOther, "/profiles?"+q.Encode())
}

// erasedNotice is what the profiles list says after an erasure. The counts
// come from the address (no personal data in it): a forged link only shows
// a wrong message to whoever follows it.
type erasedNotice struct {
	Identities, Records, Runs int
}

// erasedNoticeOf reads the notice of the profiles list's address (nil: none).
func erasedNoticeOf(c echo.Context) *erasedNotice {
	if c.QueryParam("erased") == "" {
		return nil
	}
	n := func(k string) int { v, _ := strconv.Atoi(c.QueryParam(k)); return max(v, 0) }
	return &erasedNotice{Identities: n("identities"), Records: n("records"), Runs: n("runs")}
}

package api

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/rules"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/user"
)

// segmentRow is a segment as lists show it.
type segmentRow struct {
	ID, Name, Slug string
	Size           int
	ComputedAt     *time.Time
	// LastChange is when someone last entered or left the segment (filled
	// on the segments page only: the overview does not show it).
	LastChange *time.Time
}

func (s *Server) segmentRows(c echo.Context, workspaceID string) ([]segmentRow, error) {
	segs, err := s.Segments.List(c.Request().Context(), workspaceID)
	if err != nil {
		return nil, err
	}
	out := make([]segmentRow, len(segs))
	for i, sg := range segs {
		out[i] = segmentRow{ID: sg.ID, Name: sg.Name, Slug: sg.Slug, Size: sg.Size, ComputedAt: sg.LastComputedAt}
	}
	return out, nil
}

type segmentsData struct {
	Segments []segmentRow
	CanEdit  bool
}

func (s *Server) segmentsPage(c echo.Context, sess user.Session) error {
	rows, err := s.segmentRows(c, sess.User.WorkspaceID)
	if err != nil {
		return err
	}
	changes, err := s.Segments.LastChanges(c.Request().Context(), sess.User.WorkspaceID)
	if err != nil {
		return err
	}
	for i := range rows {
		if at, ok := changes[rows[i].ID]; ok {
			rows[i].LastChange = &at
		}
	}
	return s.render(c, http.StatusOK, "segments.html", view{Title: "Segments", Nav: "segments", User: &sess.User, CSRF: sess.CSRF,
		D: segmentsData{Segments: rows, CanEdit: sess.User.Role.Allows(user.RoleMarketer)}})
}

// ruleError is a rule's compile error, with the line it points at.
type ruleError struct {
	Line, Column  int
	Message, Text string
	// Caret is the text before the column, blanked (tabs kept), so that a
	// "^" after it sits under the column in a monospace font.
	Caret string
	// Alert announces the error at once (role="alert"): after a submit. As
	// the marketer types, the editor's polite live region announces it.
	Alert bool
}

func newRuleError(src string, re *rules.Error) *ruleError {
	e := &ruleError{Line: re.Line, Column: re.Column, Message: re.Message}
	lines := strings.Split(src, "\n")
	if re.Line >= 1 && re.Line <= len(lines) {
		line := []rune(strings.TrimRight(lines[re.Line-1], "\r"))
		e.Text = string(line)
		var b strings.Builder
		for i := 0; i < re.Column-1 && i < len(line); i++ {
			if line[i] == '\t' {
				b.WriteRune('\t')
			} else {
				b.WriteRune(' ')
			}
		}
		e.Caret = b.String()
	}
	return e
}

// previewData is a rule's preview: how many profiles match now, and some.
type previewData struct {
	Count, Scanned int
	Sample         []profileCard
}

type segmentData struct {
	// ID is "" for a new segment.
	ID, Name, Slug, Rule string
	Size                 int
	ComputedAt           *time.Time
	CanEdit, Saved       bool
	RuleError            *ruleError
	// FieldErrors by form field: name, slug.
	FieldErrors map[string]string
	Error       string
	Preview     *previewData

	// What the page shows of a saved segment (segmentDetails).
	LastChange *time.Time
	CanExport  bool
	Members    membersPage
	SizeChart  template.HTML
	// Sizes is the size history, newest first, for the chart's table.
	Sizes []sizeRow
}

func (s *Server) renderSegment(c echo.Context, sess user.Session, status int, d segmentData) error {
	d.CanEdit = sess.User.Role.Allows(user.RoleMarketer)
	title := d.Name
	if d.ID == "" {
		title = "New segment"
	} else if err := s.segmentDetails(c, sess, &d); err != nil {
		return err
	}
	return s.render(c, status, "segment.html", view{Title: title, Nav: "segments", User: &sess.User, CSRF: sess.CSRF, D: d})
}

func (s *Server) newSegmentPage(c echo.Context, sess user.Session) error {
	return s.renderSegment(c, sess, http.StatusOK, segmentData{Rule: `count("Order Completed", "90d") >= 3`})
}

func (s *Server) loadSegment(c echo.Context, workspaceID, id string) (segment.Segment, error) {
	if !isUUID(id) {
		return segment.Segment{}, problem(http.StatusNotFound, "There is no such segment in this workspace.")
	}
	sg, err := s.Segments.Get(c.Request().Context(), workspaceID, id)
	if errors.Is(err, segment.ErrNotFound) {
		return sg, problem(http.StatusNotFound, "There is no such segment in this workspace.")
	}
	return sg, err
}

func (s *Server) segmentPage(c echo.Context, sess user.Session) error {
	sg, err := s.loadSegment(c, sess.User.WorkspaceID, c.Param("id"))
	if err != nil {
		return err
	}
	return s.renderSegment(c, sess, http.StatusOK, segmentData{
		ID: sg.ID, Name: sg.Name, Slug: sg.Slug, Rule: sg.Rule, Size: sg.Size, ComputedAt: sg.LastComputedAt,
		Saved: c.QueryParam("saved") != "",
	})
}

// segmentForm reads the editor's fields; for an existing segment, the slug
// and size come from the database.
func (s *Server) segmentForm(c echo.Context, sess user.Session, id string) (segmentData, error) {
	d := segmentData{ID: id, Name: strings.TrimSpace(c.FormValue("name")), Slug: strings.TrimSpace(c.FormValue("slug")), Rule: crlf.Replace(c.FormValue("rule"))}
	if id != "" {
		sg, err := s.loadSegment(c, sess.User.WorkspaceID, id)
		if err != nil {
			return d, err
		}
		d.Slug, d.Size, d.ComputedAt = sg.Slug, sg.Size, sg.LastComputedAt
	}
	return d, nil
}

// previewSegmentForm shows how many profiles the rule in the editor selects
// now, with a sample; nothing is saved, so viewers may preview too.
func (s *Server) previewSegmentForm(c echo.Context, sess user.Session) error {
	d, err := s.segmentForm(c, sess, c.FormValue("id"))
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	res, err := s.Segments.Preview(ctx, sess.User.WorkspaceID, d.Rule, time.Now().UTC(), 10)
	if err != nil {
		return s.segmentFormError(c, sess, d, err)
	}
	p := &previewData{Count: res.Count, Scanned: res.Scanned}
	for _, id := range res.Sample {
		card, err := s.profileCard(ctx, sess.User.WorkspaceID, id)
		if err != nil {
			return err
		}
		p.Sample = append(p.Sample, card)
	}
	d.Preview = p
	return s.renderSegment(c, sess, http.StatusOK, d)
}

// segmentFormError shows the editor again with what to fix: a rule error at
// its line and column, or the field at fault.
func (s *Server) segmentFormError(c echo.Context, sess user.Session, d segmentData, err error) error {
	var re *rules.Error
	var fe *segment.FieldError
	switch {
	case errors.As(err, &re):
		d.RuleError = newRuleError(d.Rule, re)
		d.RuleError.Alert = true
	case errors.As(err, &fe):
		d.FieldErrors = map[string]string{fe.Field: fe.Reason}
	case errors.Is(err, segment.ErrSlugTaken):
		d.FieldErrors = map[string]string{"slug": "another segment already has this short name; choose another"}
	default:
		return err
	}
	d.Error = "The segment was not saved: fix what is marked below."
	return s.renderSegment(c, sess, http.StatusUnprocessableEntity, d)
}

// crlf undoes the CRLF line breaks browsers send for a textarea, so that a
// rule is stored as written.
var crlf = strings.NewReplacer("\r\n", "\n")

var slugUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// slugify derives a segment's short name from its name: "VIP customers" → vip-customers.
func slugify(name string) string {
	s := strings.Trim(slugUnsafe.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	return s
}

func (s *Server) createSegmentForm(c echo.Context, sess user.Session) error {
	d, err := s.segmentForm(c, sess, "")
	if err != nil {
		return err
	}
	if d.Slug == "" {
		d.Slug = slugify(d.Name)
	}
	ws := sess.User.WorkspaceID
	sg, err := s.Segments.Create(c.Request().Context(), ws, d.Slug, d.Name, d.Rule)
	if err != nil {
		return s.segmentFormError(c, sess, d, err)
	}
	s.startRecompute(c, ws, "created/"+sg.ID)
	return c.Redirect(http.StatusSeeOther, "/segments/"+url.PathEscape(sg.ID)+"?saved=1")
}

func (s *Server) updateSegmentForm(c echo.Context, sess user.Session) error {
	d, err := s.segmentForm(c, sess, c.Param("id"))
	if err != nil {
		return err
	}
	ws := sess.User.WorkspaceID
	sg, err := s.Segments.Update(c.Request().Context(), ws, d.ID, &d.Name, &d.Rule)
	if err != nil {
		return s.segmentFormError(c, sess, d, err)
	}
	s.startRecompute(c, ws, "updated/"+sg.ID+"/"+sg.UpdatedAt.Format(time.RFC3339Nano))
	return c.Redirect(http.StatusSeeOther, "/segments/"+url.PathEscape(sg.ID)+"?saved=1")
}

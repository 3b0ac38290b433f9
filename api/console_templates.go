package api

import (
	"errors"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/profile"
	tpl "github.com/parcours/parcours/pkg/template"
	"github.com/parcours/parcours/pkg/user"
)

// templateRow is a template as the list shows it.
type templateRow struct {
	ID, Name, Slug, Channel, Subject string
	UpdatedAt                        time.Time
	// UsedBy names the journeys whose drafts send it.
	UsedBy []journeyRef
}

type journeyRef struct{ ID, Name string }

type templatesData struct {
	Templates []templateRow
	CanEdit   bool
}

// templateUsers maps template slugs to the journeys that send them.
func (s *Server) templateUsers(c echo.Context, ws string) (map[string][]journeyRef, error) {
	js, err := s.Journeys.List(c.Request().Context(), ws)
	if err != nil {
		return nil, err
	}
	out := map[string][]journeyRef{}
	for _, j := range js {
		seen := map[string]bool{}
		for _, n := range j.Draft.Nodes {
			if n.Type == journey.NodeSend && !seen[n.Template] {
				seen[n.Template] = true
				out[n.Template] = append(out[n.Template], journeyRef{j.ID, j.Name})
			}
		}
	}
	return out, nil
}

func (s *Server) templatesPage(c echo.Context, sess user.Session) error {
	ws := sess.User.WorkspaceID
	ts, err := s.Templates.List(c.Request().Context(), ws)
	if err != nil {
		return err
	}
	users, err := s.templateUsers(c, ws)
	if err != nil {
		return err
	}
	d := templatesData{CanEdit: sess.User.Role.Allows(user.RoleMarketer)}
	for _, t := range ts {
		d.Templates = append(d.Templates, templateRow{ID: t.ID, Name: t.Name, Slug: t.Slug, Channel: t.Channel, Subject: t.Subject, UpdatedAt: t.UpdatedAt, UsedBy: users[t.Slug]})
	}
	return s.render(c, http.StatusOK, "templates.html", view{Title: "Templates", Nav: "templates", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// templatePreview is a template rendered for a person.
type templatePreview struct {
	// For names the person ("" for nobody: traits are empty).
	For, ForID                    string
	Subject, Preheader, HTML, Txt string
}

// templateData is the editor's data.
type templateData struct {
	ID, Slug, Name, Channel        string
	Subject, Preheader, HTML, Text string
	UsedBy                         []journeyRef
	CanEdit, Saved                 bool
	// FieldErrors by form field: name, slug, subject, preheader, html,
	// text, preview_for, email.
	FieldErrors   map[string]string
	Error, Notice string
	// PreviewFor is the identifier of the person the preview is for.
	PreviewFor   string
	Preview      *templatePreview
	PreviewError string
	TestEmail    string
	// MailboxURL links to the dev mailbox, where test sends land in dev.
	MailboxURL string
}

func (s *Server) renderTemplate(c echo.Context, sess user.Session, status int, d templateData) error {
	d.CanEdit = sess.User.Role.Allows(user.RoleMarketer)
	if s.DevMailbox != nil {
		d.MailboxURL = "/mailbox"
	}
	title := d.Name
	if d.ID == "" {
		title = "New template"
	}
	return s.render(c, status, "template.html", view{Title: title, Nav: "templates", User: &sess.User, CSRF: sess.CSRF, D: d})
}

func (s *Server) loadTemplate(c echo.Context, ws, id string) (tpl.Template, error) {
	if !isUUID(id) {
		return tpl.Template{}, problem(http.StatusNotFound, "There is no such template in this workspace.")
	}
	t, err := s.Templates.Get(c.Request().Context(), ws, id)
	if errors.Is(err, tpl.ErrNotFound) {
		return t, problem(http.StatusNotFound, "There is no such template in this workspace.")
	}
	return t, err
}

func templateDataOf(t tpl.Template) templateData {
	return templateData{ID: t.ID, Slug: t.Slug, Name: t.Name, Channel: t.Channel, Subject: t.Subject, Preheader: t.Preheader, HTML: t.HTML, Text: t.Text}
}

// preview renders the editor's template for the person named in
// PreviewFor (any identifier), or for nobody.
func (s *Server) preview(c echo.Context, ws string, d *templateData) error {
	ctx := c.Request().Context()
	t := tpl.Template{Slug: d.Slug, Name: d.Name, Channel: d.Channel, Subject: d.Subject, Preheader: d.Preheader, HTML: d.HTML, Text: d.Text}
	p := &templatePreview{}
	if q := strings.TrimSpace(d.PreviewFor); q != "" {
		w, err := s.Workspaces.Get(ctx, ws)
		if err != nil {
			return err
		}
		ids, err := s.findProfiles(ctx, ws, searchTypes(w.IdentityTraits), "", q)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			d.FieldErrors["preview_for"] = "no profile has this identifier: try an email, a phone number or a user ID"
			return nil
		}
		card, err := s.profileCard(ctx, ws, ids[0])
		if err != nil {
			return err
		}
		p.For, p.ForID = card.Label, ids[0]
	}
	out, err := s.Ledger.Preview(ctx, ws, t, p.ForID)
	var ce *tpl.CompileError
	var fe *tpl.FieldError
	switch {
	case errors.As(err, &ce):
		d.FieldErrors[ce.Field] = compileMessage(ce)
		return nil
	case errors.As(err, &fe): // e.g. a partial that does not exist
		d.FieldErrors[fe.Field] = fe.Reason
		return nil
	case errors.Is(err, profile.ErrNotFound):
		d.FieldErrors["preview_for"] = "this profile was erased"
		return nil
	case errors.Is(err, tpl.ErrTooLarge), errors.Is(err, tpl.ErrTimeout):
		d.PreviewError = "The template cannot be rendered: " + err.Error() + "."
		return nil
	case err != nil:
		return err
	}
	p.Subject, p.Preheader, p.HTML, p.Txt = out.Subject, out.Preheader, out.HTML, out.Text
	d.Preview = p
	return nil
}

func compileMessage(ce *tpl.CompileError) string {
	if ce.Line > 0 {
		return "line " + strconv.Itoa(ce.Line) + ": " + ce.Message
	}
	return ce.Message
}

func (s *Server) templatePage(c echo.Context, sess user.Session) error {
	ws := sess.User.WorkspaceID
	t, err := s.loadTemplate(c, ws, c.Param("id"))
	if err != nil {
		return err
	}
	d := templateDataOf(t)
	d.FieldErrors = map[string]string{}
	d.Saved = c.QueryParam("saved") != ""
	d.PreviewFor = c.QueryParam("preview_for")
	users, err := s.templateUsers(c, ws)
	if err != nil {
		return err
	}
	d.UsedBy = users[t.Slug]
	if err := s.preview(c, ws, &d); err != nil {
		return err
	}
	return s.renderTemplate(c, sess, http.StatusOK, d)
}

func (s *Server) newTemplatePage(c echo.Context, sess user.Session) error {
	return s.renderTemplate(c, sess, http.StatusOK, templateData{Channel: "email", FieldErrors: map[string]string{},
		Subject: "Hello {{ profile.traits.first_name | default: \"there\" }}", HTML: "<p>Hello {{ profile.traits.first_name | default: \"there\" }},</p>\n<p></p>",
		Text: "Hello {{ profile.traits.first_name | default: \"there\" }},\n"})
}

// templateForm reads the editor's fields.
func templateForm(c echo.Context) templateData {
	return templateData{
		Name: strings.TrimSpace(c.FormValue("name")), Slug: strings.TrimSpace(c.FormValue("slug")), Channel: "email",
		Subject: c.FormValue("subject"), Preheader: c.FormValue("preheader"),
		HTML: crlf.Replace(c.FormValue("html")), Text: crlf.Replace(c.FormValue("text")),
		PreviewFor: strings.TrimSpace(c.FormValue("preview_for")), FieldErrors: map[string]string{},
	}
}

// templateFormError shows the editor again with the field at fault.
func (s *Server) templateFormError(c echo.Context, sess user.Session, d templateData, err error) error {
	var ce *tpl.CompileError
	var fe *tpl.FieldError
	switch {
	case errors.As(err, &ce):
		d.FieldErrors[ce.Field] = compileMessage(ce)
	case errors.As(err, &fe):
		d.FieldErrors[fe.Field] = fe.Reason
	case errors.Is(err, tpl.ErrSlugTaken):
		d.FieldErrors["slug"] = "another template already has this short name; choose another"
	case errors.Is(err, tpl.ErrTooLarge), errors.Is(err, tpl.ErrTimeout):
		d.FieldErrors["html"] = err.Error()
	default:
		return err
	}
	d.Error = "The template was not saved: fix what is marked below."
	return s.renderTemplate(c, sess, http.StatusUnprocessableEntity, d)
}

func (s *Server) createTemplateForm(c echo.Context, sess user.Session) error {
	d := templateForm(c)
	if d.Slug == "" {
		d.Slug = slugify(d.Name)
	}
	t, err := s.Templates.Create(c.Request().Context(), sess.User.WorkspaceID, tpl.Template{
		Slug: d.Slug, Name: d.Name, Channel: d.Channel, Subject: d.Subject, Preheader: d.Preheader, HTML: d.HTML, Text: d.Text})
	if err != nil {
		return s.templateFormError(c, sess, d, err)
	}
	return c.Redirect(http.StatusSeeOther, "/templates/"+url.PathEscape(t.ID)+"?saved=1")
}

func (s *Server) updateTemplateForm(c echo.Context, sess user.Session) error {
	ws := sess.User.WorkspaceID
	cur, err := s.loadTemplate(c, ws, c.Param("id"))
	if err != nil {
		return err
	}
	d := templateForm(c)
	d.ID, d.Slug, d.Channel = cur.ID, cur.Slug, cur.Channel
	t, err := s.Templates.Update(c.Request().Context(), ws, cur.ID, func(t *tpl.Template) {
		t.Name, t.Subject, t.Preheader, t.HTML, t.Text = d.Name, d.Subject, d.Preheader, d.HTML, d.Text
	})
	if err != nil {
		return s.templateFormError(c, sess, d, err)
	}
	q := url.Values{"saved": {"1"}}
	if d.PreviewFor != "" {
		q.Set("preview_for", d.PreviewFor)
	}
	return c.Redirect(http.StatusSeeOther, "/templates/"+url.PathEscape(t.ID)+"?"+q.Encode())
}

// previewTemplateForm renders the editor's unsaved template for the chosen
// person; nothing is saved, so viewers may preview too.
func (s *Server) previewTemplateForm(c echo.Context, sess user.Session) error {
	ws := sess.User.WorkspaceID
	cur, err := s.loadTemplate(c, ws, c.Param("id"))
	if err != nil {
		return err
	}
	d := templateForm(c)
	d.ID, d.Slug, d.Channel = cur.ID, cur.Slug, cur.Channel
	if err := s.preview(c, ws, &d); err != nil {
		return err
	}
	status := http.StatusOK
	if len(d.FieldErrors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	return s.renderTemplate(c, sess, status, d)
}

// testSendForm sends the saved template once to an address, through the
// delivery ledger, as the API's test send does.
func (s *Server) testSendForm(c echo.Context, sess user.Session) error {
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	t, err := s.loadTemplate(c, ws, c.Param("id"))
	if err != nil {
		return err
	}
	d := templateDataOf(t)
	d.FieldErrors = map[string]string{}
	d.TestEmail = strings.TrimSpace(c.FormValue("email"))
	d.PreviewFor = strings.TrimSpace(c.FormValue("preview_for"))
	if a, err := mail.ParseAddress(d.TestEmail); err != nil || a.Address != d.TestEmail {
		d.FieldErrors["email"] = "write one email address, such as ana@example.com"
		return s.renderTemplate(c, sess, http.StatusUnprocessableEntity, d)
	}
	if err := s.preview(c, ws, &d); err != nil {
		return err
	}
	del, err := s.Ledger.Send(ctx, channel.SendRequest{
		BusinessKey: "test/" + t.Slug + "/" + c.Response().Header().Get(echo.HeaderXRequestID),
		WorkspaceID: ws, TemplateSlug: t.Slug, Channel: channel.ChannelEmail, Class: channel.Transactional, ToEmail: d.TestEmail,
	})
	var se *channel.SendError
	switch {
	case errors.Is(err, channel.ErrNotConfigured):
		d.Error = "No email channel is configured for this workspace: set SendGrid's key and the sender first (PUT /v1/channels/email)."
	case errors.As(err, &se) && !se.Permanent:
		d.Error = "The email provider did not take the message: " + se.Reason + ". Try again later."
	case err != nil && !(errors.As(err, &se) && se.Permanent):
		return err
	case del.Status == "sent":
		d.Notice = "Sent the saved version to " + d.TestEmail + "."
	default:
		d.Error = "Not sent (" + del.Status + "): " + del.Reason
	}
	return s.renderTemplate(c, sess, http.StatusOK, d)
}

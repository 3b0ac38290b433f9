package api

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/user"
	"github.com/parcours/parcours/pkg/workspace"
	"github.com/parcours/parcours/web"
)

// The console's Data section: where records come from (sources and their
// write keys, with the snippet to paste), bulk imports, and the quarantine
// of rejected records. Keys are an admin's business; imports and replays a
// marketer's; viewers look.

// dataPages are the Data section's templates (in consolePages); each also
// gets the section's shared parts: its tabs, the source picker, the
// snippets.
var dataPages = []string{"data_sources.html", "data_key.html", "data_imports.html", "data_import.html", "data_quarantine.html"}

func init() {
	for _, name := range dataPages {
		template.Must(consolePages[name].ParseFS(web.FS, "data_parts.html"))
	}
}

// sourceChoice is a kind of source a marketer recognises, with the source
// name records carry.
type sourceChoice struct{ Value, Label, Help string }

// sourceChoices are the usual sources; a form also takes another name.
var sourceChoices = []sourceChoice{
	{"web", "Website", "the analytics.js snippet in your pages"},
	{"app", "Mobile app", "Segment's iOS or Android library"},
	{"store", "Store / till", "sales recorded in shops"},
	{"call_centre", "Call centre", "calls and tickets"},
	{"crm", "CRM", "contacts and deals from your CRM"},
}

// otherSource is the form value of "another source, named below".
const otherSource = "other"

// sourceLabel names a source for people: "call_centre" is Call centre.
func sourceLabel(source string) string {
	for _, sc := range sourceChoices {
		if sc.Value == source {
			return sc.Label
		}
	}
	if source == "" {
		return "—"
	}
	return source
}

var sourceUnsafe = regexp.MustCompile(`[^a-z0-9_-]+`)

// formSource reads a source picker: one of sourceChoices, or the name typed
// for "other", made lower case with words joined by _ ("Loyalty App" →
// loyalty_app).
func formSource(c echo.Context, field string) string {
	v := strings.TrimSpace(c.FormValue(field))
	if v != otherSource {
		return v
	}
	other := strings.ToLower(strings.TrimSpace(c.FormValue(field + "_other")))
	return strings.Trim(sourceUnsafe.ReplaceAllString(other, "_"), "_")
}

// sourcePicker is the data of the source field of a form.
type sourcePicker struct {
	Field, Value string
	Choices      []sourceChoice
	// Other is the typed name when Value is not a usual source.
	Other string
	Error string
}

func newSourcePicker(field, value, errMsg string) sourcePicker {
	p := sourcePicker{Field: field, Value: value, Choices: sourceChoices, Error: errMsg}
	if value != "" && sourceLabel(value) == value {
		p.Value, p.Other = otherSource, value
	}
	return p
}

// dataTabs are the pages of the Data section, for its tab bar.
var dataTabs = []struct{ Path, Label string }{
	{"/data", "Sources & keys"},
	{"/data/imports", "Imports"},
	{"/data/quarantine", "Quarantine"},
}

// dataView is what every page of the Data section gets besides its own data.
type dataView struct {
	// Tab is the path of the page's tab.
	Tab  string
	Tabs []struct{ Path, Label string }
	D    any
}

func (s *Server) renderData(c echo.Context, sess user.Session, status int, page, title, tab string, d any) error {
	return s.render(c, status, page, view{Title: title, Nav: "data", User: &sess.User, CSRF: sess.CSRF,
		D: dataView{Tab: tab, Tabs: dataTabs, D: d}})
}

// keyRow is an API key as the console lists it.
type keyRow struct {
	workspace.Key
	SourceLabel string
	// LastUsed says when the key was last used, in words ("3 hours ago").
	LastUsed string
}

func newKeyRow(k workspace.Key) keyRow {
	return keyRow{Key: k, SourceLabel: sourceLabel(k.Source), LastUsed: timeAgo(k.LastUsedAt, time.Now())}
}

// keyForm is the "new write key" form, its values and what is wrong.
type keyForm struct {
	Name        string
	Source      sourcePicker
	FieldErrors map[string]string
	Error       string
}

type sourcesData struct {
	Keys      []keyRow
	CanManage bool
	Form      keyForm
	Snippet   snippetData
}

func (s *Server) sourcesPage(c echo.Context, sess user.Session) error {
	return s.renderSources(c, sess, http.StatusOK, keyForm{Source: newSourcePicker("source", "web", "")})
}

func (s *Server) renderSources(c echo.Context, sess user.Session, status int, form keyForm) error {
	keys, err := s.Workspaces.ListKeys(c.Request().Context(), sess.User.WorkspaceID)
	if err != nil {
		return err
	}
	d := sourcesData{CanManage: sess.User.Role.Allows(user.RoleAdmin), Form: form, Snippet: s.snippet(c, "", "web")}
	for _, k := range keys {
		d.Keys = append(d.Keys, newKeyRow(k))
	}
	return s.renderData(c, sess, status, "data_sources.html", "Sources & keys", "/data", d)
}

// createKeyForm creates a write key for a named source and shows its
// secret, once, with the snippets that use it. The answer is the page
// itself, not a redirect: the secret must not travel in a URL.
func (s *Server) createKeyForm(c echo.Context, sess user.Session) error {
	form := keyForm{Name: strings.TrimSpace(c.FormValue("name"))}
	source := formSource(c, "source")
	k, err := s.Workspaces.CreateKey(c.Request().Context(), sess.User.WorkspaceID, workspace.KeySpec{Name: form.Name, Scope: workspace.ScopeWrite, Source: source})
	var fe *workspace.FieldError
	if errors.As(err, &fe) {
		form.Source = newSourcePicker("source", source, "")
		if fe.Field == "source" {
			form.Source.Error = "Choose where the data comes from, or name the source: lower-case letters, digits, _ or -, such as loyalty_app."
		} else {
			form.FieldErrors = map[string]string{fe.Field: "Give the key a name of at most 200 characters, such as “Online shop”."}
		}
		form.Error = "The key was not created: fix what is marked below."
		return s.renderSources(c, sess, http.StatusUnprocessableEntity, form)
	}
	if err != nil {
		return err
	}
	return s.renderKey(c, sess, http.StatusCreated, keyData{Key: newKeyRow(k.Key), Secret: k.Secret})
}

// keyData is a key's page: its details, the snippets, and revocation.
type keyData struct {
	Key keyRow
	// Secret is set only on the page answering the key's creation.
	Secret    string
	Snippet   snippetData
	CanManage bool
	Revoked   bool // just revoked
	// ConfirmError says the revocation was not confirmed.
	ConfirmError string
}

func (s *Server) renderKey(c echo.Context, sess user.Session, status int, d keyData) error {
	d.CanManage = sess.User.Role.Allows(user.RoleAdmin)
	if d.Key.Scope == workspace.ScopeWrite {
		d.Snippet = s.snippet(c, d.Secret, d.Key.Source)
	}
	return s.renderData(c, sess, status, "data_key.html", d.Key.Name, "/data", d)
}

// loadKey finds a key of the workspace by id.
func (s *Server) loadKey(c echo.Context, workspaceID, id string) (workspace.Key, error) {
	notFound := problem(http.StatusNotFound, "There is no such key in this workspace.")
	if !isUUID(id) {
		return workspace.Key{}, notFound
	}
	keys, err := s.Workspaces.ListKeys(c.Request().Context(), workspaceID)
	if err != nil {
		return workspace.Key{}, err
	}
	for _, k := range keys {
		if strings.EqualFold(k.ID, id) {
			return k, nil
		}
	}
	return workspace.Key{}, notFound
}

func (s *Server) keyPage(c echo.Context, sess user.Session) error {
	k, err := s.loadKey(c, sess.User.WorkspaceID, c.Param("id"))
	if err != nil {
		return err
	}
	return s.renderKey(c, sess, http.StatusOK, keyData{Key: newKeyRow(k), Revoked: c.QueryParam("revoked") != ""})
}

// revokeKeyForm revokes a key once the admin ticked the confirmation:
// from then on requests with it are refused (the key cache forgets it now,
// not in 30 seconds).
func (s *Server) revokeKeyForm(c echo.Context, sess user.Session) error {
	k, err := s.loadKey(c, sess.User.WorkspaceID, c.Param("id"))
	if err != nil {
		return err
	}
	if c.FormValue("confirm") != "yes" {
		return s.renderKey(c, sess, http.StatusUnprocessableEntity, keyData{Key: newKeyRow(k),
			ConfirmError: "Tick the box to confirm: whatever uses this key stops sending data."})
	}
	if k.RevokedAt == nil {
		if k, err = s.Workspaces.RevokeKey(c.Request().Context(), sess.User.WorkspaceID, k.ID); err != nil {
			return err
		}
		s.keys.forget(k.ID)
		s.logger.InfoContext(c.Request().Context(), "API key revoked in the console", "key_id", k.ID, "user_id", sess.User.ID)
	}
	return c.Redirect(http.StatusSeeOther, "/data/keys/"+url.PathEscape(k.ID)+"?revoked=1")
}

// snippetData fills the code samples that send data with a write key.
type snippetData struct {
	// Key is the secret, or a placeholder when it is not known (it is
	// shown once, when created).
	Key         string
	Placeholder bool
	// Base is this server's public URL (https://parcours.example.com);
	// Host is the same without the scheme, Protocol the scheme alone.
	Base, Host, Protocol string
	// Source is the key's source: the web snippet comes first for "web".
	Source string
}

// keyPlaceholder stands for a write key in samples shown without one.
const keyPlaceholder = "YOUR_WRITE_KEY"

// snippet builds the samples for a key (secret "" shows a placeholder),
// pointed at PARCOURS_PUBLIC_URL, or else at the host the browser used.
func (s *Server) snippet(c echo.Context, secret, source string) snippetData {
	base := ""
	if s.Ledger != nil {
		base = strings.TrimRight(s.Ledger.PublicURL, "/")
	}
	if base == "" {
		base = c.Scheme() + "://" + c.Request().Host
	}
	d := snippetData{Key: secret, Base: base, Host: base, Protocol: "https", Source: source}
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		d.Host, d.Protocol = u.Host+strings.TrimRight(u.Path, "/"), u.Scheme
	}
	if secret == "" {
		d.Key, d.Placeholder = keyPlaceholder, true
	}
	return d
}

// timeAgo says how long ago t was, in words; the key store refreshes a
// key's last use at most once a minute, so "just now" covers that.
func timeAgo(t *time.Time, now time.Time) string {
	if t == nil {
		return "never"
	}
	d := now.Sub(*t)
	switch {
	case d < 2*time.Minute:
		return "just now"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " minutes ago"
	case d < 2*time.Hour:
		return "an hour ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " hours ago"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + " days ago"
}

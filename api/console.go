package api

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/demo"
	"github.com/parcours/parcours/pkg/user"
	"github.com/parcours/parcours/web"
)

// The console is server-rendered HTML: html/template pages embedded from
// web/, plain forms and links, no JavaScript. People sign in with an email
// and a password (pkg/user); the session lives in an HttpOnly cookie and
// every POST carries the session's CSRF token in a hidden field.

const (
	sessionCookie = "parcours_session"
	// loginCSRFCookie holds the token of the sign-in form (double submit:
	// there is no session yet), so that another site cannot sign a browser
	// in to an account of its choosing.
	loginCSRFCookie = "parcours_login_csrf"
	// Over HTTPS the cookies' names carry the prefixes browsers enforce:
	// __Host- (Secure, Path=/, no Domain: no sibling subdomain can set or
	// shadow the session) and __Secure- for the sign-in form's (its Path is
	// /login, which __Host- forbids).
	hostPrefix   = "__Host-"
	securePrefix = "__Secure-"
)

// cookieName is the name a cookie has on this request: prefixed over HTTPS.
func (s *Server) cookieName(c echo.Context, name string) string {
	if !s.https(c) {
		return name
	}
	if name == sessionCookie {
		return hostPrefix + name
	}
	return securePrefix + name
}

// sessionToken returns the session token of the request's cookie ("": none).
func (s *Server) sessionToken(c echo.Context) string {
	if ck, err := c.Cookie(s.cookieName(c, sessionCookie)); err == nil {
		return ck.Value
	}
	return ""
}

// consolePages are the console's templates, each parsed with the layout.
var consolePages = func() map[string]*template.Template {
	funcs := template.FuncMap{
		"fmtTime":  fmtTime,
		"fmtValue": fmtValue,
		"label":    humanLabel,
		"add":      func(a, b int) int { return a + b },
	}
	// settings_nav.html defines the Settings pages' sub-navigation.
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(web.FS, "layout.html", "settings_nav.html"))
	pages := map[string]*template.Template{}
	for _, name := range []string{"login.html", "dashboard.html", "profiles.html", "profile.html", "profile_unmerge.html", "profile_erase.html", "segments.html", "segment.html", "journeys.html", "error.html",
		"journey.html", "journey_new.html", "journey_edit.html", "journey_publish.html", "journey_runs.html", "journey_simulate.html", "templates.html", "template.html", "mailbox.html", "mailbox_message.html",
		"data_sources.html", "data_key.html", "data_imports.html", "data_import.html", "data_quarantine.html", "reports.html",
		"settings_workspace.html", "settings_channels.html", "settings_delivery.html", "settings_users.html", "settings_account.html"} {
		pages[name] = template.Must(template.Must(layout.Clone()).ParseFS(web.FS, name))
	}
	return pages
}()

// view is what every console page gets; D is the page's own data.
type view struct {
	Title string
	// Nav is the section to highlight: dashboard, profiles, segments,
	// journeys, templates, reports, data, mailbox, settings.
	Nav           string
	User          *user.User
	CSRF          string
	TemporalUIURL string
	// DevMailbox shows the Mailbox page in the menu (parcours dev only).
	DevMailbox bool
	D          any
}

// render writes a console page.
func (s *Server) render(c echo.Context, status int, name string, v view) error {
	if v.TemporalUIURL == "" {
		v.TemporalUIURL = s.TemporalUIURL
	}
	v.DevMailbox = s.DevMailbox != nil
	var buf bytes.Buffer
	if err := consolePages[name].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	return c.HTMLBlob(status, buf.Bytes())
}

// pageHandler is a console handler: it runs for a signed-in user whose role
// allows the page, with the CSRF token of a POST already checked.
type pageHandler func(c echo.Context, sess user.Session) error

// page guards a console handler: a browser without a session is sent to the
// sign-in page, a POST without the session's CSRF token is refused, and a
// role below need is refused. Errors are answered as HTML pages.
func (s *Server) page(need user.Role, h pageHandler) echo.HandlerFunc {
	return func(c echo.Context) error {
		sess, err := s.sessionOf(c)
		if errors.Is(err, user.ErrNoSession) {
			if c.Request().Method != http.MethodGet {
				return s.consoleError(c, sess, http.StatusUnauthorized, "Your session has ended. Sign in again, then retry.")
			}
			return c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request().URL.RequestURI()))
		}
		if err != nil {
			return s.consoleFail(c, sess, err)
		}
		if c.Request().Method == http.MethodPost && !sess.CheckCSRF(c.FormValue("csrf")) {
			return s.consoleError(c, sess, http.StatusForbidden, "This form was not sent from your current console session (it may be from an old tab). Go back, reload the page and try again.")
		}
		if !sess.User.Role.Allows(need) {
			return s.consoleError(c, sess, http.StatusForbidden, "Your role ("+string(sess.User.Role)+") can look but not change this. Ask an admin of the workspace for the "+string(need)+" role.")
		}
		if err := h(c, sess); err != nil {
			return s.consoleFail(c, sess, err)
		}
		return nil
	}
}

// sessionOf returns the session of the request's cookie.
func (s *Server) sessionOf(c echo.Context) (user.Session, error) {
	token := s.sessionToken(c)
	if token == "" || s.Users == nil {
		return user.Session{}, user.ErrNoSession
	}
	return s.Users.Session(c.Request().Context(), token, time.Now())
}

// consoleError answers an error page with status and a message.
func (s *Server) consoleError(c echo.Context, sess user.Session, status int, msg string) error {
	v := view{Title: http.StatusText(status), CSRF: sess.CSRF, D: msg}
	if sess.User.ID != "" {
		v.User = &sess.User
	}
	return s.render(c, status, "error.html", v)
}

// consoleFail answers a handler's error: a Problem with its detail, anything
// else logged and answered with a generic page.
func (s *Server) consoleFail(c echo.Context, sess user.Session, err error) error {
	var p *Problem
	if errors.As(err, &p) {
		return s.consoleError(c, sess, p.Status, p.Detail)
	}
	if errors.Is(err, user.ErrBusy) { // setting a password while many sign in
		c.Response().Header().Set("Retry-After", busyRetryAfter)
		return s.consoleError(c, sess, http.StatusServiceUnavailable, busyMessage)
	}
	s.logger.ErrorContext(c.Request().Context(), "console page failed", "err", err, "path", c.Path(),
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	return s.consoleError(c, sess, http.StatusInternalServerError,
		"Something went wrong on our side. Reload the page; if it happens again, quote request "+c.Response().Header().Get(echo.HeaderXRequestID)+".")
}

// setCookie sets one of the console's cookies: HttpOnly, SameSite=Lax, and
// Secure with a prefixed name over HTTPS (cookieName). No Domain, ever.
func (s *Server) setCookie(c echo.Context, name, value, path string, maxAge int) {
	c.SetCookie(&http.Cookie{
		Name: s.cookieName(c, name), Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.https(c),
	})
}

// What a sign-in refused for load says, and when to come back.
const (
	busyRetryAfter = "2"
	busyMessage    = "Many people are signing in at this moment: try again in a few seconds."
)

// maxEmailLength is the longest address SMTP allows (RFC 5321).
const maxEmailLength = 254

// loginData is the sign-in page's data.
type loginData struct {
	Email, Workspace, Next, Error, Notice string
	// AskWorkspace opens the workspace field (the email is in several).
	AskWorkspace bool
}

func (s *Server) loginPage(c echo.Context) error {
	if _, err := s.sessionOf(c); err == nil {
		return c.Redirect(http.StatusSeeOther, safeNext(c.QueryParam("next")))
	}
	d := loginData{Next: c.QueryParam("next"), Workspace: c.QueryParam("workspace")}
	if c.QueryParam("signed_out") != "" {
		d.Notice = "You are signed out."
	}
	return s.renderLogin(c, http.StatusOK, d)
}

func (s *Server) renderLogin(c echo.Context, status int, d loginData) error {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	s.setCookie(c, loginCSRFCookie, token, "/login", 3600)
	return s.render(c, status, "login.html", view{Title: "Sign in", CSRF: token, D: d})
}

func (s *Server) login(c echo.Context) error {
	d := loginData{
		Email: strings.TrimSpace(c.FormValue("email")), Workspace: strings.TrimSpace(c.FormValue("workspace")),
		Next: c.FormValue("next"),
	}
	d.AskWorkspace = d.Workspace != ""
	ck, err := c.Cookie(s.cookieName(c, loginCSRFCookie))
	if err != nil || ck.Value == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(c.FormValue("csrf"))) != 1 {
		d.Error = "The sign-in form had expired. Enter your email and password again."
		return s.renderLogin(c, http.StatusForbidden, d)
	}
	password := c.FormValue("password")
	// Lengths are checked before anything is counted or hashed.
	switch {
	case len(d.Email) > maxEmailLength || len(d.Workspace) > maxEmailLength:
		d.Email, d.Workspace = "", ""
		d.Error = "This is not an email address: enter the one you sign in with."
		return s.renderLogin(c, http.StatusUnprocessableEntity, d)
	case d.Email == "" || password == "":
		d.Error = "Enter your email and your password."
		return s.renderLogin(c, http.StatusUnprocessableEntity, d)
	case len(password) > 4*user.MaxPasswordLength || utf8.RuneCountInString(password) > user.MaxPasswordLength:
		d.Error = fmt.Sprintf("Passwords are at most %d characters, and this one is longer: check that you pasted the right thing.", user.MaxPasswordLength)
		return s.renderLogin(c, http.StatusUnprocessableEntity, d)
	}
	if s.Users == nil {
		return s.consoleError(c, user.Session{}, http.StatusServiceUnavailable, "Sign-in is not available on this server.")
	}
	attempt, err := s.SignIn.Begin(c.RealIP(), d.Email)
	var throttled *user.Throttled
	if errors.As(err, &throttled) {
		// Said even to the right password: that is what stops guessing.
		c.Response().Header().Set("Retry-After", strconv.Itoa(waitSeconds(throttled.Wait)))
		who := "from your network"
		if throttled.Account {
			who = "for this account"
		}
		d.Error = "Too many sign-in attempts " + who + ": try again in " + humanWait(throttled.Wait) + "."
		return s.renderLogin(c, http.StatusTooManyRequests, d)
	}
	u, err := s.Users.Authenticate(c.Request().Context(), d.Workspace, d.Email, password)
	switch {
	case errors.Is(err, user.ErrBadCredentials):
		attempt.Failed()
		// One message for an unknown email and a wrong password: the page
		// does not tell who has an account.
		d.Error = "Wrong email or password."
		return s.renderLogin(c, http.StatusUnauthorized, d)
	case errors.Is(err, user.ErrAmbiguous):
		attempt.Succeeded() // the password is right
		d.Error, d.AskWorkspace = "This email has an account in several workspaces: enter the workspace too.", true
		return s.renderLogin(c, http.StatusConflict, d)
	case errors.Is(err, user.ErrDisabled):
		attempt.Succeeded()
		d.Error = "Your account was deactivated by an admin of the workspace. Ask them to reactivate it."
		return s.renderLogin(c, http.StatusForbidden, d)
	case errors.Is(err, user.ErrBusy):
		attempt.Abandoned()
		c.Response().Header().Set("Retry-After", busyRetryAfter)
		d.Error = busyMessage
		return s.renderLogin(c, http.StatusServiceUnavailable, d)
	case err != nil:
		attempt.Abandoned()
		return s.consoleFail(c, user.Session{}, err)
	}
	attempt.Succeeded()
	token, _, err := s.Users.StartSession(c.Request().Context(), u, time.Now())
	if err != nil {
		return s.consoleFail(c, user.Session{}, err)
	}
	s.setCookie(c, sessionCookie, token, "/", int(user.SessionTTL/time.Second))
	s.setCookie(c, loginCSRFCookie, "", "/login", -1)
	return c.Redirect(http.StatusSeeOther, safeNext(d.Next))
}

// waitSeconds is a wait in whole seconds, rounded up (Retry-After).
func waitSeconds(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}

// humanWait says a wait as a person would: "30 seconds", "2 minutes".
func humanWait(d time.Duration) string {
	n := waitSeconds(d)
	switch {
	case n == 1:
		return "1 second"
	case n < 90:
		return strconv.Itoa(n) + " seconds"
	}
	return strconv.Itoa((n+59)/60) + " minutes"
}

func (s *Server) logout(c echo.Context, _ user.Session) error {
	if token := s.sessionToken(c); token != "" {
		if err := s.Users.EndSession(c.Request().Context(), token); err != nil {
			return err
		}
	}
	s.setCookie(c, sessionCookie, "", "/", -1)
	return c.Redirect(http.StatusSeeOther, "/login?signed_out=1")
}

// safeNext keeps a post-sign-in redirect on this site: a path of this
// site, starting with one "/", with no scheme, host, backslash or control
// character (browsers drop tabs and newlines from URLs, so "/\t/evil" would
// become "//evil", another site). Anything else goes to the Overview.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') ||
		strings.ContainsFunc(next, unicode.IsControl) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "/"
	}
	return next
}

// dashboardData is the start page's data.
type dashboardData struct {
	States   []stateCount
	Total    int
	Segments []segmentRow
	Journeys []journeyRow
	// Demo offers to load the demo shop (parcours dev only) and says what
	// a load just did (console_demo.go).
	Demo demoPanel
}

type stateCount struct {
	State, Label, Help string
	Count              int
}

func (s *Server) dashboard(c echo.Context, sess user.Session) error {
	return s.renderDashboard(c, sess, nil)
}

// renderDashboard renders the Overview; loaded is what a demo load just
// did, shown above the figures (nil: none).
func (s *Server) renderDashboard(c echo.Context, sess user.Session, loaded *demo.Result) error {
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	counts, err := s.Profiles.CountByState(ctx, ws)
	if err != nil {
		return err
	}
	d := dashboardData{}
	for _, st := range profileStates {
		d.States = append(d.States, stateCount{State: st.State, Label: st.Label, Help: st.Help, Count: counts[st.State]})
		d.Total += counts[st.State]
	}
	if d.Segments, err = s.segmentRows(c, ws); err != nil {
		return err
	}
	if d.Journeys, err = s.journeyRows(c, ws, 0); err != nil {
		return err
	}
	d.Demo = s.demoPanelFor(sess, loaded)
	return s.render(c, http.StatusOK, "dashboard.html", view{Title: "Overview", Nav: "dashboard", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// profileStates describes the states of a profile for people.
var profileStates = []struct{ State, Label, Help string }{
	{"anonymous", "Anonymous", "seen, not yet identified"},
	{"known", "Known", "identified by the workspace's unique identifier"},
	{"omnichannel", "Omnichannel", "known, and seen on two or more sources"},
}

func stateLabel(state string) string {
	for _, st := range profileStates {
		if st.State == state {
			return st.Label
		}
	}
	return state
}

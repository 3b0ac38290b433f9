package api

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/user"
)

// settingsUserRow is a user as the Users page lists them.
type settingsUserRow struct {
	user.User
	// Label is the name, or the email when there is none.
	Label string
	// IsMe: the signed-in user (no deactivate or remove on their own row).
	IsMe bool
	// SoleAdmin: the workspace's only active admin (cannot be demoted or
	// deactivated).
	SoleAdmin bool
}

// newUserResult is what creating a user shows, once: the password to
// hand over.
type newUserResult struct {
	Label, Email, Password string
	Role                   user.Role
	SignInURL              string
}

// usersData is the Users page's data.
type usersData struct {
	settingsNav
	Users []settingsUserRow
	Roles []settingsRole
	// The new user form (kept when it fails) and its errors: email, name, role.
	NewEmail, NewName string
	NewRole           user.Role
	FieldErrors       map[string]string
	Created           *newUserResult
	Error, Notice     string
}

// settingsRole describes a role in words.
type settingsRole struct {
	Role  user.Role
	Label string
}

var settingsRoles = []settingsRole{
	{user.RoleAdmin, "Admin: everything, including settings and users"},
	{user.RoleMarketer, "Marketer: builds segments, templates and journeys"},
	{user.RoleViewer, "Viewer: looks, changes nothing"},
}

func settingsUserLabel(u user.User) string {
	if u.Name != "" {
		return u.Name
	}
	return u.Email
}

func (s *Server) usersData(c echo.Context, sess user.Session) (usersData, error) {
	users, err := s.Users.List(c.Request().Context(), sess.User.WorkspaceID)
	if err != nil {
		return usersData{}, err
	}
	d := usersData{settingsNav: settingsNavFor(sess, "users"), Roles: settingsRoles, NewRole: user.RoleMarketer, FieldErrors: map[string]string{}}
	admins := 0
	for _, u := range users {
		if u.Role == user.RoleAdmin && u.DisabledAt == nil {
			admins++
		}
	}
	for _, u := range users {
		d.Users = append(d.Users, settingsUserRow{User: u, Label: settingsUserLabel(u), IsMe: u.ID == sess.User.ID,
			SoleAdmin: admins == 1 && u.Role == user.RoleAdmin && u.DisabledAt == nil})
	}
	return d, nil
}

func (s *Server) renderUsers(c echo.Context, sess user.Session, status int, d usersData) error {
	return s.render(c, status, "settings_users.html", view{Title: "Settings: users", Nav: "settings", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// userActionNotices says in words what an action on a user did, for the notice
// after the redirect.
var userActionNotices = map[string]string{
	"role":        "%s now has the %s role.",
	"deactivated": "%s is deactivated: they were signed out and cannot sign in until reactivated.",
	"reactivated": "%s can sign in again, with the password they had.",
}

func (s *Server) usersPage(c echo.Context, sess user.Session) error {
	d, err := s.usersData(c, sess)
	if err != nil {
		return err
	}
	done := c.QueryParam("done")
	if done == "removed" {
		d.Notice = "The user was removed."
	} else if msg, ok := userActionNotices[done]; ok {
		for _, u := range d.Users {
			if u.ID == c.QueryParam("user") {
				d.Notice = strings.Replace(strings.Replace(msg, "%s", u.Label, 1), "%s", string(u.Role), 1)
			}
		}
	}
	return s.renderUsers(c, sess, http.StatusOK, d)
}

// createUserForm adds a user with a random password, shown once on the
// page that answers: the admin hands it over, and the new user changes it
// under Your account.
func (s *Server) createUserForm(c echo.Context, sess user.Session) error {
	ctx := c.Request().Context()
	email, name, role := strings.TrimSpace(c.FormValue("email")), strings.TrimSpace(c.FormValue("name")), user.Role(c.FormValue("role"))
	password, err := user.RandomPassword()
	if err != nil {
		return err
	}
	u, err := s.Users.Create(ctx, sess.User.WorkspaceID, email, name, role, password)
	d, lerr := s.usersData(c, sess)
	if lerr != nil {
		return lerr
	}
	var fe *user.FieldError
	switch {
	case errors.As(err, &fe):
		msg, ok := map[string]string{
			"email": "Type the person's email address, e.g. ana@shop.example.",
			"role":  "Choose one of the roles.",
			"name":  "Keep the name to 200 characters or fewer.",
		}[fe.Field]
		if !ok {
			msg = "This " + fe.Reason + "."
		}
		d.FieldErrors[fe.Field] = msg
	case errors.Is(err, user.ErrEmailTaken):
		d.FieldErrors["email"] = "Someone in this workspace already has this email (perhaps deactivated: see the list)."
	case err != nil:
		return err
	}
	if err != nil {
		d.NewEmail, d.NewName, d.NewRole = email, name, role
		d.Error = "The user was not added: fix what is marked below."
		return s.renderUsers(c, sess, http.StatusUnprocessableEntity, d)
	}
	w, err := s.Workspaces.Get(ctx, sess.User.WorkspaceID)
	if err != nil {
		return err
	}
	base := strings.TrimRight(s.publicURL(), "/")
	if base == "" {
		base = c.Scheme() + "://" + c.Request().Host
	}
	d.Created = &newUserResult{Label: settingsUserLabel(u), Email: u.Email, Password: password, Role: u.Role,
		SignInURL: base + "/login?workspace=" + url.QueryEscape(w.Slug)}
	return s.renderUsers(c, sess, http.StatusCreated, d)
}

// userAction runs an admin's action on another user of the workspace and
// goes back to the list saying what it did; a refusal (the last admin,
// oneself) is shown on the list.
func (s *Server) userAction(action string) pageHandler {
	return func(c echo.Context, sess user.Session) error {
		ctx := c.Request().Context()
		ws, id := sess.User.WorkspaceID, c.Param("id")
		if !isUUID(id) {
			return problem(http.StatusNotFound, "There is no such user in this workspace.")
		}
		target, err := s.Users.Get(ctx, ws, id)
		if errors.Is(err, user.ErrNotFound) {
			return problem(http.StatusNotFound, "There is no such user in this workspace.")
		}
		if err != nil {
			return err
		}
		switch action {
		case "role":
			_, err = s.Users.SetRole(ctx, ws, id, user.Role(c.FormValue("role")))
		case "deactivated":
			_, err = s.Users.Deactivate(ctx, ws, sess.User.ID, id, time.Now())
		case "reactivated":
			_, err = s.Users.Reactivate(ctx, ws, id)
		case "removed":
			err = s.Users.Remove(ctx, ws, sess.User.ID, id)
		}
		var msg string
		var fe *user.FieldError
		switch {
		case err == nil:
			// An admin who stepped down lands on the list too: everyone may see it.
			return c.Redirect(http.StatusSeeOther, "/settings/users?done="+action+"&user="+url.QueryEscape(id))
		case errors.Is(err, user.ErrLastAdmin):
			msg = settingsUserLabel(target) + " is the workspace's only active admin: make someone else an admin first, so that somebody can still manage settings and users."
		case errors.Is(err, user.ErrSelf):
			msg = "You cannot deactivate or remove your own account: ask another admin."
		case errors.Is(err, user.ErrActive):
			msg = "Deactivate " + settingsUserLabel(target) + " before removing them."
		case errors.As(err, &fe):
			msg = "Choose admin, marketer or viewer."
		default:
			return err
		}
		d, err := s.usersData(c, sess)
		if err != nil {
			return err
		}
		d.Error = msg
		return s.renderUsers(c, sess, http.StatusConflict, d)
	}
}

// accountData is the Your account page's data.
type accountData struct {
	settingsNav
	Me          user.User
	MinLength   int
	FieldErrors map[string]string
	Error       string
	Saved       bool
}

func (s *Server) renderAccount(c echo.Context, sess user.Session, status int, d accountData) error {
	d.settingsNav, d.Me, d.MinLength = settingsNavFor(sess, "account"), sess.User, user.MinPasswordLength
	if d.FieldErrors == nil {
		d.FieldErrors = map[string]string{}
	}
	return s.render(c, status, "settings_account.html", view{Title: "Settings: your account", Nav: "settings", User: &sess.User, CSRF: sess.CSRF, D: d})
}

func (s *Server) accountPage(c echo.Context, sess user.Session) error {
	return s.renderAccount(c, sess, http.StatusOK, accountData{Saved: c.QueryParam("saved") != ""})
}

// changePasswordForm changes the signed-in user's own password; the current
// one is asked for, so that a browser left open is not enough. Their other
// browsers are signed out.
func (s *Server) changePasswordForm(c echo.Context, sess user.Session) error {
	current, next := c.FormValue("current_password"), c.FormValue("new_password")
	d := accountData{FieldErrors: map[string]string{}}
	if next != c.FormValue("confirm_password") {
		d.FieldErrors["confirm_password"] = "This is not the same as the new password: type it again."
	}
	if current == "" {
		d.FieldErrors["current_password"] = "Type your current password."
	}
	if len(d.FieldErrors) == 0 {
		token := s.sessionToken(c) // kept signed in (the cookie's name depends on https)
		err := s.Users.ChangePassword(c.Request().Context(), sess.User.WorkspaceID, sess.User.ID, current, next, token)
		var fe *user.FieldError
		switch {
		case err == nil:
			return c.Redirect(http.StatusSeeOther, "/settings/account?saved=1")
		case errors.As(err, &fe) && fe.Field == "current_password":
			d.FieldErrors[fe.Field] = "This is not your current password."
		case errors.As(err, &fe):
			d.FieldErrors[fe.Field] = "The new password " + fe.Reason + "."
		default:
			return err
		}
	}
	d.Error = "Your password was not changed: fix what is marked below."
	return s.renderAccount(c, sess, http.StatusUnprocessableEntity, d)
}

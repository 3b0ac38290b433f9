package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/user"
	"github.com/parcours/parcours/pkg/workspace"
)

// Timeouts of the HTTP server that serves the API (cmd/parcours sets them).
const (
	// ReadTimeout is how long a client has to send a whole request, headers
	// and body: the body limit (1 MB by default) at 17 KB/s, twice
	// RequestTimeout's default. A client trickling a body keeps a
	// connection and a goroutine no longer than this.
	ReadTimeout = time.Minute
	// ImportReadTimeout replaces ReadTimeout for an import upload, once the
	// request has shown an admin key or a marketer's session: 100 MB
	// (MaxImportBytes) at 60 KB/s.
	ImportReadTimeout = 30 * time.Minute
	// hstsMaxAge is one year, without includeSubDomains (the API may share a
	// domain with sites Parcours knows nothing of).
	hstsMaxAge = "max-age=31536000"
)

// https reports whether the browser reached the API over HTTPS: a TLS
// connection, X-Forwarded-Proto from a trusted proxy (Deps.TrustProxy), or
// an https PARCOURS_PUBLIC_URL (the operator says browsers use https).
func (s *Server) https(c echo.Context) bool {
	return c.Scheme() == "https" || (s.Ledger != nil && strings.HasPrefix(s.Ledger.PublicURL, "https://"))
}

// securityHeaders sets the headers every answer carries; a handler may
// change them (the preference pages send no referrer at all).
func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		if s.https(c) {
			h.Set("Strict-Transport-Security", hstsMaxAge)
		}
		return next(c)
	}
}

// uploadDeadline gives an import upload ImportReadTimeout to arrive instead
// of ReadTimeout, once it has shown credentials allowed to import: nobody
// else holds a connection open that long.
func (s *Server) uploadDeadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if isImportUpload(c) && s.mayUpload(c) {
			// Not supported (HTTP/2 through some wrappers): ReadTimeout stays.
			_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(ImportReadTimeout))
		}
		return next(c)
	}
}

// mayUpload reports whether the request carries an admin key (the API's
// import) or a marketer's session (the console's).
func (s *Server) mayUpload(c echo.Context) bool {
	if c.Path() == consoleImportPath {
		sess, err := s.sessionOf(c)
		return err == nil && sess.User.Role.Allows(user.RoleMarketer)
	}
	secret := credential(c.Request())
	if secret == "" || s.Workspaces == nil {
		return false
	}
	k, err := s.keys.authenticate(c.Request().Context(), secret)
	return err == nil && k.Scope.Allows(workspace.ScopeAdmin)
}

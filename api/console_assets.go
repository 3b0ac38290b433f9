package api

import (
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/web"
)

// assets serves the console's embedded scripts and styles (web/assets/).
// They change only with the binary; a five-minute cache keeps page loads
// quick without serving an old script long after an upgrade.
func (s *Server) assets(c echo.Context) error {
	name := path.Clean("/" + c.Param("*"))
	if strings.Contains(name, "..") {
		return c.NoContent(http.StatusNotFound)
	}
	b, err := fs.ReadFile(web.FS, "assets"+name)
	if err != nil {
		return c.NoContent(http.StatusNotFound)
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("X-Content-Type-Options", "nosniff")
	return c.Blob(http.StatusOK, ct, b)
}

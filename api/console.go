package api

import (
	"bytes"
	"html/template"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/web"
)

var consoleTmpl = template.Must(template.ParseFS(web.FS, "index.html"))

// console serves the console's start page.
func (s *Server) console(c echo.Context) error {
	var buf bytes.Buffer
	if err := consoleTmpl.Execute(&buf, map[string]string{"TemporalUIURL": s.TemporalUIURL}); err != nil {
		return err
	}
	return c.HTMLBlob(http.StatusOK, buf.Bytes())
}

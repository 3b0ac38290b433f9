package api

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/workspace"
)

func (s *Server) getWorkspace(c echo.Context) error {
	w, err := s.Workspaces.Get(c.Request().Context(), keyFrom(c).WorkspaceID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, w)
}

func (s *Server) listKeys(c echo.Context) error {
	keys, err := s.Workspaces.ListKeys(c.Request().Context(), keyFrom(c).WorkspaceID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": keys})
}

// createKeyRequest is the body of POST /v1/api-keys.
type createKeyRequest struct {
	Name   string `json:"name"`
	Scope  string `json:"scope"`
	Source string `json:"source"`
}

func (s *Server) createKey(c echo.Context) error {
	var req createKeyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	k, err := s.Workspaces.CreateKey(c.Request().Context(), keyFrom(c).WorkspaceID, workspace.KeySpec{
		Name: req.Name, Scope: workspace.Scope(req.Scope), Source: req.Source,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, k)
}

func (s *Server) revokeKey(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return problem(http.StatusNotFound, "No API key "+id+" in this workspace.")
	}
	me := keyFrom(c)
	if id == me.ID {
		return invalid("A key cannot revoke itself; use another admin key.", FieldError{Field: "id", Reason: "is the key making this request"})
	}
	k, err := s.Workspaces.RevokeKey(c.Request().Context(), me.WorkspaceID, id)
	if errors.Is(err, workspace.ErrNotFound) {
		return problem(http.StatusNotFound, "No API key "+id+" in this workspace.")
	}
	if err != nil {
		return err
	}
	s.keys.forget(k.ID)
	return c.JSON(http.StatusOK, k)
}

// isUUID checks the canonical textual form, so that malformed ids are a 404
// rather than a database error.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
				return false
			}
		}
	}
	return true
}

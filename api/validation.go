package api

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/validation"
	"github.com/parcours/parcours/pkg/workspace"
)

// ruleRequest is the body of POST and PATCH /v1/validation-rules.
type ruleRequest struct {
	Name    string  `json:"name"`
	Source  string  `json:"source"`
	Rule    *string `json:"rule"`
	Enabled *bool   `json:"enabled"`
}

// ruleProblem turns a compile error into a 422 that points at the position.
func ruleProblem(err error) error {
	var ce *validation.CompileError
	if errors.As(err, &ce) {
		return invalid("The rule does not compile.", FieldError{Field: "rule", Reason: ce.Message, Line: ce.Line, Column: ce.Column})
	}
	switch {
	case errors.Is(err, validation.ErrNameTaken):
		return invalid("Choose another name.", FieldError{Field: "name", Reason: "a rule with this name exists in this workspace"})
	case errors.Is(err, validation.ErrNotFound):
		return problem(http.StatusNotFound, "No such validation rule in this workspace.")
	}
	return err
}

func (s *Server) listRules(c echo.Context) error {
	rules, err := s.Validation.List(c.Request().Context(), keyFrom(c).WorkspaceID)
	if err != nil {
		return err
	}
	if rules == nil {
		rules = []validation.Stored{}
	}
	return c.JSON(http.StatusOK, map[string]any{"data": rules})
}

func (s *Server) createRule(c echo.Context) error {
	var req ruleRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var fields []FieldError
	if req.Name == "" || len(req.Name) > 200 {
		fields = append(fields, FieldError{Field: "name", Reason: "must be 1-200 characters"})
	}
	if req.Rule == nil {
		fields = append(fields, FieldError{Field: "rule", Reason: "is required: a condition true for records to keep, e.g. event != \"Order Completed\" || properties.total > 0"})
	}
	if req.Source != "" {
		if err := (workspace.KeySpec{Name: "x", Scope: workspace.ScopeWrite, Source: req.Source}).Validate(); err != nil {
			fields = append(fields, FieldError{Field: "source", Reason: "must be a source name such as web, store or crm, or empty for every source"})
		}
	}
	if len(fields) > 0 {
		return invalid("The rule cannot be saved.", fields...)
	}
	enabled := req.Enabled == nil || *req.Enabled
	r, err := s.Validation.Create(c.Request().Context(), keyFrom(c).WorkspaceID, validation.Stored{Name: req.Name, Source: req.Source, Rule: *req.Rule, Enabled: enabled})
	if err != nil {
		return ruleProblem(err)
	}
	return c.JSON(http.StatusCreated, r)
}

func (s *Server) updateRule(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return problem(http.StatusNotFound, "No such validation rule in this workspace.")
	}
	var req ruleRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Name != "" || req.Source != "" {
		return invalid("Only rule and enabled can change; to rename or move a rule to another source, create a new one.", FieldError{Field: "name", Reason: "cannot change"})
	}
	r, err := s.Validation.Update(c.Request().Context(), keyFrom(c).WorkspaceID, id, req.Rule, req.Enabled)
	if err != nil {
		return ruleProblem(err)
	}
	return c.JSON(http.StatusOK, r)
}

func (s *Server) deleteRule(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return problem(http.StatusNotFound, "No such validation rule in this workspace.")
	}
	if err := s.Validation.Delete(c.Request().Context(), keyFrom(c).WorkspaceID, id); err != nil {
		return ruleProblem(err)
	}
	return c.NoContent(http.StatusNoContent)
}

// replayRequest is the body of POST /v1/rejected/replay.
type replayRequest struct {
	IDs []int64 `json:"ids"`
}

// replayRejected runs quarantined records through parsing and the current
// rules again; those that pass are stored.
func (s *Server) replayRejected(c echo.Context) error {
	var req replayRequest
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	rules, err := s.Validation.Enabled(ctx, ws)
	if err != nil {
		return err
	}
	res, err := s.Ingest.Replay(ctx, ws, req.IDs, func(m *events.Message, source string) string {
		return validation.Check(rules, m, source)
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

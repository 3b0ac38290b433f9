package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/workspace"
)

// Problem is an RFC 9457 problem document: every API error is one, served as
// application/problem+json, with a detail a marketer can act on and, for bad
// input, the fields at fault.
type Problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	RequestID string       `json:"request_id,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`
}

// FieldError says which input field is wrong and why.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
	// Line and Column locate an error inside a rule or template (1-based).
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
}

func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail) }

// Problem types. "about:blank" means the HTTP status says it all.
const (
	typeBlank      = "about:blank"
	typeValidation = "urn:parcours:problem:validation"
)

// problem builds a Problem for status with a human detail.
func problem(status int, detail string) *Problem {
	return &Problem{Type: typeBlank, Title: http.StatusText(status), Status: status, Detail: detail}
}

// invalid builds a 422 naming the fields at fault.
func invalid(detail string, fields ...FieldError) *Problem {
	return &Problem{
		Type:   typeValidation,
		Title:  "Invalid input",
		Status: http.StatusUnprocessableEntity,
		Detail: detail,
		Errors: fields,
	}
}

// errorHandler turns every error a handler or middleware returns into a
// problem document. Unexpected errors are logged with the request id and
// answered with a generic 500 that leaks nothing.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	p := s.toProblem(err, c)
	p.Instance = c.Request().URL.Path
	p.RequestID = c.Response().Header().Get(echo.HeaderXRequestID)
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(p.Status)
		return
	}
	_ = c.JSON(p.Status, p)
}

func (s *Server) toProblem(err error, c echo.Context) *Problem {
	var (
		p       *Problem
		fe      *workspace.FieldError
		httpErr *echo.HTTPError
	)
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &fe):
		return invalid("The request has an invalid field.", FieldError{Field: fe.Field, Reason: fe.Reason})
	case errors.Is(err, workspace.ErrNotFound):
		return problem(http.StatusNotFound, "No such resource in this workspace.")
	case errors.Is(err, context.DeadlineExceeded):
		return problem(http.StatusServiceUnavailable, "The request took too long and was abandoned; retry later.")
	case errors.As(err, &httpErr):
		return fromEchoError(httpErr, c)
	}
	s.logger.ErrorContext(c.Request().Context(), "request failed",
		"err", err, "method", c.Request().Method, "path", c.Path(),
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	return problem(http.StatusInternalServerError, "Something went wrong on our side. Quote the request_id if you report it.")
}

func fromEchoError(he *echo.HTTPError, c echo.Context) *Problem {
	switch he.Code {
	case http.StatusNotFound:
		return problem(he.Code, fmt.Sprintf("There is no endpoint %s %s. See /openapi.json for the API.", c.Request().Method, c.Request().URL.Path))
	case http.StatusMethodNotAllowed:
		return problem(he.Code, fmt.Sprintf("%s is not allowed on %s.", c.Request().Method, c.Request().URL.Path))
	case http.StatusRequestEntityTooLarge:
		return problem(he.Code, "The request body is larger than this server accepts (PARCOURS_BODY_LIMIT).")
	case http.StatusUnsupportedMediaType:
		return problem(he.Code, "Send the body as JSON with Content-Type: application/json.")
	case http.StatusServiceUnavailable:
		return problem(he.Code, "The request took too long and was abandoned; retry later.")
	}
	msg := fmt.Sprint(he.Message)
	if he.Internal != nil && he.Code == http.StatusBadRequest {
		msg = describeBindError(he.Internal)
	}
	return problem(he.Code, msg)
}

// describeBindError explains a JSON decoding error in words a person can act on.
func describeBindError(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "cannot unmarshal"):
		return "A field has the wrong type: " + s
	case strings.Contains(s, "unexpected EOF"), strings.Contains(s, "invalid character"):
		return "The body is not valid JSON: " + s
	}
	return s
}

// readRawBody reads a request body exactly as sent (signed webhooks verify
// it byte for byte), answering 413 past the body limit.
func readRawBody(c echo.Context) ([]byte, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, problem(http.StatusRequestEntityTooLarge, "The request body is larger than this server accepts (PARCOURS_BODY_LIMIT).")
		}
		return nil, problem(http.StatusBadRequest, "The body could not be read: "+err.Error())
	}
	return body, nil
}

package api

import (
	"context"
	_ "embed"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
)

// healthz says the process is alive; it checks nothing else, so that an
// orchestrator does not restart the API because the database is down.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok", "version": s.Version})
}

// readyz says whether the API can serve: PostgreSQL and Temporal answer.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"database": "ok", "temporal": "ok"}
	var failed []FieldError
	if err := s.Pool.Ping(ctx); err != nil {
		checks["database"] = "unreachable"
		failed = append(failed, FieldError{Field: "database", Reason: "PostgreSQL does not answer: " + err.Error()})
	}
	if _, err := s.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		checks["temporal"] = "unreachable"
		failed = append(failed, FieldError{Field: "temporal", Reason: "Temporal does not answer: " + err.Error()})
	}
	if len(failed) > 0 {
		p := problem(http.StatusServiceUnavailable, "Parcours is not ready: a dependency does not answer.")
		p.Errors = failed
		return p
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "ready", "checks": checks})
}

func (s *Server) metricsHandler(c echo.Context) error {
	promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}).ServeHTTP(c.Response(), c.Request())
	return nil
}

//go:embed openapi.json
var openapiDoc []byte

func (s *Server) openapi(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openapiDoc)
}

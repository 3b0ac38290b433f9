package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/workspace"
)

// route is one line of the route table: who may call what.
type route struct {
	method  string
	path    string
	scope   workspace.Scope // "" means public
	handler echo.HandlerFunc
}

const public workspace.Scope = ""

// routes is the API's one route table. Each handler's permission sits beside
// it; /openapi.json documents exactly these routes (a test checks it).
func (s *Server) routes() []route {
	return []route{
		// Operations
		{http.MethodGet, "/healthz", public, s.healthz},
		{http.MethodGet, "/readyz", public, s.readyz},
		{http.MethodGet, "/metrics", public, s.metricsHandler},
		{http.MethodGet, "/openapi.json", public, s.openapi},
		{http.MethodGet, "/", public, s.console},

		// Workspace and keys
		{http.MethodGet, "/v1/workspace", workspace.ScopeAdmin, s.getWorkspace},
		{http.MethodGet, "/v1/api-keys", workspace.ScopeAdmin, s.listKeys},
		{http.MethodPost, "/v1/api-keys", workspace.ScopeAdmin, s.createKey},
		{http.MethodDelete, "/v1/api-keys/:id", workspace.ScopeAdmin, s.revokeKey},

		// Diagnostics
		{http.MethodPost, "/v1/diagnostics/ping", workspace.ScopeAdmin, s.ping},
	}
}

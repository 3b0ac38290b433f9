package api

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/parcours/parcours/workflows"
)

// pingResponse reports a diagnostic round trip.
type pingResponse struct {
	WorkflowID    string    `json:"workflow_id"`
	RunID         string    `json:"run_id"`
	WorkspaceSlug string    `json:"workspace_slug"`
	DatabaseTime  time.Time `json:"database_time"`
	TookMS        int64     `json:"took_ms"`
	TemporalUIURL string    `json:"temporal_ui_url,omitempty"`
}

// ping runs the Ping workflow for the caller's workspace and waits for it:
// it proves API → Temporal → worker → PostgreSQL work end to end.
func (s *Server) ping(c echo.Context) error {
	out, err := s.runPing(c.Request().Context(), keyFrom(c).WorkspaceID, c.Response().Header().Get(echo.HeaderXRequestID))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// runPing runs the Ping workflow for a workspace (the API's ping and the
// console's system check), answering a 503 problem saying which part failed.
func (s *Server) runPing(ctx context.Context, workspaceID, requestID string) (pingResponse, error) {
	start := time.Now()
	id := workflows.PingWorkflowID(workspaceID, requestID)
	run, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                    id,
		TaskQueue:             s.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.SAWorkspace.ValueSet(workspaceID)),
		// A ping that no worker picks up within this time means no worker runs.
		WorkflowExecutionTimeout: 20 * time.Second,
	}, workflows.PingWorkflow, workflows.PingInput{WorkspaceID: workspaceID})
	if err != nil {
		return pingResponse{}, problem(http.StatusServiceUnavailable, "Temporal did not accept the diagnostic workflow: "+err.Error())
	}
	var res workflows.PingResult
	if err := run.Get(ctx, &res); err != nil {
		return pingResponse{}, problem(http.StatusServiceUnavailable, "The diagnostic workflow did not complete (is a worker running on task queue "+s.TaskQueue+"?): "+err.Error())
	}
	return pingResponse{
		WorkflowID:    run.GetID(),
		RunID:         run.GetRunID(),
		WorkspaceSlug: res.WorkspaceSlug,
		DatabaseTime:  res.DatabaseTime,
		TookMS:        time.Since(start).Milliseconds(),
		TemporalUIURL: s.runURL(run.GetID(), run.GetRunID()),
	}, nil
}

// runURL links a workflow run in the Temporal Web UI.
func (s *Server) runURL(workflowID, runID string) string {
	if s.TemporalUIURL == "" {
		return ""
	}
	return s.TemporalUIURL + "/namespaces/" + url.PathEscape(s.Namespace) + "/workflows/" + url.PathEscape(workflowID) + "/" + url.PathEscape(runID) + "/history"
}

package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/parcours/parcours/activities"
)

// PingInput asks the worker to prove it can reach the database for a workspace.
type PingInput struct {
	WorkspaceID string
}

// PingResult is what the worker saw.
type PingResult struct {
	WorkspaceSlug string
	DatabaseTime  time.Time
}

// Ping is the diagnostic workflow behind POST /v1/diagnostics/ping: it runs
// one activity that reads the workspace from PostgreSQL, proving the whole
// chain API → Temporal → worker → database works.
func Ping(ctx workflow.Context, in PingInput) (PingResult, error) {
	var a *activities.Activities
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// A database round trip; a stuck one should surface quickly to the caller.
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        3,
			NonRetryableErrorTypes: []string{activities.ErrTypeNotFound},
		},
	})
	var out activities.CheckWorkspaceResult
	if err := workflow.ExecuteActivity(ctx, a.CheckWorkspace, activities.CheckWorkspaceInput{WorkspaceID: in.WorkspaceID}).Get(ctx, &out); err != nil {
		return PingResult{}, err
	}
	return PingResult{WorkspaceSlug: out.Slug, DatabaseTime: out.DatabaseTime}, nil
}

package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/workflows"
)

func TestPingReportsTheWorkspace(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var a *activities.Activities
	at := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	env.OnActivity(a.CheckWorkspace, mock.Anything, activities.CheckWorkspaceInput{WorkspaceID: "ws1"}).
		Return(activities.CheckWorkspaceResult{Slug: "acme", DatabaseTime: at}, nil)
	env.ExecuteWorkflow(workflows.Ping, workflows.PingInput{WorkspaceID: "ws1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res workflows.PingResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.WorkspaceSlug != "acme" || !res.DatabaseTime.Equal(at) {
		t.Fatalf("result %+v", res)
	}
}

// A missing workspace fails at once: retrying cannot make it appear.
func TestPingDoesNotRetryAMissingWorkspace(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var a *activities.Activities
	calls := 0
	env.OnActivity(a.CheckWorkspace, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ activities.CheckWorkspaceInput) (activities.CheckWorkspaceResult, error) {
			calls++
			return activities.CheckWorkspaceResult{}, temporal.NewNonRetryableApplicationError("workspace gone", activities.ErrTypeNotFound, nil)
		})
	env.ExecuteWorkflow(workflows.Ping, workflows.PingInput{WorkspaceID: "gone"})
	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != activities.ErrTypeNotFound {
		t.Fatalf("workflow error %v, want a NotFound application error", err)
	}
	if calls != 1 {
		t.Fatalf("activity ran %d times, want 1", calls)
	}
}

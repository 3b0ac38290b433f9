package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/workflows"
)

// The sweep visits every workspace, batch after batch, records sizes once per
// workspace, and evaluates at one fixed time: the workflow's start.
func TestSegmentRecomputeSweepsEveryWorkspaceInBatches(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var a *activities.Activities
	start := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	env.SetStartTime(start)
	env.OnActivity(a.SegmentWorkspaces, mock.Anything).Return([]string{"ws-a", "ws-b"}, nil)
	pages := map[string][]string{"ws-a": {"p100", "p200", ""}, "ws-b": {""}}
	var asOfs []time.Time
	env.OnActivity(a.RecomputeSegmentBatch, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SegmentBatchInput) (activities.SegmentBatchResult, error) {
			asOfs = append(asOfs, in.AsOf)
			if !in.TimeOnly {
				t.Error("the scheduled sweep must only visit time-window segments")
			}
			next := pages[in.WorkspaceID][0]
			pages[in.WorkspaceID] = pages[in.WorkspaceID][1:]
			return activities.SegmentBatchResult{Next: next, Totals: activities.SegmentTotals{Profiles: 500, Exited: 1}}, nil
		})
	finished := map[string]int{}
	env.OnActivity(a.FinishSegmentRecompute, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FinishSegmentInput) error {
			finished[in.WorkspaceID]++
			return nil
		})
	env.ExecuteWorkflow(workflows.SegmentRecompute, workflows.SegmentRecomputeInput{TimeOnly: true})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out activities.SegmentTotals
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	if out.Profiles != 2000 || out.Exited != 4 || finished["ws-a"] != 1 || finished["ws-b"] != 1 {
		t.Fatalf("totals %+v, finished %v", out, finished)
	}
	for _, at := range asOfs {
		if !at.Equal(start) {
			t.Fatalf("batch evaluated as of %v, want the workflow start %v", at, start)
		}
	}
}

// A long sweep continues as new, carrying where it stopped.
func TestSegmentRecomputeContinuesAsNew(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var a *activities.Activities
	n := 0
	env.OnActivity(a.RecomputeSegmentBatch, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.SegmentBatchInput) (activities.SegmentBatchResult, error) {
			n++
			return activities.SegmentBatchResult{Next: "p-next", Totals: activities.SegmentTotals{Profiles: 1}}, nil
		})
	env.ExecuteWorkflow(workflows.SegmentRecompute, workflows.SegmentRecomputeInput{WorkspaceID: "ws"})
	err := env.GetWorkflowError()
	if !workflow.IsContinueAsNewError(err) {
		t.Fatalf("error %v, want continue-as-new", err)
	}
	if n != 200 {
		t.Fatalf("%d batches before continuing as new, want 200", n)
	}
}

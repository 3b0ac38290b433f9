package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/parcours/parcours/activities"
)

// SegmentRecomputeWorkflow is the workflow type that re-evaluates segments
// over every profile of a workspace, in batches.
const SegmentRecomputeWorkflow = "parcours.SegmentRecompute"

// SegmentScheduleID is the Temporal Schedule that sweeps time-window segments.
const SegmentScheduleID = "parcours-segment-recompute"

// SegmentRecomputeID builds a recompute's workflow id from its business key.
func SegmentRecomputeID(workspaceID, reason string) string {
	return "segment-recompute/" + workspaceID + "/" + reason
}

// segmentBatchSize is how many profiles one activity evaluates: big enough to
// amortise the round trips, small enough to finish well inside its timeout.
const segmentBatchSize = 500

// batchesPerRun bounds a run's history; the workflow continues as new after
// that many batches (or sooner if Temporal suggests it).
const batchesPerRun = 200

// SegmentRecomputeInput says what to recompute.
type SegmentRecomputeInput struct {
	// WorkspaceID to recompute; "" sweeps every workspace that has segments.
	WorkspaceID string
	// TimeOnly restricts the sweep to segments whose answer changes with
	// time alone (windows, days_since): what the schedule needs.
	TimeOnly bool
	// AsOf is the evaluation time; zero means the workflow's start time.
	AsOf time.Time
	// Resume state, carried across continue-as-new.
	Workspaces []string
	After      string
	Done       activities.SegmentTotals
}

// SegmentRecompute re-evaluates segments in batches of profiles. Each batch
// is an idempotent activity, so a retried or resumed run records no
// transition twice; long sweeps continue as new.
func SegmentRecompute(ctx workflow.Context, in SegmentRecomputeInput) (activities.SegmentTotals, error) {
	var a *activities.Activities
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// One batch of 500 profiles takes well under a second; a minute
		// means something is stuck and a retry should take over.
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	if in.AsOf.IsZero() {
		in.AsOf = workflow.Now(ctx).UTC()
	}
	if in.Workspaces == nil {
		if in.WorkspaceID != "" {
			in.Workspaces = []string{in.WorkspaceID}
		} else if err := workflow.ExecuteActivity(ctx, a.SegmentWorkspaces).Get(ctx, &in.Workspaces); err != nil {
			return in.Done, err
		}
	}
	batches := 0
	for len(in.Workspaces) > 0 {
		ws := in.Workspaces[0]
		for {
			var out activities.SegmentBatchResult
			err := workflow.ExecuteActivity(ctx, a.RecomputeSegmentBatch, activities.SegmentBatchInput{
				WorkspaceID: ws, After: in.After, Limit: segmentBatchSize, AsOf: in.AsOf, TimeOnly: in.TimeOnly,
			}).Get(ctx, &out)
			if err != nil {
				return in.Done, err
			}
			in.Done.Add(out.Totals)
			in.After = out.Next
			batches++
			if in.After == "" {
				break
			}
			if batches >= batchesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
				return in.Done, workflow.NewContinueAsNewError(ctx, SegmentRecomputeWorkflow, in)
			}
		}
		if err := workflow.ExecuteActivity(ctx, a.FinishSegmentRecompute, activities.FinishSegmentInput{WorkspaceID: ws, AsOf: in.AsOf}).Get(ctx, nil); err != nil {
			return in.Done, err
		}
		in.Workspaces = in.Workspaces[1:]
	}
	return in.Done, nil
}

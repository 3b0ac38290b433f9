package trigger

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/parcours/parcours/pkg/broadcast"
	"github.com/parcours/parcours/workflows"
)

// How the API, and the benchmark, put a broadcast on Temporal: the ids of
// its runs and schedule, their start options.

// ErrBadCron is a cron expression or time zone Temporal refused.
var ErrBadCron = errors.New("Temporal refused the schedule")

// broadcastCatchup is how late a recurring occurrence may still start after
// Temporal (or the worker) was down: a newsletter a day late is worse than
// none.
const broadcastCatchup = time.Hour

// BroadcastScheduleID is the Temporal Schedule of a recurring broadcast.
// Its runs are named workflows.BroadcastRunID(..., "at") followed by "-"
// and the scheduled time (Temporal appends it), one id per occurrence.
func BroadcastScheduleID(workspaceID, broadcastID string) string {
	return "broadcast/" + workspaceID + "/" + broadcastID
}

// ScheduleBroadcast puts a saved broadcast on Temporal: a workflow started
// now, or at schedule.at (StartDelay), with the deterministic id of its one
// occurrence (a second start is refused, even after the first finished); or
// a Temporal Schedule for a cron, each run with an id naming its scheduled
// time.
func ScheduleBroadcast(ctx context.Context, c client.Client, taskQueue, workspaceID string, b broadcast.Broadcast, now time.Time) error {
	sa := temporal.NewSearchAttributes(workflows.SAWorkspace.ValueSet(workspaceID))
	in := workflows.BroadcastInput{WorkspaceID: workspaceID, BroadcastID: b.ID}
	if b.Schedule.Recurring() {
		_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
			ID: BroadcastScheduleID(workspaceID, b.ID),
			Spec: client.ScheduleSpec{
				CronExpressions: []string{b.Schedule.Cron},
				TimeZoneName:    b.Schedule.Timezone,
			},
			Action: &client.ScheduleWorkflowAction{
				ID:                    workflows.BroadcastRunID(workspaceID, b.ID, "at"),
				Workflow:              workflows.BroadcastWorkflow,
				Args:                  []any{in},
				TaskQueue:             taskQueue,
				TypedSearchAttributes: sa,
			},
			// An occurrence still sending when the next is due: skip the next.
			Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
			CatchupWindow: broadcastCatchup,
			Memo:          map[string]any{"broadcast": b.Name},
		})
		var invalid *serviceerror.InvalidArgument
		if errors.As(err, &invalid) {
			return fmt.Errorf("%w: %s", ErrBadCron, invalid.Message)
		}
		if err != nil {
			return fmt.Errorf("create schedule of broadcast %s: %w", b.ID, err)
		}
		return nil
	}
	in.Occurrence = broadcast.Once
	opts := client.StartWorkflowOptions{
		ID:                       workflows.BroadcastRunID(workspaceID, b.ID, broadcast.Once),
		TaskQueue:                taskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// Say so, rather than hand back the existing run.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes:                    sa,
		Memo:                                     map[string]any{"broadcast": b.Name},
	}
	if b.Schedule != nil && b.Schedule.At != nil {
		opts.StartDelay = max(b.Schedule.At.Sub(now), 0)
	}
	if _, err := c.ExecuteWorkflow(ctx, opts, workflows.BroadcastWorkflow, in); err != nil {
		return fmt.Errorf("start broadcast %s: %w", b.ID, err)
	}
	return nil
}

// CancelBroadcast stops a cancelled broadcast on Temporal: its schedule is
// deleted, and a one-off run (waiting for its time or sending) and running
// occurrences are cancelled (they also stop by themselves before
// their next batch, seeing the status in the database). Runs already gone
// are fine.
func CancelBroadcast(ctx context.Context, c client.Client, workspaceID string, b broadcast.Broadcast, running []string) error {
	var errs []error
	ignore := func(err error) bool {
		var nf *serviceerror.NotFound
		return err == nil || errors.As(err, &nf)
	}
	if b.Schedule.Recurring() {
		if err := c.ScheduleClient().GetHandle(ctx, BroadcastScheduleID(workspaceID, b.ID)).Delete(ctx); !ignore(err) {
			errs = append(errs, fmt.Errorf("delete schedule of broadcast %s: %w", b.ID, err))
		}
	} else if len(running) == 0 {
		// Not started yet (a start delay), or starting: cancelled, the run
		// records the cancellation and sends nothing.
		running = []string{workflows.BroadcastRunID(workspaceID, b.ID, broadcast.Once)}
	}
	for _, id := range running {
		if err := c.CancelWorkflow(ctx, id, ""); !ignore(err) {
			errs = append(errs, fmt.Errorf("cancel occurrence %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

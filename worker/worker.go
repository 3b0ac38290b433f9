// Package worker runs the Temporal worker that executes Parcours' workflows
// and activities, and prepares the Temporal namespace they need.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/workflows"
)

// Register puts every workflow and activity on r: acts' methods, each under
// its name, among them the journey's (workflows.JourneyActivities, which the
// simulator implements too; worker_test.go holds the two lists together).
// Tests use it too, so that what they run is what production registers.
func Register(r sdkworker.Registry, acts *activities.Activities) {
	RegisterWorkflows(r)
	r.RegisterActivity(acts)
}

// RegisterWorkflows puts every workflow on r, under its stable name (the
// replay tests register the same set).
func RegisterWorkflows(r sdkworker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(workflows.Ping, workflow.RegisterOptions{Name: workflows.PingWorkflow})
	r.RegisterWorkflowWithOptions(workflows.SegmentRecompute, workflow.RegisterOptions{Name: workflows.SegmentRecomputeWorkflow})
	r.RegisterWorkflowWithOptions(workflows.Journey, workflow.RegisterOptions{Name: workflows.JourneyWorkflow})
	r.RegisterWorkflowWithOptions(workflows.Broadcast, workflow.RegisterOptions{Name: workflows.BroadcastWorkflow})
}

// New returns a worker polling taskQueue with everything registered. Start it
// with Run or Start; Stop drains in-flight tasks.
func New(c client.Client, taskQueue string, acts *activities.Activities) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, sdkworker.Options{
		// A workflow panic (e.g. non-determinism after a bad deploy) fails the
		// task and is retried once fixed code is deployed, rather than failing
		// the customer's journey for good.
		WorkflowPanicPolicy: sdkworker.BlockWorkflow,
		// Eight pollers per queue instead of the SDK's two: a poller carries
		// one task per round trip, and a task no poller is waiting for is
		// written to Temporal's database and read back. On the soak rig
		// (docs/operations.md) 20 journey starts/s left two pollers behind
		// and the backlog drained 2m27s after the load; with eight, 1m10s.
		MaxConcurrentWorkflowTaskPollers: 8,
		MaxConcurrentActivityTaskPollers: 8,
	})
	Register(w, acts)
	return w
}

// EnsureSearchAttributes registers Parcours' custom search attributes on the
// namespace if they are missing. It is idempotent and safe to run from every
// process at start.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string, logger *slog.Logger) error {
	existing, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, key := range workflows.SearchAttributes {
		if _, ok := existing.GetCustomAttributes()[key.GetName()]; ok {
			continue
		}
		missing[key.GetName()] = key.GetValueType()
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        namespace,
		SearchAttributes: missing,
	})
	if err != nil {
		return fmt.Errorf("add search attributes to namespace %s: %w", namespace, err)
	}
	logger.Info("registered Temporal search attributes", "namespace", namespace, "count", len(missing))
	return nil
}

// EnsureSegmentSchedule creates, once, the Temporal Schedule that sweeps
// time-window segments every interval (visible under Schedules in the
// Temporal UI). An existing schedule is left as it is.
func EnsureSegmentSchedule(ctx context.Context, c client.Client, taskQueue string, interval time.Duration) error {
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   workflows.SegmentScheduleID,
		Spec: client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: interval}}},
		Action: &client.ScheduleWorkflowAction{
			ID:        "segment-sweep",
			Workflow:  workflows.SegmentRecomputeWorkflow,
			Args:      []any{workflows.SegmentRecomputeInput{TimeOnly: true}},
			TaskQueue: taskQueue,
		},
		// A sweep still running when the next is due: skip the next.
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
	})
	if err != nil && !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("create segment schedule: %w", err)
	}
	return nil
}

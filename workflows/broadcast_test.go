package workflows_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/workflows"
)

// broadcastEnv mocks the broadcast activities over an audience of n.
type broadcastEnv struct {
	*testsuite.TestWorkflowEnvironment
	batches   []int
	finished  []activities.FinishBroadcastInput
	snapshots int
	// onFinish runs inside the FinishBroadcast activity.
	onFinish func() error
}

func newBroadcastEnv(t *testing.T, n int, cancelAt int) *broadcastEnv {
	var s testsuite.WorkflowTestSuite
	e := &broadcastEnv{TestWorkflowEnvironment: s.NewTestWorkflowEnvironment()}
	var a *activities.Activities
	asOf := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	e.OnActivity(a.StartBroadcast, mock.Anything, mock.Anything).Return(activities.StartBroadcastResult{Proceed: true, AsOf: asOf}, nil)
	e.OnActivity(a.SnapshotBroadcastAudience, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SnapshotBroadcastInput) (activities.SnapshotBroadcastResult, error) {
			e.snapshots++
			if !in.AsOf.Equal(asOf) {
				t.Errorf("snapshot as of %v, want the start's %v", in.AsOf, asOf)
			}
			added := min(in.Limit, n-in.Seq)
			next := ""
			if in.Seq+added < n {
				next = "p" // a profile id cursor
			}
			return activities.SnapshotBroadcastResult{Next: next, Added: added}, nil
		})
	e.OnActivity(a.SendBroadcastBatch, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SendBroadcastBatchInput) (activities.SendBroadcastBatchResult, error) {
			e.batches = append(e.batches, in.Batch)
			if cancelAt >= 0 && in.Batch >= cancelAt {
				return activities.SendBroadcastBatchResult{Cancelled: true}, nil
			}
			size := min(in.Size, n-in.Batch*in.Size)
			return activities.SendBroadcastBatchResult{Recipients: size, Sent: size - 1, Skipped: 1, HTTPCalls: 1}, nil
		})
	e.OnActivity(a.FinishBroadcast, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FinishBroadcastInput) error {
			e.finished = append(e.finished, in)
			if e.onFinish != nil {
				return e.onFinish()
			}
			return nil
		})
	return e
}

// An occurrence snapshots its audience in pages, sends every batch once,
// counts what happened, and records how it ended.
func TestBroadcastSendsEveryBatchOnce(t *testing.T) {
	t.Parallel()
	e := newBroadcastEnv(t, 12_500, -1)
	e.ExecuteWorkflow(workflows.Broadcast, workflows.BroadcastInput{WorkspaceID: "ws", BroadcastID: "b", Occurrence: "once"})
	if err := e.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out workflows.BroadcastResult
	if err := e.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	if e.snapshots != 2 || len(e.batches) != 13 {
		t.Fatalf("%d snapshot pages and batches %v, want 2 pages and 13 batches", e.snapshots, e.batches)
	}
	seen := map[int]bool{}
	for _, b := range e.batches {
		if seen[b] {
			t.Fatalf("batch %d sent twice", b)
		}
		seen[b] = true
	}
	p := out.Progress
	if out.Status != "sent" || p.Recipients != 12_500 || p.Done.Recipients != 12_500 || p.Done.Sent != 12_487 || p.Done.Skipped != 13 || p.Done.HTTPCalls != 13 {
		t.Fatalf("result %+v", out)
	}
	if len(e.finished) != 1 || e.finished[0].Status != "sent" || e.finished[0].Occurrence != "once" {
		t.Fatalf("finished %+v", e.finished)
	}
}

// A big audience continues as new before its history grows large, carrying
// where it stands.
func TestBroadcastContinuesAsNew(t *testing.T) {
	t.Parallel()
	e := newBroadcastEnv(t, 45_000, -1)
	e.ExecuteWorkflow(workflows.Broadcast, workflows.BroadcastInput{WorkspaceID: "ws", BroadcastID: "b", Occurrence: "once"})
	var can *workflow.ContinueAsNewError
	if err := e.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("error %v, want continue-as-new", err)
	}
	var next workflows.BroadcastInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	r := next.Resume
	if r == nil || r.Phase != "sending" || r.NextBatch != 20 || r.Batches != 45 || r.Done.Recipients != 20_000 || next.Occurrence != "once" {
		t.Fatalf("resume state %+v", r)
	}
	if len(e.finished) != 0 {
		t.Fatal("finished before the last batch")
	}
	// The next run picks up at batch 20 and skips the start and snapshot.
	e2 := newBroadcastEnv(t, 45_000, -1)
	e2.ExecuteWorkflow(workflows.Broadcast, next)
	var can2 *workflow.ContinueAsNewError
	if err := e2.GetWorkflowError(); !errors.As(err, &can2) || e2.snapshots != 0 || slices.Min(e2.batches) != 20 || len(e2.batches) != 20 {
		t.Fatalf("second run: %v, %d snapshots, batches %v", err, e2.snapshots, e2.batches)
	}
}

// A broadcast cancelled in the database stops at the next batch and the
// occurrence is recorded cancelled.
func TestBroadcastStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	e := newBroadcastEnv(t, 9_000, 4)
	e.ExecuteWorkflow(workflows.Broadcast, workflows.BroadcastInput{WorkspaceID: "ws", BroadcastID: "b", Occurrence: "once"})
	var out workflows.BroadcastResult
	if err := e.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	if out.Status != "cancelled" || len(e.batches) != 8 || out.Progress.NextBatch != 4 {
		t.Fatalf("result %+v after batches %v: want cancelled in the second wave", out, e.batches)
	}
	if len(e.finished) != 1 || e.finished[0].Status != "cancelled" {
		t.Fatalf("finished %+v", e.finished)
	}
}

// The progress query answers while batches run.
func TestBroadcastAnswersItsProgress(t *testing.T) {
	t.Parallel()
	e := newBroadcastEnv(t, 3_000, -1)
	var during workflows.BroadcastProgress
	e.onFinish = func() error {
		v, err := e.QueryWorkflow(workflows.BroadcastProgressQuery)
		if err != nil {
			return err
		}
		return v.Get(&during)
	}
	e.ExecuteWorkflow(workflows.Broadcast, workflows.BroadcastInput{WorkspaceID: "ws", BroadcastID: "b", Occurrence: "once"})
	if err := e.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if during.Recipients != 3_000 || during.Done.Sent != 2_997 || during.Phase != "sent" || during.Occurrence != "once" {
		t.Fatalf("progress %+v", during)
	}
}

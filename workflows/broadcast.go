package workflows

import (
	"errors"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/parcours/parcours/activities"
)

// Broadcast workflow names.
const (
	// BroadcastWorkflow sends one occurrence of a broadcast.
	BroadcastWorkflow = "parcours.Broadcast"
	// BroadcastProgressQuery answers a BroadcastProgress.
	BroadcastProgressQuery = "parcours.broadcast_progress"
)

// Sizes of a broadcast run.
const (
	// BroadcastBatchSize recipients per send activity: one SendGrid request
	// when their messages differ only in places.
	BroadcastBatchSize = 1000
	// broadcastSnapshotPage profiles per snapshot activity.
	broadcastSnapshotPage = 10_000
	// broadcastParallel batches in flight at once: the provider's latency
	// overlaps with the next batch's database work.
	broadcastParallel = 4
	// broadcastBatchesPerRun bounds a run's history (about 20,000
	// recipients); the workflow continues as new after that.
	broadcastBatchesPerRun = 20
)

// BroadcastRunID is the workflow id of one occurrence: broadcast/<workspace>/
// <broadcast>/<occurrence>. A one-off broadcast's occurrence is "once", so
// a duplicate start is refused by Temporal. It stays here, with the
// workflow, because a schedule's run reads its occurrence from its id
// (occurrenceOf); the starts are in pkg/trigger.
func BroadcastRunID(workspaceID, broadcastID, occurrence string) string {
	return "broadcast/" + workspaceID + "/" + broadcastID + "/" + occurrence
}

// BroadcastInput starts an occurrence. Ids only.
type BroadcastInput struct {
	WorkspaceID string
	BroadcastID string
	// Occurrence is "once" for a one-off broadcast; "" takes it from the
	// workflow id (schedule runs: the scheduled time).
	Occurrence string
	// Resume state, carried across continue-as-new.
	Resume *BroadcastProgress `json:",omitempty"`
}

// BroadcastProgress is where an occurrence stands; the progress query
// answers it.
type BroadcastProgress struct {
	Occurrence string
	// Phase: starting, snapshot, sending, then sent, cancelled or failed.
	Phase string
	AsOf  time.Time
	// SnapshotAfter is the cursor of the audience snapshot.
	SnapshotAfter string
	Recipients    int
	Batches       int
	NextBatch     int
	Done          activities.SendBroadcastBatchResult
}

// BroadcastResult is how an occurrence ended.
type BroadcastResult struct {
	Status   string
	Reason   string
	Progress BroadcastProgress
}

// occurrenceOf reads the occurrence from a schedule run's id:
// broadcast/<ws>/<id>/at-2025-01-06T08:00:00Z → 2025-01-06T08:00:00Z.
func occurrenceOf(workflowID string, in BroadcastInput) string {
	prefix := BroadcastRunID(in.WorkspaceID, in.BroadcastID, "at") + "-"
	if rest, ok := strings.CutPrefix(workflowID, prefix); ok && rest != "" {
		return rest
	}
	return workflowID[strings.LastIndexByte(workflowID, '/')+1:]
}

// Broadcast sends one occurrence: it records the start (refused when the
// broadcast was cancelled, or the occurrence already ran), snapshots the
// segment's members in pages, then sends batches of BroadcastBatchSize
// through the delivery ledger, a few at a time. Cancelling the workflow,
// or the broadcast in the database, stops it before the next batch.
func Broadcast(ctx workflow.Context, in BroadcastInput) (BroadcastResult, error) {
	var a *activities.Activities
	p := BroadcastProgress{Phase: "starting"}
	if in.Resume != nil {
		p = *in.Resume
	}
	if p.Occurrence == "" {
		p.Occurrence = in.Occurrence
		if p.Occurrence == "" {
			p.Occurrence = occurrenceOf(workflow.GetInfo(ctx).WorkflowExecution.ID, in)
		}
	}
	if err := workflow.SetQueryHandler(ctx, BroadcastProgressQuery, func() (BroadcastProgress, error) { return p, nil }); err != nil {
		return BroadcastResult{}, err
	}
	ref := activities.BroadcastRef{WorkspaceID: in.WorkspaceID, BroadcastID: in.BroadcastID, Occurrence: p.Occurrence}
	db := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// Database work: a page of 10,000 profiles takes well under a few
		// seconds; retried until the database is back.
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	finish := func(status, reason string) (BroadcastResult, error) {
		p.Phase = status
		// Recorded even when the workflow was cancelled.
		fctx, cancel := workflow.NewDisconnectedContext(db)
		defer cancel()
		err := workflow.ExecuteActivity(fctx, a.FinishBroadcast, activities.FinishBroadcastInput{BroadcastRef: ref, Status: status, Reason: reason}).Get(fctx, nil)
		return BroadcastResult{Status: status, Reason: reason, Progress: p}, err
	}
	cancelled := func(err error) bool {
		var ce *temporal.CanceledError
		return errors.As(err, &ce) || ctx.Err() != nil
	}

	if p.Phase == "starting" {
		var st activities.StartBroadcastResult
		err := workflow.ExecuteActivity(db, a.StartBroadcast, activities.StartBroadcastInput{BroadcastRef: ref, AsOf: workflow.Now(ctx).UTC()}).Get(ctx, &st)
		if err != nil {
			if cancelled(err) {
				return finish("cancelled", "cancelled before it started")
			}
			return BroadcastResult{Progress: p}, err
		}
		if !st.Proceed {
			if st.Reason == "cancelled" {
				return finish("cancelled", "cancelled")
			}
			p.Phase = "skipped"
			return BroadcastResult{Status: "skipped", Reason: st.Reason, Progress: p}, nil
		}
		p.AsOf, p.Phase = st.AsOf, "snapshot"
	}
	pages := 0
	for p.Phase == "snapshot" {
		var page activities.SnapshotBroadcastResult
		err := workflow.ExecuteActivity(db, a.SnapshotBroadcastAudience, activities.SnapshotBroadcastInput{
			BroadcastRef: ref, After: p.SnapshotAfter, Seq: p.Recipients, Limit: broadcastSnapshotPage, AsOf: p.AsOf,
		}).Get(ctx, &page)
		if err != nil {
			if cancelled(err) {
				return finish("cancelled", "cancelled")
			}
			_, _ = finish("failed", "snapshot of the audience failed: "+err.Error())
			return BroadcastResult{Status: "failed", Progress: p}, err
		}
		p.Recipients += page.Added
		p.SnapshotAfter = page.Next
		pages++
		if page.Next == "" {
			p.Phase = "sending"
			p.Batches = (p.Recipients + BroadcastBatchSize - 1) / BroadcastBatchSize
			break
		}
		if pages >= broadcastBatchesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return BroadcastResult{}, workflow.NewContinueAsNewError(ctx, BroadcastWorkflow, BroadcastInput{WorkspaceID: in.WorkspaceID, BroadcastID: in.BroadcastID, Occurrence: p.Occurrence, Resume: &p})
		}
	}
	send := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// One batch: a few database round trips, 1,000 renders and one
		// provider call (SendGrid answers in well under a second; the
		// client gives up after 30 s). A retry sends only what is owed.
		StartToCloseTimeout: 2 * time.Minute,
		// A provider down (5xx, 429 storms) for six hours fails the
		// occurrence with the reason; what was sent stays sent.
		ScheduleToCloseTimeout: 6 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			MaximumInterval:        10 * time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypeSendFailed, activities.ErrTypeNotFound},
		},
	})
	batches := 0
	for p.NextBatch < p.Batches {
		wave := min(broadcastParallel, p.Batches-p.NextBatch)
		futures := make([]workflow.Future, wave)
		for i := range futures {
			futures[i] = workflow.ExecuteActivity(send, a.SendBroadcastBatch, activities.SendBroadcastBatchInput{
				BroadcastRef: ref, Batch: p.NextBatch + i, Size: BroadcastBatchSize,
			})
		}
		stop := false
		var firstErr error
		for _, f := range futures {
			var r activities.SendBroadcastBatchResult
			if err := f.Get(ctx, &r); err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			stop = stop || r.Cancelled
			p.Done.Add(r)
		}
		if firstErr != nil {
			if cancelled(firstErr) {
				return finish("cancelled", "cancelled")
			}
			_, _ = finish("failed", firstErr.Error())
			return BroadcastResult{Status: "failed", Progress: p}, firstErr
		}
		if stop {
			return finish("cancelled", "cancelled")
		}
		p.NextBatch += wave
		batches += wave
		if p.NextBatch < p.Batches && (batches >= broadcastBatchesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested()) {
			return BroadcastResult{}, workflow.NewContinueAsNewError(ctx, BroadcastWorkflow, BroadcastInput{WorkspaceID: in.WorkspaceID, BroadcastID: in.BroadcastID, Occurrence: p.Occurrence, Resume: &p})
		}
	}
	return finish("sent", "")
}

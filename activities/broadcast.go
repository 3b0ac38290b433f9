package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/parcours/parcours/pkg/broadcast"
	"github.com/parcours/parcours/pkg/channel"
)

// Broadcast activities. Inputs and results carry ids and counts only: no
// address, no profile data, not even the recipients' ids (the audience
// lives in broadcast_recipients).

// broadcasts is the store the broadcast activities use.
func (a *Activities) broadcasts() *broadcast.Store { return broadcast.NewStore(a.Pool) }

// BroadcastRef names one occurrence of a broadcast.
type BroadcastRef struct {
	WorkspaceID string
	BroadcastID string
	Occurrence  string
}

// StartBroadcastInput starts an occurrence; AsOf is the audience time the
// first attempt proposes (the workflow's start).
type StartBroadcastInput struct {
	BroadcastRef
	AsOf time.Time
}

// StartBroadcastResult says whether the occurrence goes ahead.
type StartBroadcastResult struct {
	Proceed bool
	Reason  string
	AsOf    time.Time
}

// StartBroadcast records the occurrence as running, unless the broadcast
// was cancelled or this occurrence already ran (a duplicate start).
func (a *Activities) StartBroadcast(ctx context.Context, in StartBroadcastInput) (StartBroadcastResult, error) {
	info := activity.GetInfo(ctx).WorkflowExecution
	r, err := a.broadcasts().Start(ctx, in.WorkspaceID, in.BroadcastID, in.Occurrence, info.ID, info.RunID, in.AsOf)
	return StartBroadcastResult{Proceed: r.Proceed, Reason: r.Reason, AsOf: r.AsOf}, err
}

// SnapshotBroadcastInput asks for one page of the audience.
type SnapshotBroadcastInput struct {
	BroadcastRef
	// After is the last profile id of the previous page ("" first).
	After string
	// Seq numbers the first recipient of this page.
	Seq   int
	Limit int
	AsOf  time.Time
}

// SnapshotBroadcastResult is where the next page starts ("" when done).
type SnapshotBroadcastResult struct {
	Next  string
	Added int
}

// SnapshotBroadcastAudience copies one page of the segment's members into
// the occurrence's recipients.
func (a *Activities) SnapshotBroadcastAudience(ctx context.Context, in SnapshotBroadcastInput) (SnapshotBroadcastResult, error) {
	next, added, err := a.broadcasts().Snapshot(ctx, in.WorkspaceID, in.BroadcastID, in.Occurrence, in.After, in.Seq, in.Limit, in.AsOf)
	if errors.Is(err, broadcast.ErrSegmentGone) {
		return SnapshotBroadcastResult{}, temporal.NewNonRetryableApplicationError(broadcast.ErrSegmentGone.Error(), ErrTypeNotFound, err)
	}
	return SnapshotBroadcastResult{Next: next, Added: added}, err
}

// SendBroadcastBatchInput names batch Batch of Size recipients.
type SendBroadcastBatchInput struct {
	BroadcastRef
	Batch int
	Size  int
}

// SendBroadcastBatchResult counts what became of the batch.
type SendBroadcastBatchResult struct {
	// Cancelled: the broadcast was cancelled; nothing was sent.
	Cancelled  bool
	Recipients int
	Sent       int
	Skipped    int
	Failed     int
	Unknown    int
	// Pending: taken over by another attempt (rare); counted when it ends.
	Pending int
	// HTTPCalls made to the provider by this attempt.
	HTTPCalls int
}

// Add sums two results.
func (r *SendBroadcastBatchResult) Add(o SendBroadcastBatchResult) {
	r.Recipients += o.Recipients
	r.Sent += o.Sent
	r.Skipped += o.Skipped
	r.Failed += o.Failed
	r.Unknown += o.Unknown
	r.Pending += o.Pending
	r.HTTPCalls += o.HTTPCalls
}

// SendBroadcastBatch sends one batch of an occurrence through the delivery
// ledger in as few SendGrid requests as it allows (one for up to 1,000
// recipients whose messages differ in places). Each recipient's business key
// is broadcast/<id>/<occurrence>/<profile>, so a retried attempt sends only
// what is still owed. A cancelled broadcast sends nothing.
func (a *Activities) SendBroadcastBatch(ctx context.Context, in SendBroadcastBatchInput) (SendBroadcastBatchResult, error) {
	var out SendBroadcastBatchResult
	st := a.broadcasts()
	b, err := st.Load(ctx, in.WorkspaceID, in.BroadcastID)
	if errors.Is(err, broadcast.ErrNotFound) {
		return out, temporal.NewNonRetryableApplicationError("broadcast "+in.BroadcastID+" not found", ErrTypeNotFound, err)
	}
	if err != nil {
		return out, err
	}
	if b.Status == broadcast.StatusCancelled {
		out.Cancelled = true
		return out, nil
	}
	recips, err := st.Batch(ctx, in.WorkspaceID, in.BroadcastID, in.Occurrence, in.Batch*in.Size, (in.Batch+1)*in.Size)
	if err != nil {
		return out, err
	}
	req := channel.BatchRequest{
		WorkspaceID: in.WorkspaceID, TemplateSlug: b.Template, Channel: b.Channel, Class: b.Class,
		Recipients: make([]channel.BatchRecipient, len(recips)),
		CustomArgs: map[string]string{"parcours_broadcast_id": in.BroadcastID},
		ClaimAddresses: func(ctx context.Context, ids []string, hashes [][]byte) ([]bool, error) {
			return st.ClaimAddresses(ctx, in.WorkspaceID, in.BroadcastID, in.Occurrence, ids, hashes)
		},
	}
	for i, r := range recips {
		req.Recipients[i] = channel.BatchRecipient{BusinessKey: BroadcastKey(in.BroadcastID, in.Occurrence, r.ProfileID), ProfileID: r.ProfileID}
	}
	res, sendErr := a.Ledger.SendBatch(ctx, req)
	outs := make([]broadcast.Outcome, 0, len(recips))
	for i, o := range res.Outcomes {
		status := o.Status
		if status == channel.StatusClaimed || status == "" {
			status = "pending"
		}
		outs = append(outs, broadcast.Outcome{Seq: recips[i].Seq, Status: status, Reason: o.Reason, DeliveryID: o.DeliveryID})
		switch status {
		case channel.StatusSent:
			out.Sent++
		case channel.StatusSkipped:
			out.Skipped++
		case channel.StatusFailed:
			out.Failed++
		case channel.StatusUnknown:
			out.Unknown++
		default:
			out.Pending++
		}
	}
	out.Recipients, out.HTTPCalls = len(recips), res.Calls
	if err := st.Record(ctx, in.WorkspaceID, in.BroadcastID, in.Occurrence, outs); err != nil {
		return out, err
	}
	if sendErr == nil {
		return out, nil
	}
	what := fmt.Sprintf("broadcast %s batch %d", in.BroadcastID, in.Batch)
	var se *channel.SendError
	var fe *channel.FieldError
	switch {
	case errors.As(sendErr, &fe):
		return out, temporal.NewNonRetryableApplicationError(what+": "+fe.Error(), ErrTypeSendFailed, sendErr)
	case errors.As(sendErr, &se) && se.RetryAfter > 0:
		return out, temporal.NewApplicationErrorWithOptions(what+": "+se.Reason, ErrTypeRateLimited,
			temporal.ApplicationErrorOptions{NextRetryDelay: se.RetryAfter, Cause: sendErr})
	case errors.As(sendErr, &se):
		return out, temporal.NewApplicationError(what+": "+se.Reason, ErrTypeSendRetryable, sendErr)
	}
	return out, fmt.Errorf("%s: %w", what, sendErr)
}

// BroadcastKey is a recipient's business key in the delivery ledger.
func BroadcastKey(broadcastID, occurrence, profileID string) string {
	return "broadcast/" + broadcastID + "/" + occurrence + "/" + profileID
}

// FinishBroadcastInput says how an occurrence ended.
type FinishBroadcastInput struct {
	BroadcastRef
	Status string // sent, cancelled or failed
	Reason string
}

// FinishBroadcast records the end of an occurrence.
func (a *Activities) FinishBroadcast(ctx context.Context, in FinishBroadcastInput) error {
	return a.broadcasts().Finish(ctx, in.WorkspaceID, in.BroadcastID, in.Occurrence, in.Status, in.Reason)
}

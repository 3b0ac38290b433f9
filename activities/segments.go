package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SegmentTotals counts what a recompute did.
type SegmentTotals struct {
	Profiles  int
	Evaluated int
	Entered   int
	Exited    int
}

// Add accumulates o.
func (t *SegmentTotals) Add(o SegmentTotals) {
	t.Profiles += o.Profiles
	t.Evaluated += o.Evaluated
	t.Entered += o.Entered
	t.Exited += o.Exited
}

// SegmentBatchInput names one batch of profiles to evaluate.
type SegmentBatchInput struct {
	WorkspaceID string
	After       string // profile id to resume after
	Limit       int
	AsOf        time.Time
	TimeOnly    bool
}

// SegmentBatchResult is where to resume and what the batch did.
type SegmentBatchResult struct {
	Next   string
	Totals SegmentTotals
}

// RecomputeSegmentBatch evaluates the workspace's segments for one batch of
// profiles at AsOf. Transitions are recorded under row locks with guards, so
// running it again is harmless.
func (a *Activities) RecomputeSegmentBatch(ctx context.Context, in SegmentBatchInput) (SegmentBatchResult, error) {
	next, t, err := a.Segments.RecomputeBatch(ctx, in.WorkspaceID, in.After, in.Limit, in.AsOf, in.TimeOnly)
	if err != nil {
		return SegmentBatchResult{}, fmt.Errorf("recompute segments of %s after %q: %w", in.WorkspaceID, in.After, err)
	}
	return SegmentBatchResult{Next: next, Totals: SegmentTotals{Profiles: t.Profiles, Evaluated: t.Evaluated, Entered: t.Entered, Exited: t.Exited}}, nil
}

// FinishSegmentInput closes a workspace's sweep.
type FinishSegmentInput struct {
	WorkspaceID string
	AsOf        time.Time
}

// FinishSegmentRecompute records the segments' sizes after a sweep.
func (a *Activities) FinishSegmentRecompute(ctx context.Context, in FinishSegmentInput) error {
	return a.Segments.FinishRecompute(ctx, in.WorkspaceID, in.AsOf)
}

// SegmentWorkspaces lists the workspaces that have segments.
func (a *Activities) SegmentWorkspaces(ctx context.Context) ([]string, error) {
	rows, err := a.Pool.Query(ctx, `SELECT DISTINCT workspace_id::text FROM segments ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list workspaces with segments: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list workspaces with segments: %w", err)
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}

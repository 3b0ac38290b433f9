package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parcours/parcours/pkg/identity"
)

// UnmergePlan is what undoing a merge would do, read without changing
// anything: the console shows it before a marketer confirms.
type UnmergePlan struct {
	// RestoredID is the profile that comes back on its own.
	RestoredID string
	MergedAt   time.Time
	// Identities go back to the restored profile, with Records of the
	// records (events as received) first attached to it.
	Identities []identity.Key
	Records    int
}

// PlanUnmerge says what Unmerge(workspaceID, survivorID, mergeID) would move
// back, with the same rules and the same errors (ErrMergeNotFound,
// ErrMergeAlreadyUndone). Records arriving in between may change the
// outcome a little; Unmerge itself decides.
func (s *Store) PlanUnmerge(ctx context.Context, workspaceID, survivorID, mergeID string) (UnmergePlan, error) {
	var plan UnmergePlan
	var survivor string
	var undone *time.Time
	err := s.pool.QueryRow(ctx, `SELECT survivor_id::text, merged_id::text, created_at, undone_at FROM profile_merges WHERE workspace_id = $1 AND id = $2`,
		workspaceID, mergeID).Scan(&survivor, &plan.RestoredID, &plan.MergedAt, &undone)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && survivor != survivorID) {
		return plan, ErrMergeNotFound
	}
	if err != nil {
		return plan, fmt.Errorf("load merge %s: %w", mergeID, err)
	}
	if undone != nil {
		return plan, ErrMergeAlreadyUndone
	}
	// The same family as Unmerge: the merged profile and every profile
	// merged into it before.
	const family = `WITH RECURSIVE d(id) AS (
			SELECT $3::uuid
			UNION SELECT p.id FROM profiles p JOIN d ON p.workspace_id = $1 AND p.merged_into = d.id)`
	rows, err := s.pool.Query(ctx, family+` SELECT type, value FROM identities
		WHERE workspace_id = $1 AND profile_id = $2 AND origin_profile_id IN (SELECT id FROM d) ORDER BY created_at, type, value`,
		workspaceID, survivor, plan.RestoredID)
	if err != nil {
		return plan, fmt.Errorf("load identities to restore: %w", err)
	}
	if plan.Identities, err = pgx.CollectRows(rows, pgx.RowToStructByPos[identity.Key]); err != nil {
		return plan, fmt.Errorf("load identities to restore: %w", err)
	}
	if err := s.pool.QueryRow(ctx, family+` SELECT count(*) FROM events
		WHERE workspace_id = $1 AND profile_id = $2 AND origin_profile_id IN (SELECT id FROM d) AND source <> $4`,
		workspaceID, survivor, plan.RestoredID, InternalSource).Scan(&plan.Records); err != nil {
		return plan, fmt.Errorf("count records to restore: %w", err)
	}
	return plan, nil
}

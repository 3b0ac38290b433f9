package segment

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// LastChanges returns, by segment id, when each of the workspace's segments
// last changed: the latest time a profile entered or left it. A segment
// nobody ever entered is absent.
//
// It reads the membership rows (one per segment and profile ever in it, with
// its last entry and exit), so its cost grows with the segments' sizes, not
// with how busy the workspace is; segment_events has no index by segment.
func (s *Store) LastChanges(ctx context.Context, workspaceID string) (map[string]time.Time, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT segment_id::text, max(greatest(entered_at, exited_at)) FROM segment_memberships
		WHERE workspace_id = $1 GROUP BY segment_id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("load segments' last changes: %w", err)
	}
	out := map[string]time.Time{}
	var id string
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &at}, func() error {
		out[id] = at
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load segments' last changes: %w", err)
	}
	return out, nil
}

// LastChange returns when a profile last entered or left a segment, or nil
// if none ever did.
func (s *Store) LastChange(ctx context.Context, workspaceID, segmentID string) (*time.Time, error) {
	var at *time.Time
	err := s.pool.QueryRow(ctx, `
		SELECT max(greatest(entered_at, exited_at)) FROM segment_memberships
		WHERE workspace_id = $1 AND segment_id = $2`, workspaceID, segmentID).Scan(&at)
	if err != nil {
		return nil, fmt.Errorf("load segment's last change: %w", err)
	}
	return at, nil
}

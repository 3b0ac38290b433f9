package channel

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Subscriptions lists a profile's recorded consent, by channel and purpose.
// A channel and purpose without a row is subscribed (the opt-out model).
func (s *Store) Subscriptions(ctx context.Context, workspaceID, profileID string) ([]Subscription, error) {
	rows, err := s.pool.Query(ctx, `SELECT profile_id::text, channel, purpose, status, source, updated_at FROM subscriptions
		WHERE workspace_id = $1 AND profile_id = $2 ORDER BY channel, purpose`, workspaceID, profileID)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions of %s: %w", profileID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Subscription])
	if err != nil {
		return nil, fmt.Errorf("list subscriptions of %s: %w", profileID, err)
	}
	return out, nil
}

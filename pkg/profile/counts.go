package profile

import (
	"context"
	"fmt"
)

// CountByState counts a workspace's live (not merged) profiles by state.
// States without profiles are present with 0.
func (s *Store) CountByState(ctx context.Context, workspaceID string) (map[string]int, error) {
	out := map[string]int{StateAnonymous: 0, StateKnown: 0, StateOmnichannel: 0}
	rows, err := s.pool.Query(ctx, `SELECT state, count(*) FROM profiles WHERE workspace_id = $1 AND merged_into IS NULL GROUP BY state`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("count profiles: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("count profiles: %w", err)
		}
		out[state] = n
	}
	return out, rows.Err()
}

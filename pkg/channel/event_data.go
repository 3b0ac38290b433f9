package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// eventData is a record as templates see it under `event`: name, type,
// properties and timestamp. An erased record is an empty map.
func (l *Ledger) eventData(ctx context.Context, workspaceID string, id int64) (map[string]any, error) {
	var typ, name string
	var props []byte
	var ts time.Time
	err := l.Pool.QueryRow(ctx, `SELECT type, coalesce(name, ''), properties, timestamp FROM events WHERE workspace_id = $1 AND id = $2`,
		workspaceID, id).Scan(&typ, &name, &props, &ts)
	if errors.Is(err, pgx.ErrNoRows) {
		return map[string]any{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load event %d for a template: %w", id, err)
	}
	out := map[string]any{"type": typ, "name": name, "timestamp": ts.UTC().Format(time.RFC3339)}
	var p map[string]any
	if err := json.Unmarshal(props, &p); err == nil && p != nil {
		out["properties"] = p
	} else {
		out["properties"] = map[string]any{}
	}
	return out, nil
}

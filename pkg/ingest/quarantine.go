package ingest

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Quarantine states a person filters by.
const (
	// QuarantineWaiting: rejected and not yet accepted by a replay.
	QuarantineWaiting = "waiting"
	// QuarantineReplayed: accepted by a replay since.
	QuarantineReplayed = "replayed"
	// QuarantineAll: both.
	QuarantineAll = "all"
)

// MaxReplayBatch is the most records one replay takes, as Replay does.
const MaxReplayBatch = 1000

// QuarantineFilter selects quarantined records for the console.
type QuarantineFilter struct {
	// Source is the exact source (web, crm, ...); "" for every source.
	Source string
	// Reason is the exact reason; "" for every reason.
	Reason string
	// State is QuarantineWaiting (the default when ""), QuarantineReplayed
	// or QuarantineAll.
	State string
	// Before pages: only records with a smaller id (0: from the newest).
	Before int64
}

// where returns the filter's SQL condition and arguments; $1 is the workspace.
func (f QuarantineFilter) where(workspaceID string) (string, []any) {
	cond := `workspace_id = $1 AND ($2 = '' OR source = $2) AND ($3 = '' OR reason = $3) AND id < $4`
	switch f.State {
	case QuarantineReplayed:
		cond += ` AND replayed_at IS NOT NULL`
	case QuarantineAll:
	default:
		cond += ` AND replayed_at IS NULL`
	}
	before := f.Before
	if before <= 0 {
		before = 1 << 62
	}
	return cond, []any{workspaceID, f.Source, f.Reason, before}
}

// ListQuarantine returns the records f selects, newest first, at most limit.
func (s *Store) ListQuarantine(ctx context.Context, workspaceID string, f QuarantineFilter, limit int) ([]RejectedRecord, error) {
	cond, args := f.where(workspaceID)
	rows, err := s.pool.Query(ctx, `
		SELECT id, source, received_at, field, reason, raw, replayed_at FROM rejected_records
		WHERE `+cond+` ORDER BY id DESC LIMIT $5`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[RejectedRecord])
	if err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	return out, nil
}

// CountQuarantine counts the records f selects, ignoring f.Before.
func (s *Store) CountQuarantine(ctx context.Context, workspaceID string, f QuarantineFilter) (int, error) {
	f.Before = 0
	cond, args := f.where(workspaceID)
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM rejected_records WHERE `+cond, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count quarantine: %w", err)
	}
	return n, nil
}

// WaitingIDs returns the ids of the records f selects that wait for a
// replay, oldest first, at most MaxReplayBatch (what one Replay takes).
func (s *Store) WaitingIDs(ctx context.Context, workspaceID string, f QuarantineFilter) ([]int64, error) {
	f.State, f.Before = QuarantineWaiting, 0
	cond, args := f.where(workspaceID)
	rows, err := s.pool.Query(ctx, `SELECT id FROM rejected_records WHERE `+cond+` ORDER BY id LIMIT $5`, append(args, MaxReplayBatch)...)
	if err != nil {
		return nil, fmt.Errorf("list quarantine ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("list quarantine ids: %w", err)
	}
	return ids, nil
}

// QuarantineGroup is one value of a filter (a source or a reason) and how
// many waiting records have it.
type QuarantineGroup struct {
	Value string
	Count int
}

// QuarantineGroups returns the sources and the most frequent reasons (at
// most maxReasons) of the records waiting for a replay, most frequent
// first: the choices of the console's filters.
func (s *Store) QuarantineGroups(ctx context.Context, workspaceID string, maxReasons int) (sources, reasons []QuarantineGroup, err error) {
	group := func(col string, limit int) ([]QuarantineGroup, error) {
		// col is one of two constants below, never input.
		rows, err := s.pool.Query(ctx, `
			SELECT `+col+`, count(*)::int FROM rejected_records
			WHERE workspace_id = $1 AND replayed_at IS NULL
			GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $2`, workspaceID, limit)
		if err != nil {
			return nil, fmt.Errorf("group quarantine by %s: %w", col, err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[QuarantineGroup])
		if err != nil {
			return nil, fmt.Errorf("group quarantine by %s: %w", col, err)
		}
		return out, nil
	}
	if sources, err = group("source", 100); err != nil {
		return nil, nil, err
	}
	if reasons, err = group("reason", maxReasons); err != nil {
		return nil, nil, err
	}
	return sources, reasons, nil
}

package journey

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Kinds of queued journey starts (journey_triggers.kind).
const (
	// TriggerKindEvent is a record whose name triggers live journeys.
	TriggerKindEvent = "event"
	// TriggerKindSegment is the timeline record of a segment move
	// ("Segment Entered", "Segment Exited"), which triggers the journeys
	// of that segment.
	TriggerKindSegment = "segment"
)

// Timeline record names of segment moves.
const (
	SegmentEnteredEvent = "Segment Entered"
	SegmentExitedEvent  = "Segment Exited"
)

// TriggeredBy says whether a record of kind starts runs of the journey:
// an event trigger naming the record, or a segment trigger whose segment
// the record (a segment move) names.
func (l Live) TriggeredBy(kind string, rec EventRecord) bool {
	t := l.Definition.Trigger
	switch kind {
	case TriggerKindEvent:
		return t.Type == TriggerEvent && t.Event == rec.Event
	case TriggerKindSegment:
		seg, _ := rec.Properties["segment"].(string)
		return seg == t.Segment &&
			(t.Type == TriggerSegmentEntered && rec.Event == SegmentEnteredEvent || t.Type == TriggerSegmentExited && rec.Event == SegmentExitedEvent)
	}
	return false
}

// PendingStart is a queued journey start (journey_triggers) a dispatcher
// holds the lease of: the record that triggers, and what entering needs.
type PendingStart struct {
	WorkspaceID string
	EventID     int64
	Kind        string
	// QueuedAt is when the record was stored: a run of the journey
	// recorded since then was started by this record (or a later one).
	QueuedAt time.Time
	Attempts int
	// ProfileID is the profile holding the record now (the survivor, if
	// the profile was merged meanwhile).
	ProfileID string
	Record    EventRecord
}

// ClaimPendingStarts leases up to limit queued starts that are due to the
// caller (token) for lease, skipping those other dispatchers hold.
func (s *Store) ClaimPendingStarts(ctx context.Context, token string, lease time.Duration, limit int) ([]PendingStart, error) {
	rows, err := s.pool.Query(ctx, `
		WITH due AS (
			SELECT workspace_id, event_id FROM journey_triggers
			WHERE next_attempt_at <= now()
			ORDER BY next_attempt_at
			LIMIT $3
			FOR NO KEY UPDATE SKIP LOCKED),
		claimed AS (
			UPDATE journey_triggers t SET claim = $1, next_attempt_at = now() + $2::interval
			FROM due WHERE t.workspace_id = due.workspace_id AND t.event_id = due.event_id
			RETURNING t.workspace_id, t.event_id, t.kind, t.created_at, t.attempts)
		SELECT c.workspace_id::text, c.event_id, c.kind, c.created_at, c.attempts,
		       coalesce(e.profile_id::text, ''), e.type, coalesce(e.name, ''), e.properties, e.traits, e.context
		FROM claimed c JOIN events e ON e.workspace_id = c.workspace_id AND e.id = c.event_id
		ORDER BY c.event_id`, token, lease, limit)
	if err != nil {
		return nil, fmt.Errorf("claim pending journey starts: %w", err)
	}
	defer rows.Close()
	var out []PendingStart
	for rows.Next() {
		var p PendingStart
		var props, traits, context []byte
		if err := rows.Scan(&p.WorkspaceID, &p.EventID, &p.Kind, &p.QueuedAt, &p.Attempts, &p.ProfileID,
			&p.Record.Type, &p.Record.Event, &props, &traits, &context); err != nil {
			return nil, fmt.Errorf("claim pending journey starts: %w", err)
		}
		for _, f := range []struct {
			raw []byte
			to  *map[string]any
		}{{props, &p.Record.Properties}, {traits, &p.Record.Traits}, {context, &p.Record.Context}} {
			if err := json.Unmarshal(f.raw, f.to); err != nil {
				return nil, fmt.Errorf("read the record of pending journey start %d: %w", p.EventID, err)
			}
		}
		p.Record.Trigger = map[string]any{}
		out = append(out, p)
	}
	return out, rows.Err()
}

// StartDone removes a start its dispatcher made (or found nothing to do
// for). Nothing happens if the lease was lost meanwhile: the start is made
// again, harmlessly (see Starter.Enter in package trigger).
func (s *Store) StartDone(ctx context.Context, p PendingStart, token string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM journey_triggers WHERE workspace_id = $1 AND event_id = $2 AND claim = $3`, p.WorkspaceID, p.EventID, token)
	if err != nil {
		return fmt.Errorf("remove started journey start %d: %w", p.EventID, err)
	}
	return nil
}

// StartFailed keeps a start for another attempt after wait, with why.
func (s *Store) StartFailed(ctx context.Context, p PendingStart, token, why string, wait time.Duration) error {
	if len(why) > 500 {
		why = why[:500] + "…"
	}
	_, err := s.pool.Exec(ctx, `
		UPDATE journey_triggers SET claim = NULL, attempts = attempts + 1, last_error = $4, next_attempt_at = now() + $5::interval
		WHERE workspace_id = $1 AND event_id = $2 AND claim = $3`, p.WorkspaceID, p.EventID, token, why, wait)
	if err != nil {
		return fmt.Errorf("record failed journey start %d: %w", p.EventID, err)
	}
	return nil
}

// ForgetPendingStarts removes the queued starts of records whose runs the
// API started itself, right after storing them (one statement per call).
func (s *Store) ForgetPendingStarts(ctx context.Context, workspaceID string, eventIDs []int64) error {
	if len(eventIDs) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM journey_triggers WHERE workspace_id = $1 AND event_id = ANY($2::bigint[])`, workspaceID, eventIDs)
	if err != nil {
		return fmt.Errorf("remove %d started journey starts: %w", len(eventIDs), err)
	}
	return nil
}

// EnteredSince reports whether a run of the workflow id was recorded at or
// after since.
func (s *Store) EnteredSince(ctx context.Context, workspaceID, workflowID string, since time.Time) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM journey_runs WHERE workspace_id = $1 AND workflow_id = $2 AND entered_at >= $3)`,
		workspaceID, workflowID, since).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("look for runs of %s: %w", workflowID, err)
	}
	return ok, nil
}

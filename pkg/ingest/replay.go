package ingest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parcours/parcours/pkg/events"
)

// Checker decides whether a record is acceptable now: "" to accept, else the
// reason to keep it in quarantine.
type Checker func(m *events.Message, source string) string

// ReplayResult reports a quarantine replay.
type ReplayResult struct {
	// Replayed counts records now accepted (stored or recognised as duplicates).
	Replayed int `json:"replayed"`
	// StillRejected counts records that still fail; their reason is updated.
	StillRejected int `json:"still_rejected"`
}

// Replay runs quarantined records through parsing and check again, typically
// after a validation rule was fixed. ids selects records; none selects every
// record not yet replayed (at most 1,000 per call). Each accepted record is
// ingested and marked replayed in one transaction, so a replay interrupted
// half-way can simply be run again.
func (s *Store) Replay(ctx context.Context, workspaceID string, ids []int64, check Checker) (ReplayResult, error) {
	var res ReplayResult
	rows, err := s.pool.Query(ctx, `
		SELECT id, source, key_id::text, coalesce(call_type, ''), raw, received_at FROM rejected_records
		WHERE workspace_id = $1 AND replayed_at IS NULL AND (coalesce(cardinality($2::bigint[]), 0) = 0 OR id = ANY($2::bigint[]))
		ORDER BY id LIMIT 1000`, workspaceID, ids)
	if err != nil {
		return res, fmt.Errorf("load quarantine: %w", err)
	}
	type rec struct {
		ID         int64
		Source     string
		KeyID      string
		CallType   string
		Raw        string
		ReceivedAt time.Time
	}
	recs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[rec])
	if err != nil {
		return res, fmt.Errorf("load quarantine: %w", err)
	}
	for _, r := range recs {
		m, err := events.ParseRecord([]byte(r.Raw), r.CallType, r.ReceivedAt)
		reason, field := "", "rule"
		if err != nil {
			reason, field = err.Error(), "(record)"
			if pe, ok := err.(*events.Error); ok {
				reason, field = pe.Reason, pe.Field
			}
		} else {
			if strings.HasPrefix(m.MessageID, "parcours-") {
				// No messageId was sent: derive one from the quarantine entry so
				// that replaying twice stores the record once.
				m.MessageID = "rejected-" + strconv.FormatInt(r.ID, 10)
			}
			reason = check(&m, r.Source)
		}
		if reason != "" {
			if _, err := s.pool.Exec(ctx, `UPDATE rejected_records SET reason = $3, field = $4 WHERE workspace_id = $1 AND id = $2`, workspaceID, r.ID, reason, field); err != nil {
				return res, fmt.Errorf("update quarantined record %d: %w", r.ID, err)
			}
			res.StillRejected++
			continue
		}
		o := Origin{WorkspaceID: workspaceID, KeyID: r.KeyID, Source: r.Source}
		err = s.inTx(ctx, func(tx pgx.Tx) error {
			if _, err := s.ingestTx(ctx, tx, o, []events.Message{m}); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `UPDATE rejected_records SET replayed_at = now() WHERE workspace_id = $1 AND id = $2`, workspaceID, r.ID)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("replay quarantined record %d: %w", r.ID, err)
		}
		res.Replayed++
	}
	return res, nil
}

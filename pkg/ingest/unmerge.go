package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/identity"
	"github.com/parcours/parcours/pkg/profile"
)

// Errors of Unmerge.
var (
	ErrMergeNotFound      = errors.New("merge not found")
	ErrMergeAlreadyUndone = errors.New("merge already undone")
)

// Unmerge undoes a merge of the survivor's history: the merged profile comes
// back with the identities and events that were first attached to it (or to
// profiles merged into it before), and both profiles' traits and computed
// traits are rebuilt from their events. It returns the restored profile's id.
//
// A later record that links the two again merges them again; the merge log
// shows it.
func (s *Store) Unmerge(ctx context.Context, workspaceID, survivorID, mergeID string) (string, error) {
	var restored string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var survivor string
		var undone *time.Time
		err := tx.QueryRow(ctx, `SELECT survivor_id::text, merged_id::text, undone_at FROM profile_merges WHERE workspace_id = $1 AND id = $2 FOR UPDATE`,
			workspaceID, mergeID).Scan(&survivor, &restored, &undone)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && survivor != survivorID) {
			return ErrMergeNotFound
		}
		if err != nil {
			return fmt.Errorf("load merge %s: %w", mergeID, err)
		}
		if undone != nil {
			return ErrMergeAlreadyUndone
		}
		settings, err := loadSettings(ctx, tx, workspaceID)
		if err != nil {
			return err
		}
		// Serialise with ingestion on every identifier of the survivor.
		rows, err := tx.Query(ctx, `SELECT type, value FROM identities WHERE workspace_id = $1 AND profile_id = $2`, workspaceID, survivor)
		if err != nil {
			return fmt.Errorf("load identities: %w", err)
		}
		keys, err := pgx.CollectRows(rows, pgx.RowToStructByPos[identity.Key])
		if err != nil {
			return fmt.Errorf("load identities: %w", err)
		}
		if err := lockKeys(ctx, tx, workspaceID, keys); err != nil {
			return err
		}
		batch := &pgx.Batch{}
		const family = `WITH RECURSIVE d(id) AS (
				SELECT $3::uuid
				UNION SELECT p.id FROM profiles p JOIN d ON p.workspace_id = $1 AND p.merged_into = d.id)`
		batch.Queue(family+` UPDATE identities SET profile_id = $3 WHERE workspace_id = $1 AND profile_id = $2 AND origin_profile_id IN (SELECT id FROM d)`,
			workspaceID, survivor, restored)
		batch.Queue(family+` UPDATE events SET profile_id = $3 WHERE workspace_id = $1 AND profile_id = $2 AND origin_profile_id IN (SELECT id FROM d)`,
			workspaceID, survivor, restored)
		batch.Queue(`UPDATE profiles SET merged_into = NULL, merged_at = NULL WHERE workspace_id = $1 AND id = $2`, workspaceID, restored)
		batch.Queue(`UPDATE profile_merges SET undone_at = now() WHERE workspace_id = $1 AND id = $2`, workspaceID, mergeID)
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return fmt.Errorf("undo merge %s: %w", mergeID, err)
		}
		states := map[string]*profileState{}
		for _, id := range []string{survivor, restored} {
			st, err := rebuild(ctx, tx, workspaceID, id, settings)
			if err != nil {
				return err
			}
			states[id] = st
		}
		return saveProfiles(ctx, tx, workspaceID, states)
	})
	if err != nil {
		return "", err
	}
	return restored, nil
}

// rebuild recomputes a profile's traits and computed traits from its events.
func rebuild(ctx context.Context, tx pgx.Tx, workspaceID, id string, settings identity.Settings) (*profileState, error) {
	var createdAt time.Time
	if err := tx.QueryRow(ctx, `SELECT created_at FROM profiles WHERE workspace_id = $1 AND id = $2 FOR UPDATE`, workspaceID, id).Scan(&createdAt); err != nil {
		return nil, fmt.Errorf("load profile %s: %w", id, err)
	}
	st := &profileState{p: profile.New(id, createdAt), touched: true}
	if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT value FROM identities WHERE workspace_id = $1 AND profile_id = $2 AND type = $3 LIMIT 1), '')`,
		workspaceID, id, settings.UniqueIdentifier).Scan(&st.uniqueValue); err != nil {
		return nil, fmt.Errorf("load unique identifier of %s: %w", id, err)
	}
	rows, err := tx.Query(ctx, `
		SELECT message_id, type, coalesce(name, ''), source, timestamp, properties, traits, context
		FROM events WHERE workspace_id = $1 AND profile_id = $2 AND source <> $3 ORDER BY timestamp, id`, workspaceID, id, InternalSource)
	if err != nil {
		return nil, fmt.Errorf("load events of %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var m events.Message
		var name, source string
		var props, traits, ctxJSON []byte
		if err := rows.Scan(&m.MessageID, &m.Type, &name, &source, &m.Timestamp, &props, &traits, &ctxJSON); err != nil {
			return nil, err
		}
		if m.Type == events.TypeTrack {
			m.Event = name
		} else {
			m.Name = name
		}
		for _, f := range []struct {
			raw []byte
			dst *map[string]any
		}{{props, &m.Properties}, {traits, &m.Traits}, {ctxJSON, &m.Context}} {
			if err := json.Unmarshal(f.raw, f.dst); err != nil {
				return nil, fmt.Errorf("decode event %s: %w", m.MessageID, err)
			}
		}
		normalizeTraits(&m, settings)
		st.p.Apply(&m, source)
	}
	return st, rows.Err()
}

package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parcours/parcours/pkg/addrhash"
	"github.com/parcours/parcours/pkg/identity"
)

// ErrProfileNotFound is returned when erasing a profile that does not exist.
var ErrProfileNotFound = errors.New("profile not found")

// Erasure reports what an erasure removed.
type Erasure struct {
	ID         string `json:"id"`
	ProfileID  string `json:"profile_id"`
	Profiles   int    `json:"profiles"`
	Identities int    `json:"identities"`
	Events     int    `json:"events"`
	// JourneyRuns counts the running journey runs stopped.
	JourneyRuns int `json:"journey_runs"`
}

// Erase deletes a person: the profile and every profile merged into it, their
// identities (remembered only as keyed hashes, s.hashes.Identity, so later
// records carrying them are dropped), their events, merge history and conflicts. An audit row without
// personal data records who erased what and when.
func (s *Store) Erase(ctx context.Context, workspaceID, profileID, keyID string) (Erasure, error) {
	out := Erasure{ProfileID: profileID}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var live string
		// Follow merges: erasing a merged id erases the person it became.
		err := tx.QueryRow(ctx, `
			WITH RECURSIVE up(id, merged_into, depth) AS (
				SELECT id, merged_into, 0 FROM profiles WHERE workspace_id = $1 AND id = $2
				UNION ALL SELECT p.id, p.merged_into, up.depth + 1 FROM profiles p JOIN up ON p.workspace_id = $1 AND p.id = up.merged_into WHERE up.depth < 16)
			SELECT id::text FROM up WHERE merged_into IS NULL`, workspaceID, profileID).Scan(&live)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrProfileNotFound
		}
		if err != nil {
			return fmt.Errorf("find profile %s: %w", profileID, err)
		}
		out.ProfileID = live
		rows, err := tx.Query(ctx, `
			WITH RECURSIVE d(id) AS (SELECT $2::uuid UNION SELECT p.id FROM profiles p JOIN d ON p.workspace_id = $1 AND p.merged_into = d.id)
			SELECT id::text FROM d`, workspaceID, live)
		if err != nil {
			return fmt.Errorf("find merged profiles: %w", err)
		}
		family, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("find merged profiles: %w", err)
		}
		rows, err = tx.Query(ctx, `SELECT type, value FROM identities WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])`, workspaceID, family)
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
		types, hashes := make([]string, len(keys)), make([][]byte, len(keys))
		for i, k := range keys {
			types[i], hashes[i] = k.Type, s.hashes.Identity(workspaceID, k.Type, k.Value)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO suppressed_identities (workspace_id, type, value_hash)
			SELECT $1, t, h FROM unnest($2::text[], $3::bytea[]) AS x(t, h) ON CONFLICT DO NOTHING`, workspaceID, types, hashes); err != nil {
			return fmt.Errorf("suppress identities: %w", err)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM events WHERE workspace_id = $1 AND (profile_id = ANY($2::uuid[]) OR origin_profile_id = ANY($2::uuid[]))`, workspaceID, family)
		if err != nil {
			return fmt.Errorf("delete events: %w", err)
		}
		out.Events = int(tag.RowsAffected())
		tag, err = tx.Exec(ctx, `DELETE FROM identities WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])`, workspaceID, family)
		if err != nil {
			return fmt.Errorf("delete identities: %w", err)
		}
		out.Identities = int(tag.RowsAffected())
		batch := &pgx.Batch{}
		batch.Queue(`DELETE FROM profile_merges WHERE workspace_id = $1 AND (survivor_id = ANY($2::uuid[]) OR merged_id = ANY($2::uuid[]))`, workspaceID, family)
		batch.Queue(`DELETE FROM identity_conflicts WHERE workspace_id = $1 AND profile_ids && $2::uuid[]`, workspaceID, family)
		batch.Queue(`
			WITH gone AS (DELETE FROM segment_memberships WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[]) RETURNING segment_id, exited_at)
			UPDATE segments s SET size = s.size - x.n FROM (SELECT segment_id, count(*) n FROM gone WHERE exited_at IS NULL GROUP BY segment_id) x
			WHERE s.workspace_id = $1 AND s.id = x.segment_id`, workspaceID, family)
		batch.Queue(`DELETE FROM segment_events WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])`, workspaceID, family)
		// Consent rows go; delivery rows stay for the campaign figures, no
		// longer linked to the person (they hold no address, only its hash).
		batch.Queue(`DELETE FROM subscriptions WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])`, workspaceID, family)
		// The consent audit log keeps what happened, no longer whose it was.
		batch.Queue(`UPDATE consent_log SET profile_id = NULL WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])`, workspaceID, family)
		batch.Queue(`UPDATE deliveries SET profile_id = NULL WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])`, workspaceID, family)
		// Broadcast audiences keep the count, not the person; a batch not
		// sent yet skips them.
		batch.Queue(`UPDATE broadcast_recipients SET profile_id = NULL WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])`, workspaceID, family)
		batch.Queue(`DELETE FROM broadcast_addresses WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])`, workspaceID, family)
		batch.Queue(`DELETE FROM profiles WHERE workspace_id = $1 AND id = ANY($2::uuid[])`, workspaceID, family)
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return fmt.Errorf("delete profile: %w", err)
		}
		out.Profiles = len(family)
		return tx.QueryRow(ctx, `
			INSERT INTO erasures (workspace_id, profile_id, key_id, profiles, identities, events)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id::text`,
			workspaceID, live, keyID, out.Profiles, out.Identities, out.Events).Scan(&out.ID)
	})
	if err != nil {
		return out, err
	}
	return out, nil
}

// dropSuppressed removes records that carry an erased identifier.
func dropSuppressed(ctx context.Context, tx pgx.Tx, hashes *addrhash.Hasher, workspaceID string, msgs []*recordKeys) (kept []*recordKeys, dropped int, err error) {
	var types []string
	var keyed [][]byte
	for _, m := range msgs {
		for _, k := range m.keys {
			types, keyed = append(types, k.Type), append(keyed, hashes.Identity(workspaceID, k.Type, k.Value))
		}
	}
	if len(types) == 0 {
		return msgs, 0, nil
	}
	rows, err := tx.Query(ctx, `
		SELECT s.type, s.value_hash FROM suppressed_identities s
		JOIN unnest($2::text[], $3::bytea[]) AS x(t, h) ON s.type = x.t AND s.value_hash = x.h
		WHERE s.workspace_id = $1`, workspaceID, types, keyed)
	if err != nil {
		return nil, 0, fmt.Errorf("check suppressed identities: %w", err)
	}
	suppressed := map[string]bool{}
	for rows.Next() {
		var t string
		var h []byte
		if err := rows.Scan(&t, &h); err != nil {
			return nil, 0, err
		}
		suppressed[t+"\x00"+string(h)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	if len(suppressed) == 0 {
		return msgs, 0, nil
	}
	for _, m := range msgs {
		hit := false
		for _, k := range m.keys {
			if suppressed[k.Type+"\x00"+string(hashes.Identity(workspaceID, k.Type, k.Value))] {
				hit = true
				break
			}
		}
		if hit {
			dropped++
		} else {
			kept = append(kept, m)
		}
	}
	return kept, dropped, nil
}

// SetTraits sets traits on a profile directly (a journey's update_profile
// step), with reason as their provenance. Setting the same values again is
// harmless.
func (s *Store) SetTraits(ctx context.Context, workspaceID, profileID string, traits map[string]any, reason string) error {
	if len(traits) == 0 {
		return nil
	}
	src := map[string]any{}
	for k := range traits {
		src[k] = map[string]any{"source": "journey", "message_id": reason, "at": time.Now().UTC()}
	}
	tj, err := json.Marshal(traits)
	if err != nil {
		return fmt.Errorf("encode traits: %w", err)
	}
	sj, _ := json.Marshal(src)
	_, err = s.pool.Exec(ctx, `UPDATE profiles SET traits = traits || $3::jsonb, trait_sources = trait_sources || $4::jsonb, updated_at = now()
		WHERE workspace_id = $1 AND id = $2`, workspaceID, profileID, tj, sj)
	if err != nil {
		return fmt.Errorf("set traits of %s: %w", profileID, err)
	}
	return nil
}

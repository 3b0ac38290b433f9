package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parcours/parcours/pkg/addrhash"
	"github.com/parcours/parcours/pkg/identity"
	"github.com/parcours/parcours/pkg/segment"
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

// Erase deletes a person: the profile and every profile merged into it.
//
// Removed, in one transaction:
//   - their identities, events, merge history and identity conflicts;
//   - their segment memberships and transitions, with the entries and exits
//     still waiting for a segment webhook (which would name them); instead
//     every webhook of a segment they are or were in is sent an "erased"
//     notice with the profile id only (segment.QueueErasure);
//   - their subscriptions, and every consent_log row of the profile or of
//     one of their addresses;
//   - the delivery events of their deliveries and of their addresses (a
//     spam report naming no delivery, a test send to the bare address);
//     the deliveries stay for the campaign figures, with neither the
//     profile nor the address's hash;
//   - the records of theirs kept in the quarantine (rejected_records whose
//     raw text or reason holds one of their identifiers), and the bad rows
//     of imports that quote one or that are those records;
//   - broadcast address claims of theirs.
//
// Kept: the suppressions of their addresses (keyed hashes, so that a send
// to a bounced address is still refused), and their identifiers as keyed
// hashes in suppressed_identities, so that later records carrying them are
// recognised and dropped; journey runs and conversions by profile id; and
// an audit row without personal data of who erased what and when.
//
// The person's identifiers, for the quarantine and bad rows, are their
// identities' values and the string values of their email, phone and
// identity traits, matched case-insensitively as whole words (not inside a
// longer word or number), as written and URL-encoded; values shorter than
// minErasedMatch are not looked for there (they would match other
// people's records), and the quarantine's retention removes those.
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
		who, err := s.personOf(ctx, tx, workspaceID, family, keys)
		if err != nil {
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
		// Before the memberships go: the notices need them.
		var now time.Time
		if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
			return err
		}
		if _, err := segment.QueueErasure(ctx, tx, workspaceID, family, now); err != nil {
			return err
		}
		batch := &pgx.Batch{}
		batch.Queue(`DELETE FROM profile_merges WHERE workspace_id = $1 AND (survivor_id = ANY($2::uuid[]) OR merged_id = ANY($2::uuid[]))`, workspaceID, family)
		batch.Queue(`DELETE FROM identity_conflicts WHERE workspace_id = $1 AND profile_ids && $2::uuid[]`, workspaceID, family)
		batch.Queue(`
			WITH gone AS (DELETE FROM segment_memberships WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[]) RETURNING segment_id, exited_at)
			UPDATE segments s SET size = s.size - x.n FROM (SELECT segment_id, count(*) n FROM gone WHERE exited_at IS NULL GROUP BY segment_id) x
			WHERE s.workspace_id = $1 AND s.id = x.segment_id`, workspaceID, family)
		// Consent: the subscriptions, and the audit log of the profile and
		// of its addresses (the suppressions themselves stay).
		batch.Queue(`DELETE FROM subscriptions WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])`, workspaceID, family)
		batch.Queue(`DELETE FROM consent_log WHERE workspace_id = $1 AND (profile_id = ANY($2::uuid[]) OR address_hash = ANY($3::bytea[]))`,
			workspaceID, family, who.addressHashes)
		// Delivery rows stay for the campaign figures (their first
		// delivered, opened, clicked ... times), linked to neither the
		// person nor the address; their provider events go.
		batch.Queue(`
			WITH d AS (
				UPDATE deliveries SET profile_id = NULL, address_hash = NULL
				WHERE workspace_id = $1 AND (profile_id = ANY($2::uuid[]) OR address_hash = ANY($3::bytea[]))
				RETURNING id)
			DELETE FROM delivery_events e WHERE e.workspace_id = $1 AND (e.delivery_id IN (SELECT id FROM d) OR e.address_hash = ANY($3::bytea[]))`,
			workspaceID, family, who.addressHashes)
		// Broadcast audiences keep the count, not the person; a batch not
		// sent yet skips them.
		batch.Queue(`UPDATE broadcast_recipients SET profile_id = NULL WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])`, workspaceID, family)
		batch.Queue(`DELETE FROM broadcast_addresses WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])`, workspaceID, family)
		batch.Queue(`DELETE FROM profiles WHERE workspace_id = $1 AND id = ANY($2::uuid[])`, workspaceID, family)
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return fmt.Errorf("delete profile: %w", err)
		}
		if err := eraseQuarantined(ctx, tx, workspaceID, who.values); err != nil {
			return err
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

// minErasedMatch is the shortest identifier an erasure looks for in the
// quarantine and in imports' bad rows: a user id such as "42" would match
// other people's records.
const minErasedMatch = 5

// erasedPerson is what an erasure looks for beyond the profile's own rows.
type erasedPerson struct {
	// values are the person's identifiers and address traits as written
	// (the quarantine and bad rows quote records as they were sent).
	values []string
	// addressHashes are the keyed hashes of their email addresses and
	// phone numbers, as the ledger computed them, and those on their
	// deliveries.
	addressHashes [][]byte
}

// personOf gathers the identifiers and address hashes of the profiles of
// family, whose identities are keys.
func (s *Store) personOf(ctx context.Context, tx pgx.Tx, workspaceID string, family []string, keys []identity.Key) (erasedPerson, error) {
	var p erasedPerson
	settings, err := loadSettings(ctx, tx, workspaceID)
	if err != nil {
		return p, err
	}
	traitNames := append([]string{identity.Email, identity.Phone}, settings.Traits...)
	rows, err := tx.Query(ctx, `
		SELECT t.key, t.value FROM profiles p, jsonb_each_text(p.traits) AS t(key, value)
		WHERE p.workspace_id = $1 AND p.id = ANY($2::uuid[]) AND t.key = ANY($3::text[]) AND jsonb_typeof(p.traits -> t.key) IN ('string', 'number')`,
		workspaceID, family, traitNames)
	if err != nil {
		return p, fmt.Errorf("load identifying traits: %w", err)
	}
	traits, err := pgx.CollectRows(rows, pgx.RowToStructByPos[identity.Key])
	if err != nil {
		return p, fmt.Errorf("load identifying traits: %w", err)
	}
	seenValue, seenHash := map[string]bool{}, map[string]bool{}
	addValue := func(v string) {
		if v = strings.TrimSpace(v); v != "" && !seenValue[strings.ToLower(v)] {
			seenValue[strings.ToLower(v)] = true
			p.values = append(p.values, v)
		}
	}
	addHash := func(h []byte) {
		if len(h) > 0 && !seenHash[string(h)] {
			seenHash[string(h)] = true
			p.addressHashes = append(p.addressHashes, h)
		}
	}
	// The addresses as the ledger hashes them (channel.profileAddress):
	// email and phone identities, the email trait trimmed, the phone trait
	// normalised.
	for _, k := range keys {
		addValue(k.Value)
		if k.Type == identity.Email || k.Type == identity.Phone {
			addHash(s.hashes.Address(workspaceID, k.Value))
		}
	}
	for _, t := range traits {
		addValue(t.Value)
		switch t.Type {
		case identity.Email:
			addHash(s.hashes.Address(workspaceID, t.Value))
		case identity.Phone:
			addHash(s.hashes.Address(workspaceID, identity.NormalizePhone(t.Value)))
			addValue(identity.NormalizePhone(t.Value))
		}
	}
	rows, err = tx.Query(ctx, `SELECT DISTINCT address_hash FROM deliveries WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[]) AND address_hash IS NOT NULL`,
		workspaceID, family)
	if err != nil {
		return p, fmt.Errorf("load delivery addresses: %w", err)
	}
	sent, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return p, fmt.Errorf("load delivery addresses: %w", err)
	}
	for _, h := range sent {
		addHash(h)
	}
	return p, nil
}

// erasedPattern is a PostgreSQL regular expression (for ~*) matching any of
// values as a whole word, as written or URL-encoded; "" when none is long
// enough to look for.
func erasedPattern(values []string) string {
	var alts []string
	seen := map[string]bool{}
	for _, v := range values {
		if len(v) < minErasedMatch {
			continue
		}
		for _, form := range []string{v, url.QueryEscape(v)} {
			if f := strings.ToLower(form); !seen[f] {
				seen[f] = true
				// regexp.QuoteMeta escapes punctuation only, with a
				// backslash, which PostgreSQL's regular expressions read
				// the same way.
				alts = append(alts, regexp.QuoteMeta(f))
			}
		}
	}
	if len(alts) == 0 {
		return ""
	}
	return `(^|[^[:alnum:]_])(` + strings.Join(alts, "|") + `)($|[^[:alnum:]_])`
}

// erasedBadRow replaces the reason of an import's bad row that was about an
// erased person. It starts "removed: ", as the retention sweep's does
// (pkg/retention), which leaves such reasons alone.
const erasedBadRow = "removed: the row was about a person since erased"

// eraseQuarantined deletes the quarantined records that hold one of the
// person's values, in their raw text or in their reason (which quotes the
// value at fault), and rewrites the bad rows of imports that quote one or
// that were those records (same source, line, column and reason), keeping
// their line and column.
func eraseQuarantined(ctx context.Context, tx pgx.Tx, workspaceID string, values []string) error {
	pattern := erasedPattern(values)
	if pattern == "" {
		return nil
	}
	rows, err := tx.Query(ctx, `
		DELETE FROM rejected_records WHERE workspace_id = $1 AND (raw ~* $2 OR reason ~* $2)
		RETURNING source, coalesce(field, ''), coalesce(reason, '')`, workspaceID, pattern)
	if err != nil {
		return fmt.Errorf("delete quarantined records: %w", err)
	}
	var sources, fields, reasons []string
	var src, field, reason string
	if _, err := pgx.ForEachRow(rows, []any{&src, &field, &reason}, func() error {
		sources, fields, reasons = append(sources, src), append(fields, field), append(reasons, reason)
		return nil
	}); err != nil {
		return fmt.Errorf("delete quarantined records: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		UPDATE imports i SET bad_rows = x.rows
		FROM (
			SELECT i2.id, jsonb_agg(CASE
				WHEN b ->> 'reason' ~* $2 OR EXISTS (
					SELECT 1 FROM unnest($3::text[], $4::text[], $5::text[]) AS q(source, field, reason)
					WHERE q.source = i2.source AND q.reason = b ->> 'reason'
					  AND q.field = 'line ' || (b ->> 'line') || coalesce(': ' || (b ->> 'field'), ''))
				THEN b - 'reason' || jsonb_build_object('reason', $6::text)
				ELSE b END ORDER BY n) AS rows
			FROM imports i2, jsonb_array_elements(i2.bad_rows) WITH ORDINALITY AS e(b, n)
			WHERE i2.workspace_id = $1 AND i2.bad_rows <> '[]' AND (i2.bad_rows::text ~* $2 OR i2.source = ANY($3::text[]))
			GROUP BY i2.id) x
		WHERE i.workspace_id = $1 AND i.id = x.id AND i.bad_rows IS DISTINCT FROM x.rows`,
		workspaceID, pattern, sources, fields, reasons, erasedBadRow); err != nil {
		return fmt.Errorf("scrub imports' bad rows: %w", err)
	}
	return nil
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

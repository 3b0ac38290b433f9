// Package ingest stores incoming records and resolves them to profiles, in one
// PostgreSQL transaction per call: when Ingest returns nil, every record is
// committed (stored once, deduplicated by messageId), linked to its profile,
// and the profile's traits and computed traits are up to date.
//
// Identity resolution is serialised per identifier with transaction-scoped
// advisory locks taken in a fixed order, so concurrent calls about the same
// person never create two profiles.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parcours/parcours/pkg/addrhash"
	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/identity"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/segment"
)

// Store writes records and profiles.
type Store struct {
	pool *pgxpool.Pool
	// hashes keys the hashes of erased identifiers (suppressed_identities)
	// and of the addresses an erasure looks for (pkg/addrhash).
	hashes *addrhash.Hasher
}

// NewStore returns a Store over pool. Its hashes are unkeyed
// (addrhash.New(nil)) until WithHashes gives it the process's.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool, hashes: addrhash.New(nil)} }

// WithHashes sets the hasher of erased identifiers and addresses: main
// gives every store of the process addrhash.New(PARCOURS_SECRET_KEY), the
// hasher of the channel store's box, so that an erasure finds the hashes
// the ledger wrote and every process recognises the identifiers an erasure
// suppressed. It returns s.
func (s *Store) WithHashes(h *addrhash.Hasher) *Store {
	s.hashes = h
	return s
}

// Origin says who sent the records: the workspace and the write key with its
// source (web, app, store, call_centre, crm, ...), for the audit trail.
type Origin struct {
	WorkspaceID string
	KeyID       string
	Source      string
	// Journeys says the records may start journeys: those that trigger a
	// live journey are queued for it in the transaction that stores them
	// (journey_triggers). The API's ingestion sets it; imports and replays
	// of history leave it false.
	Journeys bool
}

// Result reports what a call did.
type Result struct {
	// Accepted counts records stored by this call.
	Accepted int
	// Duplicates counts records whose messageId was already stored.
	Duplicates int
	// Merges counts profile merges the records caused.
	Merges int
	// Conflicts counts links refused because they would join two people.
	Conflicts int
	// Suppressed counts records dropped because they carry an identifier of
	// an erased person. It is for operators and tests: the API answers
	// these records as accepted, so that a write key's holder cannot learn
	// that someone was erased.
	Suppressed int
	// Changes says, per profile, what the call changed (for segment
	// re-evaluation), profiles merged away included.
	Changes []segment.Change
	// Stored lists the records this call stored, with their profile (for
	// journey triggers).
	Stored []StoredEvent
	// Outcomes says, record by record in the order given, what happened.
	Outcomes []Outcome
}

// Outcome is what happened to one record of a call.
type Outcome uint8

// Outcomes.
const (
	OutcomeAccepted Outcome = iota
	OutcomeDuplicate
	OutcomeSuppressed
)

// StoredEvent is a stored record and the profile it ended on.
type StoredEvent struct {
	ID        int64
	ProfileID string
	Message   *events.Message
}

// recordKeys is a record with the identifiers it carries.
type recordKeys struct {
	m    *events.Message
	keys []identity.Key
}

// Rejection is a record refused at the door, to keep with its reason.
type Rejection struct {
	// CallType is the endpoint's type for a single call, "" for a batch item.
	CallType   string
	Field      string
	Reason     string
	Raw        []byte
	ReceivedAt time.Time
}

// Ingest stores msgs and resolves them, and keeps rejects in quarantine, in
// one transaction. It retries by itself when PostgreSQL aborts the
// transaction for a deadlock or a serialisation failure.
func (s *Store) Ingest(ctx context.Context, o Origin, msgs []events.Message, rejects []Rejection) (Result, error) {
	var res Result
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		res = Result{}
		if err := insertRejects(ctx, tx, o, rejects); err != nil {
			return err
		}
		if len(msgs) == 0 {
			return nil
		}
		var err error
		res, err = s.ingestTx(ctx, tx, o, msgs)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("ingest %d records: %w", len(msgs), err)
	}
	return res, nil
}

// inTx runs fn in a transaction, again when PostgreSQL aborts it for a
// deadlock or serialisation failure, or when a profile it resolved to was
// merged or erased meanwhile.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		err = pgx.BeginFunc(ctx, s.pool, fn)
		if !retryable(err) {
			return err
		}
	}
	return err
}

func insertRejects(ctx context.Context, tx pgx.Tx, o Origin, rejects []Rejection) error {
	if len(rejects) == 0 {
		return nil
	}
	n := len(rejects)
	fields, reasons, raws, at, callTypes := make([]string, n), make([]string, n), make([]string, n), make([]time.Time, n), make([]*string, n)
	for i, r := range rejects {
		callTypes[i] = nullable(r.CallType)
		fields[i], reasons[i], raws[i], at[i] = r.Field, r.Reason, strings.ReplaceAll(strings.ToValidUTF8(string(r.Raw), "\uFFFD"), "\x00", "\uFFFD"), r.ReceivedAt
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO rejected_records (workspace_id, source, key_id, received_at, field, reason, raw, call_type)
		SELECT $1, $2, $3, x.* FROM unnest($4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::text[]) AS x`,
		o.WorkspaceID, o.Source, o.KeyID, at, fields, reasons, raws, callTypes)
	if err != nil {
		return fmt.Errorf("quarantine %d rejected records: %w", n, err)
	}
	return nil
}

// Internal events Parcours records itself.
const (
	// InternalSource is the source of events Parcours records itself.
	InternalSource = "parcours"
	// ProfileMergedEvent is recorded on the survivor of every merge.
	ProfileMergedEvent = "Profile Merged"
)

// errStale means a profile this transaction resolved to was merged by a
// concurrent transaction while this one waited for its lock: start over with
// fresh identities.
var errStale = errors.New("profile merged concurrently")

func retryable(err error) bool {
	if errors.Is(err, errStale) {
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// profileState is a profile loaded or created in this transaction.
type profileState struct {
	p           *profile.Profile
	uniqueValue string
	created     bool
	touched     bool
	mergedInto  string
}

func (s *Store) ingestTx(ctx context.Context, tx pgx.Tx, o Origin, msgs []events.Message) (Result, error) {
	var res Result
	settings, err := loadSettings(ctx, tx, o.WorkspaceID)
	if err != nil {
		return res, err
	}

	// 1. The identifiers of every record; records of erased people are dropped.
	candidates := make([]*recordKeys, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		rk := &recordKeys{m: m, keys: identity.Keys(m, settings)}
		if m.Type == events.TypeAlias {
			rk.keys = append(rk.keys, identity.Key{Type: identity.UserID, Value: m.PreviousID}, identity.Key{Type: identity.AnonymousID, Value: m.PreviousID})
		}
		candidates[i] = rk
	}
	kept, dropped, err := dropSuppressed(ctx, tx, s.hashes, o.WorkspaceID, candidates)
	if err != nil {
		return res, err
	}
	res.Suppressed = dropped
	res.Outcomes = make([]Outcome, len(msgs))
	index := make(map[*events.Message]int, len(msgs))
	for i := range msgs {
		index[&msgs[i]] = i
		res.Outcomes[i] = OutcomeSuppressed // unless kept below
	}

	// 2. Store the records; the unique (workspace, messageId) index dedupes.
	keptMsgs := make([]events.Message, len(kept))
	for i, rk := range kept {
		keptMsgs[i] = *rk.m
	}
	ids, err := insertEvents(ctx, tx, o, keptMsgs)
	if err != nil {
		return res, err
	}
	var fresh []*events.Message
	var recordKeysOf [][]identity.Key
	freshIDs := map[*events.Message]int64{}
	var all []identity.Key
	for _, rk := range kept {
		id, ok := ids[rk.m.MessageID]
		if !ok {
			res.Duplicates++
			res.Outcomes[index[rk.m]] = OutcomeDuplicate
			continue
		}
		res.Outcomes[index[rk.m]] = OutcomeAccepted
		delete(ids, rk.m.MessageID) // a messageId repeated in one batch counts once
		fresh = append(fresh, rk.m)
		freshIDs[rk.m] = id
		recordKeysOf = append(recordKeysOf, identity.Keys(rk.m, settings))
		all = append(all, rk.keys...)
	}
	// A messageId repeated in one call is a duplicate whether or not its
	// person was erased: callers answer suppressed records as accepted, and
	// the repeat must not tell the two apart.
	seen := make(map[string]bool, len(msgs))
	for i := range msgs {
		if res.Outcomes[i] == OutcomeSuppressed && seen[msgs[i].MessageID] {
			res.Outcomes[i] = OutcomeDuplicate
			res.Suppressed--
			res.Duplicates++
		}
		seen[msgs[i].MessageID] = true
	}
	res.Accepted = len(fresh)
	if len(fresh) == 0 {
		return res, nil
	}

	// 3. Lock the identifiers in a fixed order, then read who owns them.
	if err := lockKeys(ctx, tx, o.WorkspaceID, all); err != nil {
		return res, err
	}
	owners, err := loadOwners(ctx, tx, o.WorkspaceID, all)
	if err != nil {
		return res, err
	}
	profiles, err := loadProfiles(ctx, tx, o.WorkspaceID, settings.UniqueIdentifier, owners)
	if err != nil {
		return res, err
	}

	// 4. Resolve each record in order.
	type newIdentity struct {
		key       identity.Key
		profileID string
	}
	var attach []newIdentity
	eventProfile := make([]string, len(fresh))
	now := time.Now().UTC()
	for i, m := range fresh {
		keys := recordKeysOf[i]
		if m.Type == events.TypeAlias {
			prev := identity.Key{Type: identity.AnonymousID, Value: m.PreviousID}
			if _, ok := owners[identity.Key{Type: identity.UserID, Value: m.PreviousID}]; ok {
				prev = identity.Key{Type: identity.UserID, Value: m.PreviousID}
			}
			keys = append(slices.Clone(keys), prev)
		}
		view := map[string]identity.Profile{}
		for _, k := range keys {
			if id, ok := owners[k]; ok {
				st := profiles[id]
				view[id] = identity.Profile{ID: id, CreatedAt: st.p.CreatedAt, UniqueValue: st.uniqueValue}
			}
		}
		plan := identity.Resolve(keys, owners, view, settings.UniqueIdentifier)
		if plan.Target == "" {
			id := uuid.NewString()
			profiles[id] = &profileState{p: profile.New(id, now), created: true, touched: true}
			plan.Target = id
		}
		target := profiles[plan.Target]
		for _, mid := range plan.Merge {
			merged := profiles[mid]
			target.p.Absorb(merged.p)
			if target.uniqueValue == "" {
				target.uniqueValue = merged.uniqueValue
			}
			merged.mergedInto = plan.Target
			merged.touched = true
			for k, owner := range owners {
				if owner == mid {
					owners[k] = plan.Target
				}
			}
			for j := range attach {
				if attach[j].profileID == mid {
					attach[j].profileID = plan.Target
				}
			}
			for j := range eventProfile[:i] {
				if eventProfile[j] == mid {
					eventProfile[j] = plan.Target
				}
			}
			if err := mergeInDB(ctx, tx, o.WorkspaceID, plan.Target, mid, m.MessageID, keys); err != nil {
				return res, err
			}
			res.Merges++
		}
		if len(plan.Conflicts) > 0 {
			if err := recordConflict(ctx, tx, o.WorkspaceID, m.MessageID, append([]string{plan.Target}, plan.Conflicts...), settings.UniqueIdentifier); err != nil {
				return res, err
			}
			res.Conflicts++
		}
		for _, k := range plan.Attach {
			owners[k] = plan.Target
			attach = append(attach, newIdentity{key: k, profileID: plan.Target})
			if k.Type == settings.UniqueIdentifier && target.uniqueValue == "" {
				target.uniqueValue = k.Value
			}
		}
		normalizeTraits(m, settings)
		target.p.Apply(m, o.Source)
		target.touched = true
		eventProfile[i] = plan.Target
	}

	// 5. Write identities, event links and profiles.
	if len(attach) > 0 {
		types, values, pids := make([]string, len(attach)), make([]string, len(attach)), make([]string, len(attach))
		for i, a := range attach {
			types[i], values[i], pids[i] = a.key.Type, a.key.Value, a.profileID
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO identities (workspace_id, type, value, profile_id, origin_profile_id, source)
			SELECT $1, t, v, p::uuid, p::uuid, $5 FROM unnest($2::text[], $3::text[], $4::text[]) AS x(t, v, p)
			ON CONFLICT (workspace_id, type, value) DO NOTHING`,
			o.WorkspaceID, types, values, pids, o.Source); err != nil {
			return res, fmt.Errorf("insert identities: %w", err)
		}
	}
	evIDs, evProfiles := make([]int64, len(fresh)), make([]string, len(fresh))
	for i, m := range fresh {
		evIDs[i], evProfiles[i] = freshIDs[m], eventProfile[i]
	}
	if err := linkEvents(ctx, tx, o.WorkspaceID, evIDs, evProfiles, o.Journeys); err != nil {
		return res, err
	}
	res.Changes = changes(fresh, eventProfile, profiles)
	for i, m := range fresh {
		res.Stored = append(res.Stored, StoredEvent{ID: freshIDs[m], ProfileID: eventProfile[i], Message: m})
	}
	return res, saveProfiles(ctx, tx, o.WorkspaceID, profiles)
}

// finalSurvivor follows merges made in this call to the live profile.
func finalSurvivor(profiles map[string]*profileState, id string) string {
	for i := 0; i < len(profiles); i++ {
		st, ok := profiles[id]
		if !ok || st.mergedInto == "" {
			return id
		}
		id = st.mergedInto
	}
	return id
}

// changes summarises, per profile, the records a call brought.
func changes(fresh []*events.Message, eventProfile []string, profiles map[string]*profileState) []segment.Change {
	byProfile := map[string]*segment.Change{}
	var order []string
	get := func(id string) *segment.Change {
		c, ok := byProfile[id]
		if !ok {
			c = &segment.Change{ProfileID: id}
			byProfile[id] = c
			order = append(order, id)
		}
		return c
	}
	for i, m := range fresh {
		c := get(eventProfile[i])
		if name := m.NameOrEvent(); !slices.Contains(c.Events, name) {
			c.Events = append(c.Events, name)
		}
		if !slices.Contains(c.Types, m.Type) {
			c.Types = append(c.Types, m.Type)
		}
		if m.Type == events.TypeIdentify || len(m.ContextTraits()) > 0 || m.Type == events.TypeAlias {
			c.Traits = true
		}
	}
	for id, st := range profiles {
		if st.mergedInto != "" {
			get(id).Gone = true
			get(id).MergedInto = finalSurvivor(profiles, st.mergedInto)
			get(st.mergedInto).Traits = true // it gained identities and traits
		}
	}
	slices.Sort(order)
	out := make([]segment.Change, 0, len(order))
	for _, id := range order {
		out = append(out, *byProfile[id])
	}
	return out
}

func loadSettings(ctx context.Context, tx pgx.Tx, workspaceID string) (identity.Settings, error) {
	var s identity.Settings
	err := tx.QueryRow(ctx, `SELECT unique_identifier, identity_traits FROM workspaces WHERE id = $1`, workspaceID).
		Scan(&s.UniqueIdentifier, &s.Traits)
	if err != nil {
		return s, fmt.Errorf("load identity settings: %w", err)
	}
	// The unique identifier is always an identifier, whatever the trait list says.
	if s.UniqueIdentifier != identity.UserID && s.UniqueIdentifier != identity.AnonymousID && !slices.Contains(s.Traits, s.UniqueIdentifier) {
		s.Traits = append(s.Traits, s.UniqueIdentifier)
	}
	return s, nil
}

// insertEvents stores the records and returns the ids of those that were new,
// by messageId.
func insertEvents(ctx context.Context, tx pgx.Tx, o Origin, msgs []events.Message) (map[string]int64, error) {
	n := len(msgs)
	var (
		messageIDs, types, names, anon, users = make([]string, n), make([]string, n), make([]*string, n), make([]*string, n), make([]*string, n)
		ts, origTS, sentAt, receivedAt        = make([]time.Time, n), make([]*time.Time, n), make([]*time.Time, n), make([]time.Time, n)
		props, traits, contexts, raws         = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	)
	for i := range msgs {
		m := &msgs[i]
		messageIDs[i], types[i], ts[i], receivedAt[i] = m.MessageID, m.Type, m.Timestamp, m.ReceivedAt
		names[i], anon[i], users[i] = nullable(m.Event+m.Name), nullable(m.AnonymousID), nullable(m.UserID)
		if !m.OriginalTimestamp.IsZero() {
			origTS[i] = &m.OriginalTimestamp
		}
		if !m.SentAt.IsZero() {
			sentAt[i] = &m.SentAt
		}
		var err error
		if props[i], err = jsonString(m.Properties); err != nil {
			return nil, err
		}
		if traits[i], err = jsonString(m.Traits); err != nil {
			return nil, err
		}
		if contexts[i], err = jsonString(m.Context); err != nil {
			return nil, err
		}
		raws[i] = string(m.Raw)
	}
	rows, err := tx.Query(ctx, `
		INSERT INTO events (workspace_id, key_id, source, message_id, type, name, anonymous_id, user_id,
		                    timestamp, original_timestamp, sent_at, received_at, properties, traits, context, raw)
		SELECT $1, $2, $3, x.* FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
		                                  $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[],
		                                  $13::jsonb[], $14::jsonb[], $15::jsonb[], $16::jsonb[]) AS x
		ON CONFLICT (workspace_id, message_id) DO NOTHING
		RETURNING message_id, id`,
		o.WorkspaceID, o.KeyID, o.Source, messageIDs, types, names, anon, users, ts, origTS, sentAt, receivedAt, props, traits, contexts, raws)
	if err != nil {
		return nil, fmt.Errorf("insert events: %w", err)
	}
	out := map[string]int64{}
	for rows.Next() {
		var mid string
		var id int64
		if err := rows.Scan(&mid, &id); err != nil {
			return nil, err
		}
		out[mid] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert events: %w", err)
	}
	return out, nil
}

// lockKeys takes a transaction advisory lock per identifier, in sorted order
// so that concurrent transactions cannot deadlock on them.
func lockKeys(ctx context.Context, tx pgx.Tx, workspaceID string, keys []identity.Key) error {
	locks := make([]int64, 0, len(keys))
	for _, k := range keys {
		h := fnv.New64a()
		h.Write([]byte(workspaceID))
		h.Write([]byte{0})
		h.Write([]byte(k.Type))
		h.Write([]byte{0})
		h.Write([]byte(k.Value))
		locks = append(locks, int64(h.Sum64()))
	}
	slices.Sort(locks)
	locks = slices.Compact(locks)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) WITH ORDINALITY AS x(k, n) ORDER BY n`, locks); err != nil {
		return fmt.Errorf("lock identities: %w", err)
	}
	return nil
}

func loadOwners(ctx context.Context, tx pgx.Tx, workspaceID string, keys []identity.Key) (map[identity.Key]string, error) {
	types, values := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		types[i], values[i] = k.Type, k.Value
	}
	rows, err := tx.Query(ctx, `
		SELECT i.type, i.value, i.profile_id::text FROM identities i
		JOIN unnest($2::text[], $3::text[]) AS x(t, v) ON i.type = x.t AND i.value = x.v
		WHERE i.workspace_id = $1`, workspaceID, types, values)
	if err != nil {
		return nil, fmt.Errorf("load identities: %w", err)
	}
	owners := map[identity.Key]string{}
	for rows.Next() {
		var k identity.Key
		var pid string
		if err := rows.Scan(&k.Type, &k.Value, &pid); err != nil {
			return nil, err
		}
		owners[k] = pid
	}
	return owners, rows.Err()
}

func loadProfiles(ctx context.Context, tx pgx.Tx, workspaceID, unique string, owners map[identity.Key]string) (map[string]*profileState, error) {
	var ids []string
	for _, id := range owners {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	out := map[string]*profileState{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `
		SELECT `+profile.Columns+`,
		       coalesce((SELECT value FROM identities i WHERE i.workspace_id = p.workspace_id AND i.profile_id = p.id AND i.type = $3 LIMIT 1), '')
		FROM profiles p WHERE p.workspace_id = $1 AND p.id = ANY($2::uuid[])
		ORDER BY p.id FOR UPDATE`, workspaceID, ids, unique)
	if err != nil {
		return nil, fmt.Errorf("load profiles: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		st := &profileState{}
		p, err := profile.Scan(rows, &st.uniqueValue)
		if err != nil {
			return nil, fmt.Errorf("load profiles: %w", err)
		}
		if p.MergedInto != "" {
			return nil, errStale
		}
		st.p = p
		out[p.ID] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load profiles: %w", err)
	}
	for _, id := range ids {
		if out[id] == nil {
			return nil, errStale // erased by a concurrent transaction
		}
	}
	return out, nil
}

func mergeInDB(ctx context.Context, tx pgx.Tx, workspaceID, survivor, merged, messageID string, keys []identity.Key) error {
	keysJSON, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	batch := &pgx.Batch{}
	batch.Queue(`UPDATE identities SET profile_id = $3 WHERE workspace_id = $1 AND profile_id = $2`, workspaceID, merged, survivor)
	batch.Queue(`UPDATE events SET profile_id = $3 WHERE workspace_id = $1 AND profile_id = $2`, workspaceID, merged, survivor)
	mergeID := uuid.NewString()
	batch.Queue(`INSERT INTO profile_merges (workspace_id, id, survivor_id, merged_id, message_id, identities) VALUES ($1, $2, $3, $4, $5, $6)`,
		workspaceID, mergeID, survivor, merged, messageID, keysJSON)
	// The internal "Profile Merged" event: on the survivor's timeline, for
	// journeys to reconcile the runs of the two profiles. Internal events
	// (source "parcours") do not count in computed traits.
	props, _ := json.Marshal(map[string]string{"merge_id": mergeID, "merged_profile_id": merged, "message_id": messageID})
	batch.Queue(`
		INSERT INTO events (workspace_id, key_id, source, message_id, type, name, profile_id, origin_profile_id, timestamp, received_at, properties, raw)
		VALUES ($1, '00000000-0000-0000-0000-000000000000', $2, $3, 'track', $4, $5, $5, now(), now(), $6, jsonb_build_object('type', 'track', 'event', $4::text, 'properties', $6::jsonb))`,
		workspaceID, InternalSource, "merge/"+mergeID, ProfileMergedEvent, survivor, props)
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("merge profile %s into %s: %w", merged, survivor, err)
	}
	return nil
}

func recordConflict(ctx context.Context, tx pgx.Tx, workspaceID, messageID string, profileIDs []string, unique string) error {
	_, err := tx.Exec(ctx, `INSERT INTO identity_conflicts (workspace_id, message_id, profile_ids, reason) VALUES ($1, $2, $3::uuid[], $4)`,
		workspaceID, messageID, profileIDs, "the record links profiles that hold different values of the unique identifier "+unique+"; they were not merged")
	if err != nil {
		return fmt.Errorf("record identity conflict: %w", err)
	}
	return nil
}

func saveProfiles(ctx context.Context, tx pgx.Tx, workspaceID string, profiles map[string]*profileState) error {
	ids := make([]string, 0, len(profiles))
	for id, st := range profiles {
		if st.touched {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	batch := &pgx.Batch{}
	now := time.Now().UTC()
	for _, id := range ids {
		st := profiles[id]
		if st.mergedInto != "" && st.created { // born and merged in this very call
			batch.Queue(`INSERT INTO profiles (workspace_id, id, created_at, updated_at, merged_into, merged_at) VALUES ($1, $2, $3, $3, $4, $3)`,
				workspaceID, id, now, st.mergedInto)
			continue
		}
		if st.mergedInto != "" {
			batch.Queue(`UPDATE profiles SET merged_into = $3, merged_at = $4, updated_at = $4 WHERE workspace_id = $1 AND id = $2`,
				workspaceID, id, st.mergedInto, now)
			continue
		}
		p := st.p
		p.DeriveState(st.uniqueValue != "")
		p.UpdatedAt = now
		traits, err := json.Marshal(p.Traits)
		if err != nil {
			return fmt.Errorf("encode traits of profile %s: %w", id, err)
		}
		sources, err := json.Marshal(p.TraitSource)
		if err != nil {
			return err
		}
		computed, err := json.Marshal(p.Computed)
		if err != nil {
			return err
		}
		batch.Queue(`
			INSERT INTO profiles (workspace_id, id, created_at, updated_at, state, traits, trait_sources, computed, first_seen_at, last_seen_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (workspace_id, id) DO UPDATE SET
				updated_at = excluded.updated_at, state = excluded.state, traits = excluded.traits,
				trait_sources = excluded.trait_sources, computed = excluded.computed,
				first_seen_at = excluded.first_seen_at, last_seen_at = excluded.last_seen_at`,
			workspaceID, id, p.CreatedAt, p.UpdatedAt, p.State, traits, sources, computed, p.FirstSeenAt, p.LastSeenAt)
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("save profiles: %w", err)
	}
	return nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode record: %w", err)
	}
	return string(b), nil
}

// RejectedRecord is a quarantined record.
type RejectedRecord struct {
	ID         int64      `json:"id"`
	Source     string     `json:"source"`
	ReceivedAt time.Time  `json:"received_at"`
	Field      string     `json:"field"`
	Reason     string     `json:"reason"`
	Raw        string     `json:"raw"`
	ReplayedAt *time.Time `json:"replayed_at,omitempty"`
}

// ListRejected returns quarantined records, newest first, with ids below
// before (0: from the newest).
func (s *Store) ListRejected(ctx context.Context, workspaceID string, before int64, limit int) ([]RejectedRecord, error) {
	if before <= 0 {
		before = 1 << 62
	}
	rows, err := s.pool.Query(ctx, `
		SELECT id, source, received_at, field, reason, raw, replayed_at FROM rejected_records
		WHERE workspace_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, workspaceID, before, limit)
	if err != nil {
		return nil, fmt.Errorf("list rejected records: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[RejectedRecord])
	if err != nil {
		return nil, fmt.Errorf("list rejected records: %w", err)
	}
	return out, nil
}

// normalizeTraits cleans identifier traits (email, phone, customer_number,
// ...) before they reach the profile; the raw record keeps what was sent.
func normalizeTraits(m *events.Message, s identity.Settings) {
	for _, traits := range []map[string]any{m.Traits, m.ContextTraits()} {
		for _, name := range s.Traits {
			if v, ok := traits[name]; ok && v != nil {
				if norm := identity.Normalize(name, fmt.Sprint(v)); norm != "" {
					traits[name] = norm
				}
			}
		}
	}
}

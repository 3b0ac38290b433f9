package segment

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Change says what happened to a profile, so that only the segments it can
// affect are evaluated again.
type Change struct {
	ProfileID string
	// Events are the names of the records the profile received.
	Events []string
	// Types are the types of those records (track, page, identify, ...).
	Types []string
	// Traits is true when its traits or identities changed.
	Traits bool
	// Gone is true when the profile was merged into another or erased: it
	// leaves every segment.
	Gone bool
	// All asks for every segment to be evaluated (e.g. after an unmerge).
	All bool
	// MergedInto is the surviving profile when Gone is due to a merge.
	MergedInto string
}

// Transitions counts what an evaluation did.
type Transitions struct {
	Profiles  int `json:"profiles"`
	Evaluated int `json:"evaluated"` // (profile, segment) pairs evaluated
	Entered   int `json:"entered"`
	Exited    int `json:"exited"`
	// Moves lists who entered or left which segment (real-time refreshes
	// only), for journeys triggered by segments.
	Moves []Move `json:"-"`
}

// Move is one profile entering or leaving one segment.
type Move struct {
	Segment   string // slug
	ProfileID string
	Entered   bool
	// EventID is the "Segment Entered"/"Segment Exited" record the move
	// put on the profile's timeline (RefreshForJourneys only): a journey
	// start is keyed on it, so a retried start never makes a second run.
	EventID int64
}

func (t *Transitions) add(o Transitions) {
	t.Profiles += o.Profiles
	t.Evaluated += o.Evaluated
	t.Entered += o.Entered
	t.Exited += o.Exited
	t.Moves = append(t.Moves, o.Moves...)
}

// relevant picks the segments a change can affect: those reading one of its
// events, its traits, computed traits (any record changes them), or a
// segment picked before (segments are ordered by in_segment dependencies).
func relevant(segs []*compiled, events, types []string, traits bool) []*compiled {
	picked := map[string]bool{}
	var out []*compiled
	for _, c := range segs {
		d := c.rule.Deps
		hit := d.Computed || (traits && d.Traits)
		for _, e := range d.Events {
			hit = hit || slices.Contains(events, e)
		}
		for _, ty := range d.Types {
			hit = hit || slices.Contains(types, ty)
		}
		for _, ref := range d.Segments {
			hit = hit || picked[ref]
		}
		if hit {
			picked[c.Slug] = true
			out = append(out, c)
		}
	}
	return out
}

// Refresh re-evaluates, at time now, the segments the changes can affect,
// for the changed profiles, and records every transition exactly once.
func (s *Store) Refresh(ctx context.Context, workspaceID string, changes []Change, now time.Time) (Transitions, error) {
	return s.refresh(ctx, workspaceID, changes, now, false)
}

// RefreshForJourneys is Refresh for records that may start journeys: the
// moves that trigger a live journey (segment_entered, segment_exited) are
// queued for it (journey_triggers) in the transaction that records them,
// and each move carries the id of its timeline record.
func (s *Store) RefreshForJourneys(ctx context.Context, workspaceID string, changes []Change, now time.Time) (Transitions, error) {
	return s.refresh(ctx, workspaceID, changes, now, true)
}

func (s *Store) refresh(ctx context.Context, workspaceID string, changes []Change, now time.Time, queueJourneys bool) (Transitions, error) {
	var total Transitions
	if len(changes) == 0 {
		return total, nil
	}
	segs, err := s.compiledSet(ctx, workspaceID)
	if err != nil || len(segs) == 0 {
		return total, err
	}
	var gone, live []string
	var names, types []string
	traits, all := false, false
	for _, c := range changes {
		all = all || c.All
		if c.Gone {
			gone = append(gone, c.ProfileID)
			continue
		}
		live = append(live, c.ProfileID)
		names = append(names, c.Events...)
		types = append(types, c.Types...)
		traits = traits || c.Traits
	}
	if len(gone) > 0 {
		t, err := s.exitAll(ctx, workspaceID, gone, now)
		if err != nil {
			return total, err
		}
		total.add(t)
	}
	picked := segs
	if !all {
		picked = relevant(segs, names, types, traits)
	}
	if len(picked) == 0 || len(live) == 0 {
		return total, nil
	}
	t, err := s.apply(ctx, workspaceID, live, picked, now, queueJourneys)
	total.add(t)
	return total, err
}

// RecomputeBatch evaluates segments for the next batch of live profiles
// after the profile id `after` (keyset order), and returns the id to resume
// from ("" when done). timeOnly restricts it to segments whose answer can
// change with time alone (the scheduled sweep); otherwise every segment.
// It is idempotent: running a batch twice records no transition twice.
func (s *Store) RecomputeBatch(ctx context.Context, workspaceID, after string, limit int, now time.Time, timeOnly bool) (string, Transitions, error) {
	segs, err := s.compiledSet(ctx, workspaceID)
	if err != nil || len(segs) == 0 {
		return "", Transitions{}, err
	}
	if timeOnly {
		picked := map[string]bool{}
		var keep []*compiled
		for _, c := range segs {
			hit := c.rule.Deps.TimeWindows
			for _, ref := range c.rule.Deps.Segments {
				hit = hit || picked[ref]
			}
			if hit {
				picked[c.Slug] = true
				keep = append(keep, c)
			}
		}
		if segs = keep; len(segs) == 0 {
			return "", Transitions{}, nil
		}
	}
	if after == "" {
		after = "00000000-0000-0000-0000-000000000000"
	}
	rows, err := s.pool.Query(ctx, `SELECT p.id::text FROM profiles p WHERE p.workspace_id = $1 AND p.merged_into IS NULL AND p.id > $2::uuid ORDER BY p.id LIMIT $3`,
		workspaceID, after, limit)
	if err != nil {
		return "", Transitions{}, fmt.Errorf("list profiles: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(ids) == 0 {
		return "", Transitions{}, err
	}
	t, err := s.apply(ctx, workspaceID, ids, segs, now, false)
	if err != nil {
		return "", t, err
	}
	next := ""
	if len(ids) == limit {
		next = ids[len(ids)-1]
	}
	return next, t, nil
}

// FinishRecompute records each segment's size after a full sweep.
func (s *Store) FinishRecompute(ctx context.Context, workspaceID string, now time.Time) error {
	_, err := s.pool.Exec(ctx, `
		WITH sizes AS (
			SELECT s.id, (SELECT count(*) FROM segment_memberships m WHERE m.workspace_id = s.workspace_id AND m.segment_id = s.id AND m.exited_at IS NULL) AS size
			FROM segments s WHERE s.workspace_id = $1),
		upd AS (UPDATE segments s SET size = sizes.size, last_computed_at = $2 FROM sizes WHERE s.workspace_id = $1 AND s.id = sizes.id)
		INSERT INTO segment_sizes (workspace_id, segment_id, at, size) SELECT $1, id, $2, size FROM sizes
		ON CONFLICT DO NOTHING`, workspaceID, now)
	if err != nil {
		return fmt.Errorf("record segment sizes: %w", err)
	}
	return nil
}

// transition is one membership change to record.
type transition struct {
	segmentID, profileID string
	entered              bool
}

// apply evaluates segs for ids in one transaction, under the profiles' row
// locks, so that concurrent evaluations of a profile never record the same
// transition twice. queueJourneys queues the moves that trigger a live
// journey (see record).
func (s *Store) apply(ctx context.Context, workspaceID string, ids []string, segs []*compiled, now time.Time, queueJourneys bool) (Transitions, error) {
	var t Transitions
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		t = Transitions{}
		slices.Sort(ids)
		if _, err := tx.Exec(ctx, `SELECT 1 FROM profiles WHERE workspace_id = $1 AND id = ANY($2::uuid[]) ORDER BY id FOR UPDATE`, workspaceID, ids); err != nil {
			return fmt.Errorf("lock profiles: %w", err)
		}
		names, maxWindow, allTime := needs(segs)
		data, err := loadData(ctx, tx, workspaceID, ids, names, maxWindow, allTime, now)
		if err != nil {
			return err
		}
		var changes []transition
		for _, id := range ids {
			d := data[id]
			if d == nil {
				continue // merged or erased meanwhile
			}
			t.Profiles++
			env := Bind(d, now) // once for all segments: in_segment reads d.Segments as it changes
			for _, c := range segs {
				t.Evaluated++
				in, err := c.rule.Run(env)
				if err != nil {
					in = false // e.g. comparing a trait the profile lacks
				}
				// An evaluation as of a time before the last recorded change
				// (a sweep that started earlier) must not undo it.
				if in != d.Segments[c.Slug] && !d.changedAt[c.Slug].After(now) {
					changes = append(changes, transition{segmentID: c.ID, profileID: id, entered: in})
					t.Moves = append(t.Moves, Move{Segment: c.Slug, ProfileID: id, Entered: in})
					d.Segments[c.Slug] = in
				}
			}
		}
		var err2 error
		var timeline map[moveKey]int64
		t.Entered, t.Exited, timeline, err2 = record(ctx, tx, workspaceID, changes, now, queueJourneys)
		for i, m := range t.Moves {
			t.Moves[i].EventID = timeline[moveKey{m.Segment, m.ProfileID, m.Entered}]
		}
		return err2
	})
	return t, err
}

// exitAll takes profiles out of every segment (merged away or erased).
func (s *Store) exitAll(ctx context.Context, workspaceID string, ids []string, now time.Time) (Transitions, error) {
	var t Transitions
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// One index probe per profile (see loadData).
		rows, err := tx.Query(ctx, `
			SELECT m.segment_id::text, x.pid::text FROM unnest($2::uuid[]) AS x(pid)
			JOIN LATERAL (SELECT m.segment_id FROM segment_memberships m
			              WHERE m.workspace_id = $1 AND m.profile_id = x.pid AND m.exited_at IS NULL OFFSET 0 FOR UPDATE) m ON true`, workspaceID, ids)
		if err != nil {
			return fmt.Errorf("load memberships: %w", err)
		}
		var changes []transition
		for rows.Next() {
			var tr transition
			if err := rows.Scan(&tr.segmentID, &tr.profileID); err != nil {
				rows.Close()
				return err
			}
			changes = append(changes, tr)
		}
		rows.Close()
		_, t.Exited, _, err = record(ctx, tx, workspaceID, changes, now, false)
		return err
	})
	return t, err
}

// moveKey finds a move's timeline record: segment slug, profile, entered.
type moveKey struct {
	slug, profileID string
	entered         bool
}

// record writes transitions: membership rows, one segment event each (on
// the timeline too, and queued for the segment's webhooks), and size
// deltas. The WHERE clauses make a repeated transition a no-op. With
// queueJourneys, the timeline records of moves that trigger a live journey
// are queued for it (journey_triggers), and their ids are returned.
func record(ctx context.Context, tx pgx.Tx, workspaceID string, changes []transition, now time.Time, queueJourneys bool) (entered, exited int, timeline map[moveKey]int64, err error) {
	if len(changes) == 0 {
		return 0, 0, nil, nil
	}
	var inSeg, inProf, outSeg, outProf, touched []string
	for _, c := range changes {
		if c.entered {
			inSeg, inProf = append(inSeg, c.segmentID), append(inProf, c.profileID)
		} else {
			outSeg, outProf = append(outSeg, c.segmentID), append(outProf, c.profileID)
		}
		touched = append(touched, c.segmentID)
	}
	// The advisory lock is shared with other recorders, exclusive with a
	// webhook being created (Webhooks.Create): a transition is queued for
	// every webhook that exists when it commits. The segments' rows (their
	// sizes change below) are locked in id order, so that two recorders
	// entering and leaving the same segments the other way round wait for
	// each other instead of deadlocking.
	locks := &pgx.Batch{}
	locks.Queue(`SELECT pg_advisory_xact_lock_shared($1, hashtext($2))`, webhookLockClass, workspaceID)
	locks.Queue(`SELECT 1 FROM segments WHERE workspace_id = $1 AND id = ANY($2::uuid[]) ORDER BY id FOR NO KEY UPDATE`, workspaceID, touched)
	if err := tx.SendBatch(ctx, locks).Close(); err != nil {
		return 0, 0, nil, fmt.Errorf("lock segment transitions: %w", err)
	}
	timeline = map[moveKey]int64{}
	var ids []int64
	var slugs, profiles []string
	err = tx.QueryRow(ctx, `
		WITH ins AS (
			INSERT INTO segment_memberships AS m (workspace_id, segment_id, profile_id, entered_at)
			SELECT $1, s::uuid, p::uuid, $4 FROM unnest($2::text[], $3::text[]) AS x(s, p)
			ON CONFLICT (workspace_id, segment_id, profile_id) DO UPDATE SET entered_at = excluded.entered_at, exited_at = NULL
			WHERE m.exited_at IS NOT NULL
			RETURNING segment_id, profile_id),
		ev AS (INSERT INTO segment_events (workspace_id, segment_id, profile_id, kind, at) SELECT $1, segment_id, profile_id, 'entered', $4 FROM ins RETURNING id, segment_id, profile_id),
		tl AS (`+timelineInsert("Segment Entered")+`),
		ob AS (`+outboxInsert(KindEntered)+`),
		jt AS (`+journeyTriggerInsert("segment_entered")+`),
		sz AS (UPDATE segments s SET size = s.size + x.n FROM (SELECT segment_id, count(*) n FROM ins GROUP BY segment_id) x
		       WHERE s.workspace_id = $1 AND s.id = x.segment_id)
		SELECT (SELECT count(*) FROM ins), `+timelineIDs, workspaceID, inSeg, inProf, now, queueJourneys).Scan(&entered, &ids, &slugs, &profiles)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("record segment entries: %w", err)
	}
	for i := range ids {
		timeline[moveKey{slugs[i], profiles[i], true}] = ids[i]
	}
	err = tx.QueryRow(ctx, `
		WITH outs AS (
			-- Each row is found by its key (workspace, segment, profile), then
			-- updated by its ctid alone: with any other condition here, or
			-- with the pairs joined to the table, the planner may read every
			-- membership of the workspace for each batch while a first
			-- fill's statistics still describe an empty table. The caller
			-- holds the profiles' locks, so no one updates these rows
			-- between the lookup and the update.
			UPDATE segment_memberships m SET exited_at = $4
			WHERE m.ctid = ANY (ARRAY(
				SELECT k.ctid FROM unnest($2::text[], $3::text[]) AS x(s, p)
				JOIN LATERAL (SELECT m2.ctid FROM segment_memberships m2
				              WHERE m2.workspace_id = $1 AND m2.segment_id = x.s::uuid AND m2.profile_id = x.p::uuid AND m2.exited_at IS NULL
				              OFFSET 0) k ON true))
			RETURNING m.segment_id, m.profile_id),
		ev AS (INSERT INTO segment_events (workspace_id, segment_id, profile_id, kind, at) SELECT $1, segment_id, profile_id, 'exited', $4 FROM outs RETURNING id, segment_id, profile_id),
		tl AS (`+timelineInsert("Segment Exited")+`),
		ob AS (`+outboxInsert(KindExited)+`),
		jt AS (`+journeyTriggerInsert("segment_exited")+`),
		sz AS (UPDATE segments s SET size = s.size - x.n FROM (SELECT segment_id, count(*) n FROM outs GROUP BY segment_id) x
		       WHERE s.workspace_id = $1 AND s.id = x.segment_id)
		SELECT (SELECT count(*) FROM outs), `+timelineIDs, workspaceID, outSeg, outProf, now, queueJourneys).Scan(&exited, &ids, &slugs, &profiles)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("record segment exits: %w", err)
	}
	for i := range ids {
		timeline[moveKey{slugs[i], profiles[i], false}] = ids[i]
	}
	return entered, exited, timeline, nil
}

// timelineInsert records transitions (the ev CTE) as internal events on the
// profiles' timelines, where journeys and people see them. They come from
// Parcours itself (source "parcours") and do not count in computed traits.
func timelineInsert(name string) string {
	return `INSERT INTO events (workspace_id, key_id, source, message_id, type, name, profile_id, origin_profile_id, timestamp, received_at, properties, raw)
		SELECT $1, '00000000-0000-0000-0000-000000000000', 'parcours', 'segment/' || ev.id, 'track', '` + name + `', ev.profile_id, ev.profile_id, $4, now(),
		       jsonb_build_object('segment', s.slug, 'segment_name', s.name), jsonb_build_object('type', 'track', 'event', '` + name + `', 'properties', jsonb_build_object('segment', s.slug))
		FROM ev JOIN segments s ON s.workspace_id = $1 AND s.id = ev.segment_id
		ON CONFLICT (workspace_id, message_id) DO NOTHING
		RETURNING id, profile_id, properties ->> 'segment' AS slug`
}

// outboxInsert queues transitions (the ev CTE) of kind for the segment's
// webhooks that want that kind, in the transaction that records them; the
// dispatcher posts them (segment_webhook_outbox).
func outboxInsert(kind string) string {
	return `INSERT INTO segment_webhook_outbox (workspace_id, webhook_id, event_id)
		SELECT $1, w.id, ev.id FROM ev JOIN segment_webhooks w ON w.workspace_id = $1 AND w.segment_id = ev.segment_id
		WHERE '` + kind + `' = ANY (w.kinds)`
}

// PreviewResult is what a rule would select now.
type PreviewResult struct {
	Count   int      `json:"count"`
	Scanned int      `json:"scanned"`
	Sample  []string `json:"sample_profile_ids"`
}

// Preview evaluates a rule over every live profile of the workspace at time
// now, without recording anything.
func (s *Store) Preview(ctx context.Context, workspaceID, src string, now time.Time, sample int) (PreviewResult, error) {
	var res PreviewResult
	r, err := s.check(ctx, workspaceID, "", src)
	if err != nil {
		return res, err
	}
	c := []*compiled{{rule: r}}
	names, maxWindow, allTime := needs(c)
	after := "00000000-0000-0000-0000-000000000000"
	const chunk = 2000
	for {
		rows, err := s.pool.Query(ctx, `SELECT p.id::text FROM profiles p WHERE p.workspace_id = $1 AND p.merged_into IS NULL AND p.id > $2::uuid ORDER BY p.id LIMIT $3`,
			workspaceID, after, chunk)
		if err != nil {
			return res, fmt.Errorf("list profiles: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return res, err
		}
		if len(ids) == 0 {
			return res, nil
		}
		data, err := loadData(ctx, s.pool, workspaceID, ids, names, maxWindow, allTime, now)
		if err != nil {
			return res, err
		}
		for _, id := range ids {
			// Checked for every profile: a viewer's preview gives up as soon
			// as its request does, not after a chunk of 2,000 evaluations.
			if err := ctx.Err(); err != nil {
				return res, fmt.Errorf("preview rule: %w", err)
			}
			d := data[id]
			if d == nil {
				continue
			}
			res.Scanned++
			if in, err := r.Evaluate(d, now); err == nil && in {
				res.Count++
				if len(res.Sample) < sample {
					res.Sample = append(res.Sample, id)
				}
			}
		}
		if len(ids) < chunk {
			return res, nil
		}
		after = ids[len(ids)-1]
	}
}

// EvaluateRule answers a rule (segment syntax) for one profile at time now;
// journeys use it for entry filters and branch conditions. A profile that no
// longer exists answers false.
func (s *Store) EvaluateRule(ctx context.Context, workspaceID, profileID, src string, now time.Time) (bool, error) {
	r, err := Compile(src)
	if err != nil {
		return false, err
	}
	names, maxWindow, allTime := needs([]*compiled{{rule: r}})
	data, err := loadData(ctx, s.pool, workspaceID, []string{profileID}, names, maxWindow, allTime, now)
	if err != nil {
		return false, err
	}
	d := data[profileID]
	if d == nil {
		return false, nil
	}
	in, err := r.Evaluate(d, now)
	if err != nil {
		return false, nil // e.g. comparing a trait the profile lacks
	}
	return in, nil
}

// EvaluateRuleWith answers a profile condition as EvaluateRule does, with
// traits set over the stored ones and extra events added (those at or
// before now count): the journey simulator's view of a profile. An empty
// profileID evaluates a profile that exists only in traits and extra.
func (s *Store) EvaluateRuleWith(ctx context.Context, workspaceID, profileID, src string, now time.Time, traits map[string]any, extra []Event) (bool, error) {
	r, err := Compile(src)
	if err != nil {
		return false, err
	}
	d := &Data{Profile: Profile{State: "known", Traits: map[string]any{}}, Segments: map[string]bool{}}
	if profileID != "" {
		names, maxWindow, allTime := needs([]*compiled{{rule: r}})
		data, err := loadData(ctx, s.pool, workspaceID, []string{profileID}, names, maxWindow, allTime, now)
		if err != nil {
			return false, err
		}
		if data[profileID] != nil {
			d = data[profileID]
		}
	}
	if len(traits) > 0 {
		merged := make(map[string]any, len(d.Profile.Traits)+len(traits))
		for k, v := range d.Profile.Traits {
			merged[k] = v
		}
		for k, v := range traits {
			merged[k] = v
		}
		d.Profile.Traits = merged
	}
	for _, e := range extra {
		if !e.At.After(now) {
			d.Events = append(d.Events, e)
		}
	}
	in, err := r.Evaluate(d, now)
	if err != nil {
		return false, nil // e.g. comparing a trait the profile lacks
	}
	return in, nil
}

package broadcast

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store keeps broadcasts, their occurrences and audience snapshots.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a Store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

const cols = `id::text, name, segment_id::text, segment_slug, template_slug, channel, class, send_at, coalesce(cron, ''), coalesce(timezone, ''),
	status, created_at, updated_at, cancelled_at`

func scan(row pgx.Row) (Broadcast, error) {
	var b Broadcast
	var at *time.Time
	var cron, tz string
	err := row.Scan(&b.ID, &b.Name, &b.SegmentID, &b.Segment, &b.Template, &b.Channel, &b.Class, &at, &cron, &tz,
		&b.Status, &b.CreatedAt, &b.UpdatedAt, &b.CancelledAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, ErrNotFound
	}
	if at != nil || cron != "" {
		b.Schedule = &Schedule{At: at, Cron: cron, Timezone: tz}
	}
	b.Occurrences = []Occurrence{}
	return b, err
}

// Create validates in and saves the broadcast: the segment and the
// template must exist, the template must be for the channel, and the
// channel must be configured. now is the time schedule.at must follow.
func (s *Store) Create(ctx context.Context, workspaceID string, in Input, now time.Time) (Broadcast, error) {
	if err := in.validate(now); err != nil {
		return Broadcast{}, err
	}
	var segmentID string
	err := s.pool.QueryRow(ctx, `SELECT id::text FROM segments WHERE workspace_id = $1 AND slug = $2`, workspaceID, in.Segment).Scan(&segmentID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Broadcast{}, &FieldError{"segment", fmt.Sprintf("no segment %q in this workspace", in.Segment)}
	}
	if err != nil {
		return Broadcast{}, fmt.Errorf("find segment %s: %w", in.Segment, err)
	}
	var channel string
	err = s.pool.QueryRow(ctx, `SELECT channel FROM templates WHERE workspace_id = $1 AND slug = $2`, workspaceID, in.Template).Scan(&channel)
	if errors.Is(err, pgx.ErrNoRows) {
		return Broadcast{}, &FieldError{"template", fmt.Sprintf("no template %q in this workspace", in.Template)}
	}
	if err != nil {
		return Broadcast{}, fmt.Errorf("find template %s: %w", in.Template, err)
	}
	if channel != in.Channel {
		return Broadcast{}, &FieldError{"template", fmt.Sprintf("template %q is for %s, not %s", in.Template, channel, in.Channel)}
	}
	var configured bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM channel_settings WHERE workspace_id = $1 AND channel = $2)`,
		workspaceID, in.Channel).Scan(&configured); err != nil {
		return Broadcast{}, fmt.Errorf("check channel %s: %w", in.Channel, err)
	}
	if !configured {
		return Broadcast{}, &FieldError{"channel", fmt.Sprintf("the %s channel is not configured (PUT /v1/channels/%s)", in.Channel, in.Channel)}
	}
	status := StatusRunning
	var at *time.Time
	var cron, tz *string
	switch {
	case in.Schedule.Recurring():
		status, cron, tz = StatusActive, &in.Schedule.Cron, &in.Schedule.Timezone
	case in.Schedule != nil:
		status, at = StatusScheduled, in.Schedule.At
	}
	b, err := scan(s.pool.QueryRow(ctx, `
		INSERT INTO broadcasts (workspace_id, name, segment_id, segment_slug, template_slug, channel, class, send_at, cron, timezone, status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING `+cols,
		workspaceID, in.Name, segmentID, in.Segment, in.Template, in.Channel, in.Class, at, cron, tz, status))
	if err != nil {
		return Broadcast{}, fmt.Errorf("create broadcast: %w", err)
	}
	return b, nil
}

// Delete removes a broadcast that could not be scheduled.
func (s *Store) Delete(ctx context.Context, workspaceID, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM broadcasts WHERE workspace_id = $1 AND id = $2`, workspaceID, id); err != nil {
		return fmt.Errorf("delete broadcast %s: %w", id, err)
	}
	return nil
}

// Load loads a broadcast without its occurrences.
func (s *Store) Load(ctx context.Context, workspaceID, id string) (Broadcast, error) {
	b, err := scan(s.pool.QueryRow(ctx, `SELECT `+cols+` FROM broadcasts WHERE workspace_id = $1 AND id = $2`, workspaceID, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return b, fmt.Errorf("load broadcast %s: %w", id, err)
	}
	return b, err
}

// Get loads a broadcast with its occurrences (newest first) and their
// counts, read from the recipients as they are now.
func (s *Store) Get(ctx context.Context, workspaceID, id string) (Broadcast, error) {
	b, err := s.Load(ctx, workspaceID, id)
	if err != nil {
		return b, err
	}
	if b.Occurrences, err = s.occurrences(ctx, workspaceID, id); err != nil {
		return b, err
	}
	return b, nil
}

func (s *Store) occurrences(ctx context.Context, workspaceID, id string) ([]Occurrence, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT occurrence, status, reason, workflow_id, run_id, as_of, started_at, finished_at
		FROM broadcast_occurrences WHERE workspace_id = $1 AND broadcast_id = $2 ORDER BY started_at DESC, occurrence DESC LIMIT 100`, workspaceID, id)
	if err != nil {
		return nil, fmt.Errorf("load occurrences of %s: %w", id, err)
	}
	occ, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Occurrence, error) {
		var o Occurrence
		err := r.Scan(&o.Name, &o.Status, &o.Reason, &o.WorkflowID, &o.RunID, &o.AsOf, &o.StartedAt, &o.FinishedAt)
		o.Counts = Counts{SkippedBy: map[string]int{}, FailedBy: map[string]int{}}
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("load occurrences of %s: %w", id, err)
	}
	if len(occ) == 0 {
		return []Occurrence{}, nil
	}
	byName := make(map[string]*Occurrence, len(occ))
	names := make([]string, len(occ))
	for i := range occ {
		byName[occ[i].Name] = &occ[i]
		names[i] = occ[i].Name
	}
	rows, err = s.pool.Query(ctx, `
		SELECT occurrence, status, reason, count(*) FROM broadcast_recipients
		WHERE workspace_id = $1 AND broadcast_id = $2 AND occurrence = ANY($3::text[]) GROUP BY 1, 2, 3`, workspaceID, id, names)
	if err != nil {
		return nil, fmt.Errorf("count recipients of %s: %w", id, err)
	}
	var name, status, reason string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&name, &status, &reason, &n}, func() error {
		byName[name].Counts.add(status, reason, n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count recipients of %s: %w", id, err)
	}
	return occ, nil
}

// List returns the workspace's broadcasts, newest first, without counts.
func (s *Store) List(ctx context.Context, workspaceID string, limit int) ([]Broadcast, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+cols+` FROM broadcasts WHERE workspace_id = $1 ORDER BY created_at DESC, id LIMIT $2`, workspaceID, limit)
	if err != nil {
		return nil, fmt.Errorf("list broadcasts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Broadcast, error) { return scan(r) })
	if err != nil {
		return nil, fmt.Errorf("list broadcasts: %w", err)
	}
	if out == nil {
		out = []Broadcast{}
	}
	return out, nil
}

// Cancel stops a broadcast: no occurrence starts after this, and running
// ones stop before their next batch. It returns the broadcast and the
// workflow ids of occurrences still running. Cancelling twice is fine;
// cancelling a broadcast that finished is ErrFinished.
func (s *Store) Cancel(ctx context.Context, workspaceID, id string) (Broadcast, []string, error) {
	b, err := scan(s.pool.QueryRow(ctx, `
		UPDATE broadcasts SET status = 'cancelled', cancelled_at = coalesce(cancelled_at, now()), updated_at = now()
		WHERE workspace_id = $1 AND id = $2 AND status IN ('scheduled', 'running', 'active', 'cancelled') RETURNING `+cols, workspaceID, id))
	if errors.Is(err, ErrNotFound) {
		if _, gerr := s.Load(ctx, workspaceID, id); gerr != nil {
			return b, nil, gerr
		}
		return b, nil, ErrFinished
	}
	if err != nil {
		return b, nil, fmt.Errorf("cancel broadcast %s: %w", id, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT workflow_id FROM broadcast_occurrences WHERE workspace_id = $1 AND broadcast_id = $2 AND status = 'running'`, workspaceID, id)
	if err != nil {
		return b, nil, fmt.Errorf("running occurrences of %s: %w", id, err)
	}
	running, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return b, nil, fmt.Errorf("running occurrences of %s: %w", id, err)
	}
	return b, running, nil
}

// StartResult says whether an occurrence goes ahead, and from where.
type StartResult struct {
	// Proceed is false when the broadcast was cancelled or deleted, or the
	// occurrence already finished (a duplicate start).
	Proceed bool
	Reason  string
	// AsOf is the audience time, kept from the first start.
	AsOf time.Time
}

// Start records an occurrence as running (idempotent: a retry or a resumed
// run gets the same as-of time back).
func (s *Store) Start(ctx context.Context, workspaceID, id, occurrence, workflowID, runID string, asOf time.Time) (StartResult, error) {
	var out StartResult
	asOf = asOf.Truncate(time.Microsecond) // what PostgreSQL keeps
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM broadcasts WHERE workspace_id = $1 AND id = $2 FOR UPDATE`, workspaceID, id).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			out.Reason = "the broadcast no longer exists"
			return nil
		}
		if err != nil {
			return err
		}
		var occStatus string
		err = tx.QueryRow(ctx, `SELECT status, as_of FROM broadcast_occurrences WHERE workspace_id = $1 AND broadcast_id = $2 AND occurrence = $3`,
			workspaceID, id, occurrence).Scan(&occStatus, &out.AsOf)
		switch {
		case err == nil && occStatus != OccurrenceRunning:
			out.Reason = "this occurrence already ran (" + occStatus + ")"
			return nil
		case err == nil:
			out.Proceed = status != StatusCancelled
			if !out.Proceed {
				out.Reason = "cancelled"
			}
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if status == StatusCancelled || status == StatusSent || status == StatusFailed {
			out.Reason = "the broadcast is " + status
			return nil
		}
		out.Proceed, out.AsOf = true, asOf
		if _, err := tx.Exec(ctx, `
			INSERT INTO broadcast_occurrences (workspace_id, broadcast_id, occurrence, workflow_id, run_id, status, as_of)
			VALUES ($1, $2, $3, $4, $5, 'running', $6)`, workspaceID, id, occurrence, workflowID, runID, asOf); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE broadcasts SET status = 'running', updated_at = now() WHERE workspace_id = $1 AND id = $2 AND status = 'scheduled'`, workspaceID, id)
		return err
	})
	if err != nil {
		return out, fmt.Errorf("start occurrence %s of broadcast %s: %w", occurrence, id, err)
	}
	return out, nil
}

// Snapshot copies the next page of the segment's members as of asOf into
// the occurrence's recipients, numbered from seq: at most limit profiles
// after the profile id after. It returns the cursor of the next page ("" at
// the end) and how many it added. Running it again for the same page
// answers the same without copying twice.
func (s *Store) Snapshot(ctx context.Context, workspaceID, id, occurrence, after string, seq, limit int, asOf time.Time) (next string, added int, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var segmentID string
		var exists bool
		err := tx.QueryRow(ctx, `SELECT b.segment_id::text, EXISTS (SELECT 1 FROM segments s WHERE s.workspace_id = b.workspace_id AND s.id = b.segment_id)
			FROM broadcasts b WHERE b.workspace_id = $1 AND b.id = $2`, workspaceID, id).Scan(&segmentID, &exists)
		if err != nil {
			return err
		}
		if !exists {
			return ErrSegmentGone
		}
		// A retried page: what the first attempt copied stands.
		var last *string
		if err := tx.QueryRow(ctx, `
			SELECT count(*), max(profile_id::text) FROM broadcast_recipients
			WHERE workspace_id = $1 AND broadcast_id = $2 AND occurrence = $3 AND seq >= $4 AND seq < $4 + $5`,
			workspaceID, id, occurrence, seq, limit).Scan(&added, &last); err != nil {
			return err
		}
		if added == 0 {
			if after == "" {
				after = "00000000-0000-0000-0000-000000000000"
			}
			err = tx.QueryRow(ctx, `
				WITH page AS (
					SELECT profile_id FROM segment_memberships
					WHERE workspace_id = $1 AND segment_id = $2 AND profile_id > $3::uuid
					  AND entered_at <= $4 AND (exited_at IS NULL OR exited_at > $4)
					ORDER BY profile_id LIMIT $5),
				ins AS (
					INSERT INTO broadcast_recipients (workspace_id, broadcast_id, occurrence, seq, profile_id)
					SELECT $1, $6, $7, $8 + row_number() OVER (ORDER BY profile_id) - 1, profile_id FROM page
					RETURNING profile_id)
				SELECT count(*), max(profile_id::text) FROM ins`,
				workspaceID, segmentID, after, asOf, limit, id, occurrence, seq).Scan(&added, &last)
			if err != nil {
				return err
			}
		}
		if added == limit && last != nil {
			next = *last
		}
		return nil
	})
	if err != nil {
		return "", 0, fmt.Errorf("snapshot audience of broadcast %s: %w", id, err)
	}
	return next, added, nil
}

// lookups runs fn in a transaction planned for a batch's thousand index
// lookups: with the default random_page_cost (4, for disks that seek)
// PostgreSQL scans the whole audience once it holds some 100,000 rows, and
// every batch gets slower than the one before; the rows are cached.
func lookups(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL random_page_cost = 1.1`); err != nil {
			return err
		}
		return fn(tx)
	})
}

// Recipient is one entry of the audience.
type Recipient struct {
	Seq       int
	ProfileID string // "" once the person is erased
}

// Batch loads recipients seq in [from, to).
func (s *Store) Batch(ctx context.Context, workspaceID, id, occurrence string, from, to int) ([]Recipient, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT seq, coalesce(profile_id::text, '') FROM broadcast_recipients
		WHERE workspace_id = $1 AND broadcast_id = $2 AND occurrence = $3 AND seq >= $4 AND seq < $5 ORDER BY seq`,
		workspaceID, id, occurrence, from, to)
	if err != nil {
		return nil, fmt.Errorf("load recipients of broadcast %s: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Recipient])
	if err != nil {
		return nil, fmt.Errorf("load recipients of broadcast %s: %w", id, err)
	}
	return out, nil
}

// Outcome is what became of a recipient.
type Outcome struct {
	Seq        int
	Status     string // pending, sent, skipped, failed or unknown
	Reason     string
	DeliveryID string
}

// Record saves recipients' outcomes.
func (s *Store) Record(ctx context.Context, workspaceID, id, occurrence string, outs []Outcome) error {
	if len(outs) == 0 {
		return nil
	}
	seqs := make([]int32, len(outs))
	statuses := make([]string, len(outs))
	reasons := make([]string, len(outs))
	deliveries := make([]*string, len(outs))
	for i, o := range outs {
		seqs[i], statuses[i], reasons[i] = int32(o.Seq), o.Status, o.Reason
		if o.DeliveryID != "" {
			deliveries[i] = &outs[i].DeliveryID
		}
	}
	err := lookups(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			UPDATE broadcast_recipients r SET status = x.s, reason = x.r, delivery_id = coalesce(x.d, r.delivery_id)
			FROM unnest($4::int[], $5::text[], $6::text[], $7::uuid[]) AS x(q, s, r, d)
			WHERE r.workspace_id = $1 AND r.broadcast_id = $2 AND r.occurrence = $3 AND r.seq = x.q`,
			workspaceID, id, occurrence, seqs, statuses, reasons, deliveries)
		return err
	})
	if err != nil {
		return fmt.Errorf("record outcomes of broadcast %s: %w", id, err)
	}
	return nil
}

// ClaimAddresses gives each address of the occurrence to the first
// recipient that claims it; ok[i] says whether profileIDs[i] owns its
// address (answering the same on a retry).
func (s *Store) ClaimAddresses(ctx context.Context, workspaceID, id, occurrence string, profileIDs []string, hashes [][]byte) ([]bool, error) {
	// One row per address in the statement (ON CONFLICT DO UPDATE may not
	// touch a row twice): the first claimant in the batch goes in.
	var hs [][]byte
	var ps []string
	seen := map[string]bool{}
	for i, h := range hashes {
		if !seen[string(h)] {
			seen[string(h)] = true
			hs, ps = append(hs, h), append(ps, profileIDs[i])
		}
	}
	owner := make(map[string]string, len(hs))
	err := lookups(ctx, s.pool, func(tx pgx.Tx) error {
		// The no-op update returns the owner of an address claimed before:
		// index lookups only, whatever the audience's size.
		rows, err := tx.Query(ctx, `
			INSERT INTO broadcast_addresses (workspace_id, broadcast_id, occurrence, address_hash, profile_id)
			SELECT $1, $2, $3, h, p FROM unnest($4::bytea[], $5::uuid[]) AS x(h, p)
			ON CONFLICT (workspace_id, broadcast_id, occurrence, address_hash) DO UPDATE SET profile_id = broadcast_addresses.profile_id
			RETURNING address_hash, profile_id::text`,
			workspaceID, id, occurrence, hs, ps)
		if err != nil {
			return err
		}
		var h []byte
		var p string
		_, err = pgx.ForEachRow(rows, []any{&h, &p}, func() error { owner[string(h)] = p; return nil })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim addresses for broadcast %s: %w", id, err)
	}
	ok := make([]bool, len(profileIDs))
	for i := range profileIDs {
		ok[i] = owner[string(hashes[i])] == profileIDs[i]
	}
	return ok, nil
}

// Status reads a broadcast's status (cancelled stops the batches).
func (s *Store) Status(ctx context.Context, workspaceID, id string) (string, error) {
	var status string
	err := s.pool.QueryRow(ctx, `SELECT status FROM broadcasts WHERE workspace_id = $1 AND id = $2`, workspaceID, id).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("load status of broadcast %s: %w", id, err)
	}
	return status, nil
}

// Finish records how an occurrence ended; a one-off broadcast takes the
// occurrence's status (unless it was cancelled meanwhile).
func (s *Store) Finish(ctx context.Context, workspaceID, id, occurrence, status, reason string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			UPDATE broadcast_occurrences SET status = $4, reason = $5, finished_at = coalesce(finished_at, now())
			WHERE workspace_id = $1 AND broadcast_id = $2 AND occurrence = $3 AND status = 'running'`,
			workspaceID, id, occurrence, status, reason); err != nil {
			return fmt.Errorf("finish occurrence %s of broadcast %s: %w", occurrence, id, err)
		}
		if occurrence != Once {
			return nil
		}
		if _, err := tx.Exec(ctx, `
			UPDATE broadcasts SET status = $3, updated_at = now() WHERE workspace_id = $1 AND id = $2 AND status IN ('scheduled', 'running')`,
			workspaceID, id, status); err != nil {
			return fmt.Errorf("finish broadcast %s: %w", id, err)
		}
		return nil
	})
}

// Package retention deletes what Parcours keeps for a while only, so that
// personal data it holds for no one's use does not stay for ever:
//
//   - records refused at ingestion and bad import rows, in the quarantine
//     (rejected_records), replayed or not, after
//     PARCOURS_QUARANTINE_RETENTION (default 30 days); the reasons of the
//     bad rows that imports list (imports.bad_rows, which quote the cell at
//     fault) go after the same time, their line and column stay;
//   - the SendGrid and Twilio events of deliveries (delivery_events) after
//     PARCOURS_PROVIDER_EVENT_RETENTION (default 90 days); the deliveries
//     keep their first delivered, opened, clicked ... times, which reports
//     read;
//   - segment webhooks' "erased" notices that no webhook waits for any more
//     (segment.QueueErasure).
//
// The worker process runs a Sweeper (parcours worker, parcours dev). Each
// replica may: the deletes are idempotent, and made in batches so that no
// transaction holds many rows.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Policy says how long each kind of data is kept; 0 keeps it for ever.
type Policy struct {
	// Quarantine is PARCOURS_QUARANTINE_RETENTION: rejected records, and
	// the reasons of imports' bad rows, by the time they were received
	// (imports: finished).
	Quarantine time.Duration
	// ProviderEvents is PARCOURS_PROVIDER_EVENT_RETENTION: delivery events,
	// by the time they were received.
	ProviderEvents time.Duration
}

// ExpiredBadRow replaces the reason of an import's bad row past the
// quarantine's retention.
const ExpiredBadRow = "removed: past the quarantine retention"

// Sweeper deletes what its Policy no longer keeps.
type Sweeper struct {
	Pool   *pgxpool.Pool
	Policy Policy
	Logger *slog.Logger
	// Every is how often Run sweeps. Default 1h: retention is counted in
	// days, and a sweep that finds little is a few index lookups.
	Every time.Duration
	// BatchSize is the most rows one delete takes. Default 5,000: a
	// transaction of a few hundred milliseconds at most.
	BatchSize int
}

// Swept counts what a sweep removed.
type Swept struct {
	Quarantined    int // rejected records
	BadRows        int // imports whose bad rows lost their reasons
	ProviderEvents int // delivery events
	Notices        int // erased notices left behind
}

// Run sweeps at once, then every Every, until ctx is done.
func (s *Sweeper) Run(ctx context.Context) {
	every := s.Every
	if every <= 0 {
		every = time.Hour
	}
	for {
		got, err := s.SweepOnce(ctx, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			s.logger().Warn("retention sweep failed; trying again later", "err", err)
		case got != Swept{}:
			s.logger().Info("retention sweep", "quarantined_records", got.Quarantined, "imports_bad_rows", got.BadRows,
				"provider_events", got.ProviderEvents, "erased_notices", got.Notices)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

func (s *Sweeper) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// SweepOnce deletes what is older than the policy allows at now.
func (s *Sweeper) SweepOnce(ctx context.Context, now time.Time) (Swept, error) {
	var out Swept
	var err error
	if s.Policy.Quarantine > 0 {
		cutoff := now.Add(-s.Policy.Quarantine)
		if out.Quarantined, err = s.deleteBatches(ctx, `
			DELETE FROM rejected_records r USING (
				SELECT workspace_id, id FROM rejected_records WHERE received_at < $1 LIMIT $2) old
			WHERE r.workspace_id = old.workspace_id AND r.id = old.id`, cutoff); err != nil {
			return out, fmt.Errorf("delete quarantined records: %w", err)
		}
		tag, err := s.Pool.Exec(ctx, `
			UPDATE imports i SET bad_rows = (
				SELECT jsonb_agg(CASE WHEN b ->> 'reason' LIKE 'removed: %' THEN b ELSE b || jsonb_build_object('reason', $2::text) END ORDER BY n)
				FROM jsonb_array_elements(i.bad_rows) WITH ORDINALITY AS e(b, n))
			WHERE i.finished_at < $1 AND i.bad_rows <> '[]'
			  AND EXISTS (SELECT 1 FROM jsonb_array_elements(i.bad_rows) AS e(b) WHERE b ->> 'reason' NOT LIKE 'removed: %')`,
			cutoff, ExpiredBadRow)
		if err != nil {
			return out, fmt.Errorf("clear imports' bad rows: %w", err)
		}
		out.BadRows = int(tag.RowsAffected())
	}
	if s.Policy.ProviderEvents > 0 {
		if out.ProviderEvents, err = s.deleteBatches(ctx, `
			DELETE FROM delivery_events d USING (
				SELECT workspace_id, id FROM delivery_events WHERE received_at < $1 LIMIT $2) old
			WHERE d.workspace_id = old.workspace_id AND d.id = old.id`, now.Add(-s.Policy.ProviderEvents)); err != nil {
			return out, fmt.Errorf("delete provider events: %w", err)
		}
	}
	// A notice's outbox rows are written with it, in one transaction:
	// one without any is one no webhook will post.
	tag, err := s.Pool.Exec(ctx, `
		DELETE FROM segment_events e WHERE e.kind = 'erased'
		  AND NOT EXISTS (SELECT 1 FROM segment_webhook_outbox o WHERE o.workspace_id = e.workspace_id AND o.event_id = e.id)`)
	if err != nil {
		return out, fmt.Errorf("delete erased notices: %w", err)
	}
	out.Notices = int(tag.RowsAffected())
	return out, nil
}

// deleteBatches runs a delete of at most BatchSize rows ($2) older than
// cutoff ($1) until one deletes fewer, and returns how many went.
func (s *Sweeper) deleteBatches(ctx context.Context, sql string, cutoff time.Time) (int, error) {
	size := s.BatchSize
	if size <= 0 {
		size = 5000
	}
	total := 0
	for {
		tag, err := s.Pool.Exec(ctx, sql, cutoff, size)
		if err != nil {
			return total, err
		}
		total += int(tag.RowsAffected())
		if tag.RowsAffected() < int64(size) {
			return total, nil
		}
	}
}

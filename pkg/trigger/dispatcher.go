package trigger

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/parcours/parcours/pkg/journey"
)

// Dispatcher makes the journey starts the API could not: the records
// queued in journey_triggers (in the transaction that stored them) whose
// row is still there after a grace period, because the API process died
// before starting the run, or Temporal was unreachable. It runs in the
// worker process (and `parcours dev`), never on the ingest path. Several
// dispatchers (worker replicas) share the work: each claims a batch with
// SELECT ... FOR NO KEY UPDATE SKIP LOCKED and a lease.
//
// Starts stay idempotent: the workflow ids are deterministic (the record's
// id for journeys entered every time), and a run recorded since the record
// was queued is not started again (Starter.Enter).
type Dispatcher struct {
	Starter *Starter
	Logger  *slog.Logger
	// Poll is how long an idle dispatcher waits before looking again.
	// Default 1s.
	Poll time.Duration
	// BatchSize is the most starts one claim takes. Default 50.
	BatchSize int
	// Lease is how long claimed starts are reserved for their dispatcher.
	// Default 1m: well beyond the time a batch of SignalWithStart calls
	// takes while Temporal answers.
	Lease time.Duration
	// Backoff is the delay before retrying a start that failed, doubled
	// after each further failure up to MaxBackoff (±10% jitter). Defaults
	// 5s and 5m: once Temporal is back, waiting starts are made within
	// minutes. They are kept however long it takes.
	Backoff, MaxBackoff time.Duration
}

func (d *Dispatcher) poll() time.Duration       { return orDefault(d.Poll, time.Second) }
func (d *Dispatcher) lease() time.Duration      { return orDefault(d.Lease, time.Minute) }
func (d *Dispatcher) backoff() time.Duration    { return orDefault(d.Backoff, 5*time.Second) }
func (d *Dispatcher) maxBackoff() time.Duration { return orDefault(d.MaxBackoff, 5*time.Minute) }

func orDefault(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

func (d *Dispatcher) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

// Run dispatches until ctx is done.
func (d *Dispatcher) Run(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := d.DispatchOnce(ctx)
		if err != nil && ctx.Err() == nil {
			d.logger().Warn("journey starts: dispatch failed; retrying", "err", err)
		}
		if n > 0 && err == nil {
			continue // there may be more
		}
		select {
		case <-ctx.Done():
		case <-time.After(d.poll()):
		}
	}
}

// DispatchOnce claims a batch of due starts and makes them. It answers how
// many it claimed; a start that fails is kept for a later attempt (with
// its reason), not returned as an error.
func (d *Dispatcher) DispatchOnce(ctx context.Context) (int, error) {
	size := d.BatchSize
	if size <= 0 {
		size = 50
	}
	token := uuid.NewString()
	pending, err := d.Starter.Journeys.ClaimPendingStarts(ctx, token, d.lease(), size)
	if err != nil || len(pending) == 0 {
		return 0, err
	}
	live := map[string][]journey.Live{}
	for _, p := range pending {
		if _, ok := live[p.WorkspaceID]; !ok {
			if live[p.WorkspaceID], err = d.Starter.Journeys.LiveJourneys(ctx, p.WorkspaceID); err != nil {
				return len(pending), err // the lease ends, and they are tried again
			}
		}
		var startErr error
		if p.ProfileID != "" {
			_, startErr = d.Starter.Start(ctx, p.WorkspaceID, live[p.WorkspaceID], p.Kind, p.ProfileID, p.EventID, p.Record, p.QueuedAt)
		}
		if ctx.Err() != nil {
			return len(pending), nil // shutting down: the lease ends, another dispatcher goes on
		}
		if startErr != nil {
			wait := retryDelay(d.backoff(), d.maxBackoff(), p.Attempts+1)
			wait = time.Duration(float64(wait) * (0.9 + 0.2*rand.Float64()))
			d.logger().Warn("journey start failed; kept for retry", "workspace", p.WorkspaceID, "event_id", p.EventID,
				"attempts", p.Attempts+1, "retry_in", wait.Round(time.Second), "err", startErr)
			if err := d.Starter.Journeys.StartFailed(ctx, p, token, startErr.Error(), wait); err != nil {
				return len(pending), err
			}
			continue
		}
		if err := d.Starter.Journeys.StartDone(ctx, p, token); err != nil {
			return len(pending), err
		}
	}
	return len(pending), nil
}

// retryDelay is base doubled for each failure after the first, capped at
// limit.
func retryDelay(base, limit time.Duration, failures int) time.Duration {
	wait := base
	for i := 1; i < failures && wait < limit; i++ {
		wait *= 2
	}
	return min(wait, limit)
}

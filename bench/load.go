package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Op is one operation of a workload: a request, a transaction, a COPY. seq
// numbers operations from 0 across all clients, so that generated data is
// unique. It returns how many units (rows, events, requests) it handled.
type Op func(ctx context.Context, seq int64) (units int, err error)

// Result is what a load run measured.
type Result struct {
	// Ops counts operations that completed without error.
	Ops int64
	// Units counts the units those operations handled.
	Units int64
	// Errors counts failed operations; Err is the first failure.
	Errors int64
	Err    error
	// Elapsed runs from the first operation's start to the last one's end.
	Elapsed time.Duration
	// WarmupUnits counts the units handled by the warm-up before the
	// measured run (stored too, so counted when checking what was stored).
	WarmupUnits int64
	// latencies of successful operations, sorted.
	latencies []time.Duration
}

// Rate is units per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Units) / r.Elapsed.Seconds()
}

// Percentile returns the latency below which p (0..1) of the successful
// operations finished (nearest rank).
func (r Result) Percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(p*float64(len(r.latencies))+0.999999) - 1
	return r.latencies[min(max(i, 0), len(r.latencies)-1)]
}

// check says whether the run did any work and no operation failed.
func (r Result) check(what string) error {
	switch {
	case r.Errors > 0:
		return fmt.Errorf("%s: %d of %d operations failed, first: %w", what, r.Errors, r.Errors+r.Ops, r.Err)
	case r.Ops == 0 || r.Units == 0:
		return fmt.Errorf("%s: no operation completed", what)
	}
	return nil
}

// recorder collects outcomes from concurrent clients.
type recorder struct {
	mu        sync.Mutex
	ops       int64
	units     int64
	errors    int64
	err       error
	latencies []time.Duration
}

func (rec *recorder) add(units int, err error, latency time.Duration) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if err != nil {
		rec.errors++
		if rec.err == nil {
			rec.err = err
		}
		return
	}
	rec.ops++
	rec.units += int64(units)
	rec.latencies = append(rec.latencies, latency)
}

func (rec *recorder) result(elapsed time.Duration) Result {
	slices.Sort(rec.latencies)
	return Result{Ops: rec.ops, Units: rec.units, Errors: rec.errors, Err: rec.err, Elapsed: elapsed, latencies: rec.latencies}
}

// Closed runs a closed-loop load: clients goroutines each run op, one after
// the other, until d has passed or maxOps operations have started (0: no
// cap). An operation started before the deadline runs to its end and counts.
// The context of each operation is cancelled at the deadline plus a grace
// period, so that a stuck operation cannot hang the run.
func Closed(ctx context.Context, clients int, d time.Duration, maxOps int64, op Op) Result {
	var (
		rec     recorder
		next    atomic.Int64
		wg      sync.WaitGroup
		start   = time.Now()
		stopAt  = start.Add(d)
		opCtx   context.Context
		opClose context.CancelFunc
	)
	opCtx, opClose = context.WithDeadline(ctx, stopAt.Add(max(d, 30*time.Second)))
	defer opClose()
	for range clients {
		wg.Go(func() {
			for opCtx.Err() == nil && time.Now().Before(stopAt) {
				seq := next.Add(1) - 1
				if maxOps > 0 && seq >= maxOps {
					return
				}
				t0 := time.Now()
				units, err := op(opCtx, seq)
				rec.add(units, err, time.Since(t0))
			}
		})
	}
	wg.Wait()
	return rec.result(time.Since(start))
}

// Open runs an open-loop load: op starts at a steady rate per second for d,
// whether or not earlier operations have finished, with at most maxInFlight
// running at once. Each latency is measured from when the operation was due,
// not from when it started, so that a stalled server shows in the tail
// instead of slowing the load down (no coordinated omission).
func Open(ctx context.Context, rate float64, d time.Duration, maxInFlight int, op Op) Result {
	var (
		rec      recorder
		wg       sync.WaitGroup
		slots    = make(chan struct{}, maxInFlight)
		interval = time.Duration(float64(time.Second) / rate)
		total    = int64(d.Seconds() * rate)
		start    = time.Now()
	)
	opCtx, opClose := context.WithDeadline(ctx, start.Add(d+max(d, 30*time.Second)))
	defer opClose()
	for seq := range total {
		due := start.Add(time.Duration(seq) * interval)
		if wait := time.Until(due); wait > 0 {
			select {
			case <-time.After(wait):
			case <-opCtx.Done():
			}
		}
		if opCtx.Err() != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		case <-opCtx.Done():
		}
		if opCtx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			units, err := op(opCtx, seq)
			rec.add(units, err, time.Since(due))
		})
	}
	wg.Wait()
	return rec.result(time.Since(start))
}

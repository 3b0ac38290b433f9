// Package bench is Parcours' benchmark harness (issue 8). Each benchmark
// measures a Parcours capability and, in the same run on the same machine, a
// baseline to compare it with, so that the report's ratios mean something on
// a shared, noisy box where absolute times do not. `make bench` runs it at
// full sizes and writes bench/REPORT.md; `make bench-quick` runs it at tiny
// sizes inside `make test`, to prove the harness still works.
//
// A benchmark is a function returning a Result; Run decides the order (each
// Parcours workload right after its baseline) and turns results into report
// rows. Benchmarks it does not measure yet are listed as pending, with why;
// none is faked.
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Sizes bounds every workload of a run.
type Sizes struct {
	// Name is "full" or "quick".
	Name string
	// Warmup runs before each workload and is not counted.
	Warmup time.Duration
	// Duration is the measured run of each throughput workload.
	Duration time.Duration
	// MaxUnits stops a throughput workload early once it has handled this
	// many rows, events, workflows or requests, so that a fast machine
	// cannot fill the disk: the load is bounded in count and in time.
	MaxUnits int64
	// Clients is the number of concurrent clients of single-call workloads:
	// the Echo no-op, the autocommit INSERT rate at concurrency, /v1/track.
	Clients int
	// BatchClients post BatchSize-record batches concurrently (B2).
	BatchClients int
	BatchSize    int
	// Users is the number of people generated records are about.
	Users int
	// CopyChunk is the number of rows per CopyFrom call.
	CopyChunk int
	// WorkflowClients start bare workflows concurrently.
	WorkflowClients int
	// LookupProfiles is the size of the workspace profiles are looked up in;
	// LookupRate the requests per second, for LookupDuration.
	LookupProfiles int
	LookupRate     float64
	LookupDuration time.Duration
	// JourneyEventRate is B4's steady /v1/track rate (one record in 20
	// starts a journey run), run for LookupDuration.
	JourneyEventRate float64
	// JourneyClients enter and await journey runs concurrently (B5).
	JourneyClients int
	// RecomputeProfiles is the size of the workspace whose ten segments
	// are recomputed (B6); its figure is extrapolated to 1M profiles when
	// smaller. Full runs 200k: generating and recomputing 1M twice takes
	// more than the 15 minutes of `make bench` on 2 cores.
	RecomputeProfiles int
	// BroadcastRecipients is the audience of the broadcast (B7), and
	// BroadcastLatency how long the fake SendGrid takes to answer each
	// request; BroadcastSample recipients are sent one by one for the
	// baseline.
	BroadcastRecipients int
	BroadcastLatency    time.Duration
	BroadcastSample     int
}

// Full are the sizes of `make bench`: about four minutes on 2 cores.
var Full = Sizes{
	Name: "full", Warmup: 2 * time.Second, Duration: 15 * time.Second, MaxUnits: 2_000_000,
	Clients: 32, BatchClients: 8, BatchSize: 100, Users: 10_000,
	CopyChunk: 10_000, WorkflowClients: 16,
	LookupProfiles: 10_000, LookupRate: 1000, LookupDuration: 15 * time.Second, JourneyEventRate: 1000, JourneyClients: 200,
	RecomputeProfiles: 200_000,

	BroadcastRecipients: 100_000, BroadcastLatency: 100 * time.Millisecond, BroadcastSample: 500,
}

// Quick are the sizes of `make bench-quick`: seconds, to check the harness,
// not the speed.
var Quick = Sizes{
	Name: "quick", Warmup: 200 * time.Millisecond, Duration: time.Second, MaxUnits: 100_000,
	Clients: 8, BatchClients: 2, BatchSize: 100, Users: 500,
	CopyChunk: 1_000, WorkflowClients: 4,
	LookupProfiles: 500, LookupRate: 200, LookupDuration: time.Second, JourneyEventRate: 50, JourneyClients: 20,
	RecomputeProfiles: 2_000,

	BroadcastRecipients: 1_500, BroadcastLatency: 100 * time.Millisecond, BroadcastSample: 20,
}

// IDs are the benchmarks Run can measure today.
var IDs = []string{"B0", "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8"}

// pending are the benchmarks of issue 8 this harness does not measure yet,
// with why. Move one to IDs when its workload is written here.
var pending = []Pending{}

// Config says what to run and where.
type Config struct {
	// AdminURL is the PostgreSQL server to create the run's throwaway
	// database on (TEST_DATABASE_URL, default postgres://localhost:5432/postgres).
	AdminURL string
	Sizes    Sizes
	// Only lists the benchmarks to run (IDs); empty runs them all.
	Only []string
	// PoolMaxConns caps the API's connection pool; 0 keeps pgxpool's default
	// (max(4, cores)), which is what `parcours api` runs with.
	PoolMaxConns int32
	// Version is the parcours build, for the report.
	Version string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Run measures the selected benchmarks in a throwaway database, dropped at
// the end, and returns the report. A workload that fails is reported as an
// error row and the others still run; err is set only when the run could
// not start (no database, no API).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, id := range cfg.Only {
		if !slices.Contains(IDs, id) {
			return nil, fmt.Errorf("unknown benchmark %q: pick from %s", id, strings.Join(IDs, ", "))
		}
	}
	want := func(ids ...string) bool {
		if len(cfg.Only) == 0 {
			return true
		}
		for _, id := range ids {
			if slices.Contains(cfg.Only, id) {
				return true
			}
		}
		return false
	}
	s := cfg.Sizes
	rep := &Report{Started: time.Now(), Sizes: s, Pending: pending}
	defer func() { rep.Wall = time.Since(rep.Started) }()

	db, err := newDatabase(ctx, cfg.AdminURL)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := db.drop(); err != nil {
			log.Error("could not drop the benchmark database; drop it by hand", "database", db.name, "err", err)
		}
	}()
	log.Info("throwaway database ready", "database", db.name)
	rep.Machine = describeMachine(ctx, db.url, cfg.Version)

	a, err := startAPI(ctx, db.url, cfg.PoolMaxConns)
	if err != nil {
		return nil, err
	}
	defer a.close()
	if _, err := a.pool.Exec(ctx, baselineSchema); err != nil {
		return nil, fmt.Errorf("create baseline tables: %w", err)
	}
	pool := "pgxpool default"
	if cfg.PoolMaxConns > 0 {
		pool = "max_conns set by -pool-max-conns"
	}
	rep.Machine.Setup = fmt.Sprintf("API built by api.New with real stores, pool of %d connections (%s), served by net/http on loopback; "+
		"load driver, API and Temporal share the machine with PostgreSQL; throwaway database dropped at the end",
		a.pool.Config().MaxConns, pool)

	// Each measurement runs once, whichever rows need it, in this order:
	// every Parcours workload right after its baseline, so that slow drift
	// of the machine (other jobs, autovacuum, cache) hits both alike.
	type measured struct {
		res Result
		err error
	}
	checkpointDenied := false
	step := func(name string, fn func() (Result, error)) measured {
		if ctx.Err() != nil {
			return measured{err: ctx.Err()}
		}
		// Start each workload from a clean slate: flush what the previous
		// one dirtied now rather than in a checkpoint during this one.
		// Needs superuser or pg_checkpoint; without it, runs are noisier.
		if _, err := a.pool.Exec(ctx, "CHECKPOINT"); err != nil && !checkpointDenied {
			checkpointDenied = true
			log.Warn("cannot CHECKPOINT between workloads; figures may be noisier", "err", err)
		}
		log.Info("measuring", "workload", name)
		t0 := time.Now()
		res, err := fn()
		log.Info("measured", "workload", name, "rate", formatNumber(res.Rate()), "p99", res.Percentile(0.99), "took", time.Since(t0).Round(time.Millisecond), "err", err)
		return measured{res, err}
	}
	var noop, wf, copyRows, batch, naive, insert1, insertN, track, noopLatency, lookup measured
	if want("B0") {
		noop = step("B0 Echo no-op", func() (Result, error) { return benchEchoNoop(ctx, s) })
		wf = step("B0 bare workflow", func() (Result, error) { return benchBareWorkflow(ctx, s) })
	}
	if want("B0", "B2") {
		copyRows = step("B0 CopyFrom", func() (Result, error) { return benchCopyFrom(ctx, s, db.url) })
	}
	if want("B2") {
		batch = step("B2 Parcours /v1/batch", func() (Result, error) { return benchBatch(ctx, s, a) })
		naive = step("B2 naive /v1/batch", func() (Result, error) {
			t, err := a.newTenant(ctx, "bench-naive")
			if err != nil {
				return Result{}, err
			}
			return benchNaiveBatch(ctx, s, a, t.id)
		})
	}
	if want("B0") {
		insert1 = step("B0 autocommit INSERT, 1 connection", func() (Result, error) { return benchAutocommit(ctx, s, db.url, 1) })
	}
	if want("B0", "B3") {
		insertN = step(fmt.Sprintf("B0 autocommit INSERT, %d connections", s.Clients), func() (Result, error) { return benchAutocommit(ctx, s, db.url, s.Clients) })
	}
	if want("B3") {
		track = step("B3 Parcours /v1/track", func() (Result, error) { return benchTrack(ctx, s, a) })
	}
	if want("B8") {
		noopLatency = step("B8 Echo no-op at a steady rate", func() (Result, error) { return benchEchoNoopLatency(ctx, s) })
		lookup = step("B8 profile lookup", func() (Result, error) { return benchLookup(ctx, s, a) })
	}
	var b1, b1Baseline measured
	if want("B1") {
		b1Baseline = step("B1 rule compiled on every call", func() (Result, error) { return benchRuleEvaluation(ctx, s, true) })
		b1 = step("B1 rule compiled once", func() (Result, error) { return benchRuleEvaluation(ctx, s, false) })
	}
	var b4, b5 measured
	if want("B0", "B5") && !want("B0") {
		wf = step("B0 bare workflow", func() (Result, error) { return benchBareWorkflow(ctx, s) })
	}
	if want("B5") {
		b5 = step("B5 journeys started and run", func() (Result, error) { return benchJourneyStarts(ctx, s, db.url, a, log) })
	}
	if want("B4") {
		b4 = step("B4 event to journey run", func() (Result, error) { return benchEventToJourney(ctx, s, db.url, a, log) })
	}
	var b7 broadcastOutcome
	if want("B7") {
		b7 = measureBroadcast(ctx, s, db.url, a, log, func(name string, fn func() (Result, error)) (Result, error) {
			m := step(name, fn)
			return m.res, m.err
		})
	}
	// B6 last: it writes the most (a large workspace, then its memberships).
	var recompute recomputeOutcome
	if want("B6") {
		recompute = measureRecompute(ctx, s, a, log, func(name string, fn func() (Result, error)) (Result, error) {
			m := step(name, fn)
			return m.res, m.err
		})
	}

	rate := func(m measured, unit string) *Figure {
		if m.err != nil {
			return nil
		}
		return &Figure{Value: m.res.Rate(), Unit: unit}
	}
	firstErr := func(ms ...measured) error {
		for _, m := range ms {
			if m.err != nil {
				return m.err
			}
		}
		return nil
	}
	denominator := func(workload string, m measured, unit string) Row {
		return Row{ID: "B0", Workload: workload, Baseline: rate(m, unit), Err: m.err}
	}
	if want("B0") {
		rep.Rows = append(rep.Rows,
			denominator(fmt.Sprintf("pgx CopyFrom of event rows into a plain table (%s rows per COPY)", formatNumber(float64(s.CopyChunk))), copyRows, "rows/s"),
			denominator("single-row autocommit INSERT of event rows, 1 connection", insert1, "rows/s"),
			denominator(fmt.Sprintf("single-row autocommit INSERT of event rows, %d connections", s.Clients), insertN, "rows/s"),
			denominator(fmt.Sprintf("bare one-line Temporal workflow, in-process server, %d starters", s.WorkflowClients), wf, "workflows/s"),
			denominator(fmt.Sprintf("Echo no-op handler, %d keep-alive clients over loopback", s.Clients), noop, "req/s"),
		)
	}
	if want("B2") {
		workload := fmt.Sprintf("POST /v1/batch of %d events (durable, dedupe, identity resolution, profile update), %d clients", s.BatchSize, s.BatchClients)
		rep.Rows = append(rep.Rows,
			Row{ID: "B2", Workload: workload + "; vs raw CopyFrom (B0)", Parcours: rate(batch, "events/s"), Baseline: rate(copyRows, "rows/s"),
				Target: Target{MinRatio: 0.30, Text: "≥ 0.30× (30% of CopyFrom)"}, Err: firstErr(batch, copyRows)},
			Row{ID: "B2", Workload: workload + "; vs naive row-per-transaction handler", Parcours: rate(batch, "events/s"), Baseline: rate(naive, "events/s"),
				Target: Target{MinRatio: 10, Text: "≥ 10×"}, Err: firstErr(batch, naive)},
		)
	}
	if want("B3") {
		rep.Rows = append(rep.Rows, Row{ID: "B3",
			Workload: fmt.Sprintf("POST /v1/track, one durable event per call, %d clients; vs autocommit INSERT at %d connections (B0)", s.Clients, s.Clients),
			Parcours: rate(track, "events/s"), Baseline: rate(insertN, "rows/s"),
			Target: Target{MinRatio: 2, Text: "≥ 2× (group commit)"}, Err: firstErr(track, insertN)})
	}
	if want("B1") {
		workload := "segment rule of 4 clauses (count, performed, a trait, a computed trait) over 1,000 bound profiles, one goroutine"
		var nsPer *Figure
		if b1.err == nil {
			nsPer = &Figure{Value: float64(b1.res.Elapsed.Nanoseconds()) / float64(b1.res.Units), Unit: "ns/evaluation"}
		}
		rep.Rows = append(rep.Rows,
			Row{ID: "B1", Workload: workload + "; vs compiling on every call (what expr.Eval does)", Parcours: rate(b1, "evaluations/s"), Baseline: rate(b1Baseline, "evaluations/s"),
				Target: Target{MinRatio: 20, Text: "≥ 20× expr.Eval"}, Err: firstErr(b1, b1Baseline)},
			Row{ID: "B1", Workload: workload + " (time per evaluation)", Parcours: nsPer, Target: Target{MaxValue: 150, Text: "≤ 150 ns"}, Err: b1.err})
	}
	if want("B4") {
		pct := func(p float64, label string) *Figure {
			if b4.err != nil {
				return nil
			}
			return &Figure{Value: ms(b4.res.Percentile(p)), Unit: "ms " + label, Note: fmt.Sprintf("%d runs", b4.res.Ops)}
		}
		workload := fmt.Sprintf("/v1/track at %s records/s (open loop), 1 in 20 a Cart Updated starting a run; from the record's due time to its run at its first node", formatNumber(s.JourneyEventRate))
		rep.Rows = append(rep.Rows,
			Row{ID: "B4", Workload: workload + " (median)", Parcours: pct(0.5, "p50"), Target: Target{MaxValue: 100, Text: "p50 ≤ 100 ms"}, Err: b4.err},
			Row{ID: "B4", Workload: workload + " (tail)", Parcours: pct(0.99, "p99"), Target: Target{MaxValue: 1000, Text: "p99 ≤ 1 s"}, Err: b4.err})
	}
	if want("B5") {
		rep.Rows = append(rep.Rows, Row{ID: "B5",
			Workload: fmt.Sprintf("journeys entered through the API and awaited to their end by %d clients (email to the fake SendGrid, 1 s wait, wait for an event with a 1 s timeout); vs bare workflow (B0)", s.JourneyClients),
			Parcours: rate(b5, "runs/s"), Baseline: rate(wf, "workflows/s"),
			Target: Target{MinRatio: 0.8, Text: "≥ 0.80× (80% of bare)"}, Err: firstErr(b5, wf)})
	}
	if want("B6") {
		rep.Rows = append(rep.Rows, recompute.rows()...)
	}
	if want("B7") {
		rep.Rows = append(rep.Rows, b7.rows()...)
	}
	if want("B8") {
		p99 := func(m measured) *Figure {
			if m.err != nil {
				return nil
			}
			return &Figure{Value: ms(m.res.Percentile(0.99)), Unit: "ms p99",
				Note: fmt.Sprintf("p50 %.2f ms, %s req/s served", ms(m.res.Percentile(0.5)), formatNumber(m.res.Rate()))}
		}
		rep.Rows = append(rep.Rows, Row{ID: "B8",
			Workload: fmt.Sprintf("GET /v1/profiles/lookup?email= over %s profiles at %s req/s (open loop); vs Echo no-op at the same rate (the machine's floor, for reading the tail)",
				formatNumber(float64(s.LookupProfiles)), formatNumber(s.LookupRate)),
			Parcours: p99(lookup), Baseline: p99(noopLatency),
			Target: Target{MaxValue: 10, Text: "p99 ≤ 10 ms"}, Err: firstErr(lookup, noopLatency)})
	}
	rep.Notes = notes(s, want)
	if want("B7") {
		rep.Notes = append(rep.Notes, b7.note())
	}
	if want("B6") {
		rep.Notes = append(rep.Notes, recompute.note())
	}
	rep.Machine.LoadEnd = loadAverage()
	return rep, nil
}

// notes say, per benchmark, what it measures and how to run it alone.
func notes(s Sizes, want func(...string) bool) []string {
	var out []string
	if want("B0") {
		out = append(out,
			"**B0** records the box's limits, the denominators of the other rows: CopyFrom of pre-built event rows (the columns of `events`) into a table with no key or index, one COPY per chunk on one connection; "+
				"single-row INSERTs of the same rows, each its own transaction (autocommit, synchronous commit), from 1 and from "+fmt.Sprint(s.Clients)+" connections; "+
				"a workflow that returns at once, started and awaited in a loop on temporaltest's in-process server with a default worker; "+
				"an Echo handler answering 204, hit by keep-alive clients in the same process. Alone: `go run ./bench/cmd/parcours-bench -only B0`.")
	}
	if want("B2") {
		out = append(out,
			"**B2** posts generated Segment batches (1 identify in 10 with an email, 2 pages, 7 tracks; userId and anonymousId on each; "+formatNumber(float64(s.Users))+" people) to the real API with a write key (the workspace has no validation rule and no segment), and checks every answer accepted all records, then counts them in `events`. "+
				"The naive baseline parses the same bodies the same way and stores each record in its own transaction with `INSERT ... ON CONFLICT (workspace_id, message_id) DO NOTHING` into a copy of `events` (same keys and indexes), through the API's connection pool, no identity resolution, no profile. "+
				"Alone: `go run ./bench/cmd/parcours-bench -only B2` (runs the CopyFrom baseline too).")
	}
	if want("B1") {
		out = append(out,
			"**B1** compiles `"+b1Rule+"` once and evaluates it over 1,000 profiles bound at one time (five events each), in turn, on one goroutine, for "+s.Duration.String()+"; "+
				"the baseline compiles it before every evaluation, as `expr.Eval` does. The same figures come from `go test -bench Evaluate ./pkg/segment` (2, 4 and 8 clauses). Alone: `go run ./bench/cmd/parcours-bench -only B1`.")
	}
	if want("B4") {
		out = append(out,
			"**B4** runs the API with Temporal (in-process server, the production worker registration, real activities) and a published journey started by `Cart Updated` with the cart id as correlation key; "+
				"it posts /v1/track at "+formatNumber(s.JourneyEventRate)+" records/s whether or not earlier requests finished, one record in 20 a new cart, the others `Product Viewed` records no journey listens to. "+
				"Each cart's latency runs from when its record was due to when a watcher polling `journey_runs` every 5 ms sees the run at its first node (the workflow started and ran its first activities). Alone: `go run ./bench/cmd/parcours-bench -only B4`.")
	}
	if want("B5") {
		out = append(out,
			"**B5** enters profiles into a published journey (send to the fake SendGrid, a 1 s wait, a wait for an event with a 1 s timeout) through `POST /v1/journeys/{id}/entries`, closed loop: "+fmt.Sprint(s.JourneyClients)+" clients each enter one, await its end (the workflow result from Temporal) and start again; "+
				"the rate is runs ended per second (many clients, since each run spends 2 s in timers), and every run must have sent its one email. The baseline is B0's bare workflow, started and awaited in a loop. Alone: `go run ./bench/cmd/parcours-bench -only B5`.")
	}
	if want("B3") {
		out = append(out,
			"**B3** posts single track calls from "+fmt.Sprint(s.Clients)+" concurrent keep-alive clients, each answered after its own commit; the baseline is single-row autocommit INSERT at the same concurrency, where PostgreSQL already groups concurrent commits. "+
				"Alone: `go run ./bench/cmd/parcours-bench -only B3`.")
	}
	if want("B8") {
		out = append(out,
			"**B8** seeds a workspace with one identify per person through the ingest store, then looks profiles up by email at a steady rate whether or not earlier requests finished (latency counted from when each request was due), checking each answer is the right person. Its baseline is the Echo no-op handler driven the same way just before: the tail latency any HTTP request gets on this machine at that moment. "+
				"Alone: `go run ./bench/cmd/parcours-bench -only B8`.")
	}
	return out
}

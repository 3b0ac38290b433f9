package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/worker"
	"github.com/parcours/parcours/workflows"
)

// recomputeSegments are B6's ten segments: the kinds of rule marketers
// write, on traits, computed traits, behaviour in time windows and other
// segments (loyal before local-loyal, which reads it).
var recomputeSegments = []struct{ slug, rule string }{
	{"pro-plan", `profile.traits.plan == "pro"`},
	{"lyon", `profile.traits.country == "FR" && profile.traits.city == "Lyon"`},
	{"loyal", `count("Order Completed", "90d") >= 3 || profile.total_revenue > 500`},
	{"abandoned-carts", `performed("Cart Updated", "2h") && !performed("Order Completed", "2h")`},
	{"lapsing", `profile.order_count > 0 && days_since(profile.last_order_at) > 60`},
	{"engaged-visitors", `profile.state == "anonymous" && profile.page_views >= 5`},
	{"big-spenders-30d", `sum("Order Completed", "total", "30d") > 200`},
	{"omnichannel", `"store" in profile.sources && "web" in profile.sources`},
	{"local-loyal", `in_segment("loyal") && profile.traits.city == "Lyon"`},
	{"browsers", `count("Product Viewed", "7d") >= 3 && profile.order_count == 0`},
}

// recomputeOutcome is what B6 measured: a first fill of the ten segments
// (every member enters), then a recompute a day later (the windows have
// moved: carts went stale, customers lapsed).
type recomputeOutcome struct {
	profiles      int
	seeded        time.Duration
	fill, sweep   Result
	fillErr       error
	sweepErr      error
	fillT, sweepT activities.SegmentTotals
	eventsN       int
}

// measureRecompute generates B6's workspace (not timed), then times both
// recomputes with step.
func measureRecompute(ctx context.Context, s Sizes, a *parcoursAPI, log *slog.Logger, step func(string, func() (Result, error)) (Result, error)) recomputeOutcome {
	out := recomputeOutcome{profiles: s.RecomputeProfiles}
	log.Info("generating B6 workspace (not timed)", "profiles", s.RecomputeProfiles)
	rb, err := newRecomputeBench(ctx, s, a)
	if err != nil {
		out.fillErr, out.sweepErr = err, err
		return out
	}
	defer rb.close()
	out.seeded = rb.Seeded
	_ = a.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE workspace_id = $1`, rb.t.id).Scan(&out.eventsN)
	log.Info("generated B6 workspace", "profiles", rb.profiles, "events", out.eventsN, "took", rb.Seeded.Round(time.Second))
	out.fill, out.fillErr = step("B6 first fill of 10 segments", func() (Result, error) { return rb.run(ctx, rb.now) })
	out.fillT = rb.totals
	if out.fillErr != nil {
		out.sweepErr = fmt.Errorf("not measured: the first fill failed")
		return out
	}
	out.sweep, out.sweepErr = step("B6 recompute of 10 segments a day later", func() (Result, error) { return rb.run(ctx, rb.now.Add(24*time.Hour)) })
	out.sweepT = rb.totals
	return out
}

// rows are B6's report rows: the time for 1M profiles, extrapolated
// linearly when the run used fewer.
func (o recomputeOutcome) rows() []Row {
	row := func(workload string, r Result, err error, t activities.SegmentTotals) Row {
		var fig *Figure
		if err == nil {
			secs := r.Elapsed.Seconds()
			note := fmt.Sprintf("%s profiles/s; %s entries, %s exits recorded", formatNumber(r.Rate()), formatCount(t.Entered), formatCount(t.Exited))
			unit := "s"
			if o.profiles != 1_000_000 {
				unit = "s for 1M (extrapolated)"
				note = fmt.Sprintf("measured %s s over %s profiles, ×%s; ", formatNumber(secs), formatNumber(float64(o.profiles)), formatNumber(1e6/float64(o.profiles))) + note
			}
			fig = &Figure{Value: secs * 1e6 / float64(o.profiles), Unit: unit, Note: note}
		}
		return Row{ID: "B6", Workload: workload, Parcours: fig, Target: Target{MaxValue: 60, Text: "≤ 60 s for 1M profiles"}, Err: err}
	}
	size := formatNumber(float64(o.profiles))
	return []Row{
		row(fmt.Sprintf("first fill of 10 segments over %s profiles (every member enters), workflow parcours.SegmentRecompute", size), o.fill, o.fillErr, o.fillT),
		row(fmt.Sprintf("recompute of the same 10 segments a day later (windows moved), over %s profiles", size), o.sweep, o.sweepErr, o.sweepT),
	}
}

// note says how B6 is measured.
func (o recomputeOutcome) note() string {
	var rules []string
	for _, sg := range recomputeSegments {
		rules = append(rules, "`"+sg.rule+"`")
	}
	return fmt.Sprintf("**B6** generates a workspace of %s profiles with CopyFrom (not timed; %s here, %s behavioural events): 70%% known with a user id and an email, 30%% anonymous; "+
		"half have ordered (1-6 orders over 180 days, computed traits to match), 15%% updated a cart in the last 3 hours, 30%% viewed products in the last 10 days. "+
		"It creates ten segments — %s — then times Parcours' own `parcours.SegmentRecompute` workflow (batches of 500 profiles per activity, in sequence, on an in-process Temporal server with the worker `parcours worker` runs) "+
		"evaluating every segment for every profile: first as of now (the first fill: every membership, segment event and timeline event written), then as of a day later (carts went stale, customers lapsed: only transitions written). "+
		"Each run is checked: every profile and (profile, segment) pair evaluated, the transitions recorded equal the workflow's count, the sizes equal the memberships. "+
		"A figure for fewer than 1M profiles is extrapolated linearly (batches are keyset pages of the same cost; a larger workspace that no longer fits in memory would be slower). "+
		"Alone: `go run ./bench/cmd/parcours-bench -only B6`.",
		formatNumber(float64(o.profiles)), o.seeded.Round(time.Second), formatNumber(float64(o.eventsN)), strings.Join(rules, ", "))
}

// recomputeBench is B6's workspace: RecomputeProfiles generated profiles
// with identities and behaviour, the ten segments, and a Temporal worker
// running Parcours' own recompute workflow and activities.
type recomputeBench struct {
	a        *parcoursAPI
	t        tenant
	profiles int
	now      time.Time
	ts       *temporaltest.TestServer
	w        sdkworker.Worker
	queue    string
	// Seeded says how long generating the data took (not measured).
	Seeded time.Duration
	// totals of the last run, checked against the database.
	totals activities.SegmentTotals
}

// newRecomputeBench generates the workspace with CopyFrom (not timed) and
// starts the worker.
func newRecomputeBench(ctx context.Context, s Sizes, a *parcoursAPI) (_ *recomputeBench, err error) {
	t0 := time.Now()
	t, err := a.newTenant(ctx, "bench-recompute")
	if err != nil {
		return nil, err
	}
	rb := &recomputeBench{a: a, t: t, profiles: s.RecomputeProfiles, now: time.Now().UTC(), queue: "parcours-bench-recompute"}
	if err := rb.seed(ctx); err != nil {
		return nil, err
	}
	store := segment.NewStore(a.pool, 5*time.Second)
	for _, sg := range recomputeSegments {
		if _, err := store.Create(ctx, t.id, sg.slug, sg.slug, sg.rule); err != nil {
			return nil, fmt.Errorf("create segment %s: %w", sg.slug, err)
		}
	}
	// Vacuumed, with fresh statistics, as autovacuum would have left a
	// workspace that grew over months rather than in a minute (the first
	// read of freshly copied rows would otherwise rewrite every page).
	if _, err := a.pool.Exec(ctx, `VACUUM (ANALYZE) profiles, identities, events, segments, segment_memberships`); err != nil {
		return nil, fmt.Errorf("vacuum: %w", err)
	}
	if rb.ts, err = startTemporal(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			rb.close()
		}
	}()
	// The worker `parcours worker` runs, with the stores the recompute
	// activities use.
	w := worker.New(rb.ts.GetDefaultClient(), rb.queue, &activities.Activities{Pool: a.pool, Segments: store})
	if err = w.Start(); err != nil {
		return nil, fmt.Errorf("start Temporal worker: %w", err)
	}
	rb.w = w
	rb.Seeded = time.Since(t0)
	return rb, nil
}

func (rb *recomputeBench) close() {
	if rb.w != nil {
		rb.w.Stop()
	}
	if rb.ts != nil {
		stopTemporal(rb.ts)
	}
}

// run recomputes every segment over every profile as of asOf, through the
// SegmentRecompute workflow (batches of 500 profiles per activity, what a
// new segment and the schedule run), and checks what it did.
func (rb *recomputeBench) run(ctx context.Context, asOf time.Time) (Result, error) {
	start := time.Now()
	run, err := rb.ts.GetDefaultClient().ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: rb.queue},
		workflows.SegmentRecomputeWorkflow, workflows.SegmentRecomputeInput{WorkspaceID: rb.t.id, AsOf: asOf})
	if err != nil {
		return Result{}, fmt.Errorf("start recompute: %w", err)
	}
	var out activities.SegmentTotals
	if err := run.Get(ctx, &out); err != nil {
		return Result{}, fmt.Errorf("recompute: %w", err)
	}
	elapsed := time.Since(start)
	rb.totals = out
	want := rb.profiles * len(recomputeSegments)
	if out.Profiles != rb.profiles || out.Evaluated != want {
		return Result{}, fmt.Errorf("recompute evaluated %d profiles and %d (profile, segment) pairs, want %d and %d", out.Profiles, out.Evaluated, rb.profiles, want)
	}
	// Every member counted by the sizes is a membership row, and the
	// workflow's transitions are all recorded.
	var members, sizes, transitions int
	if err := rb.a.pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM segment_memberships WHERE workspace_id = $1 AND exited_at IS NULL),
		       (SELECT coalesce(sum(size), 0) FROM segments WHERE workspace_id = $1),
		       (SELECT count(*) FROM segment_events WHERE workspace_id = $1 AND at = $2)`, rb.t.id, asOf).Scan(&members, &sizes, &transitions); err != nil {
		return Result{}, err
	}
	if members != sizes || transitions != out.Entered+out.Exited {
		return Result{}, fmt.Errorf("after recompute: %d members but sizes add up to %d; %d transitions recorded, the workflow reported %d", members, sizes, transitions, out.Entered+out.Exited)
	}
	if members == 0 {
		return Result{}, fmt.Errorf("recompute: no profile in any segment; the generated data does not exercise the rules")
	}
	return Result{Ops: 1, Units: int64(out.Profiles), Elapsed: elapsed, latencies: []time.Duration{elapsed}}, nil
}

// seed writes the profiles, their identities and their behaviour with
// CopyFrom, in chunks, on one connection. Profile i is a pure function of
// i: 70% known (user id and email), 30% anonymous (an anonymous id); 20% on
// the pro plan, 10% in Lyon; half have ordered (1 to 6 orders over the last
// 180 days, consistent with their computed traits); 15% updated a cart in
// the last 3 hours; 30% viewed products in the last 10 days.
func (rb *recomputeBench) seed(ctx context.Context) error {
	conn, err := rb.a.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	const chunk = 20_000
	ws, key := rb.t.id, rb.t.writeKeyID
	now := rb.now
	cities := []string{"Paris", "Marseille", "Bordeaux", "Nantes", "Lille", "Toulouse", "Nice", "Strasbourg", "Rennes"}
	var msg int64
	for first := 0; first < rb.profiles; first += chunk {
		var profiles, idents, evs [][]any
		for i := first; i < min(first+chunk, rb.profiles); i++ {
			id := uuid.NewString()
			r := mix(uint64(i))
			u := strconv.Itoa(i)
			known := r%10 < 7
			state := "anonymous"
			if known {
				state = "known"
			}
			city := cities[(r>>8)%uint64(len(cities))]
			if (r>>16)%10 == 0 {
				city = "Lyon"
			}
			plan := "free"
			if (r>>20)%5 == 0 {
				plan = "pro"
			}
			traits := map[string]any{"plan": plan, "city": city, "country": "FR", "first_name": "Ana", "last_name": "Martin"}
			if known {
				traits["email"] = "user" + u + "@example.com"
			}
			srcs := map[string]any{}
			for k := range traits {
				srcs[k] = map[string]any{"source": "web", "message_id": "seed-" + u, "at": now.Add(-200 * 24 * time.Hour)}
			}
			sources := []string{"web"}
			if (r>>24)%100 < 15 {
				sources = append(sources, "store")
			}
			firstSeen := now.Add(-time.Duration(200+(r>>28)%300) * 24 * time.Hour)
			lastSeen := now.Add(-time.Duration((r>>36)%(30*24)) * time.Hour)
			// Orders.
			orders := 0
			if (r>>40)%2 == 0 {
				orders = 1 + int((r>>41)%6)
			}
			var revenue float64
			var lastOrder *time.Time
			for o := range orders {
				at := now.Add(-time.Duration(mix(uint64(i)*31+uint64(o))%(180*24)) * time.Hour)
				total := float64(20 + mix(uint64(i)*17+uint64(o))%180)
				revenue += total
				if lastOrder == nil || at.After(*lastOrder) {
					lastOrder = &at
				}
				msg++
				evs = append(evs, eventRow(ws, key, id, msg, "Order Completed", at, map[string]any{"total": total, "currency": "EUR", "order_id": "o-" + u + "-" + strconv.Itoa(o)}))
			}
			if (r>>44)%100 < 15 {
				msg++
				evs = append(evs, eventRow(ws, key, id, msg, "Cart Updated", now.Add(-time.Duration((r>>48)%180)*time.Minute), map[string]any{"cart_id": "c-" + u, "total": 60}))
			}
			views := 0
			if (r>>52)%10 < 3 {
				views = 2 + int((r>>54)%3)
			}
			for v := range views {
				msg++
				evs = append(evs, eventRow(ws, key, id, msg, "Product Viewed", now.Add(-time.Duration(mix(uint64(i)*7+uint64(v))%(10*24))*time.Hour), map[string]any{"product_id": "p" + strconv.Itoa(v), "price": 89.9}))
			}
			avg := 0.0
			if orders > 0 {
				avg = revenue / float64(orders)
			}
			computed := map[string]any{
				"event_count": orders + views + 3, "event_counts": map[string]int{"Order Completed": orders, "Product Viewed": views},
				"page_views": int((r >> 56) % 12), "screen_views": 0, "sessions": 1 + int((r>>60)%8),
				"order_count": orders, "total_revenue": revenue, "average_order_value": avg, "last_order_at": lastOrder,
				"sources": sources, "channels": []string{"web"},
			}
			tj, _ := json.Marshal(traits)
			sj, _ := json.Marshal(srcs)
			cj, _ := json.Marshal(computed)
			profiles = append(profiles, []any{ws, id, state, tj, sj, cj, firstSeen, lastSeen, firstSeen})
			if known {
				idents = append(idents, []any{ws, "user_id", "u" + u, id, id, "web"}, []any{ws, "email", "user" + u + "@example.com", id, id, "web"})
			} else {
				idents = append(idents, []any{ws, "anonymous_id", "a" + u, id, id, "web"})
			}
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"profiles"},
			[]string{"workspace_id", "id", "state", "traits", "trait_sources", "computed", "first_seen_at", "last_seen_at", "created_at"}, pgx.CopyFromRows(profiles)); err != nil {
			return fmt.Errorf("copy profiles: %w", err)
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"identities"},
			[]string{"workspace_id", "type", "value", "profile_id", "origin_profile_id", "source"}, pgx.CopyFromRows(idents)); err != nil {
			return fmt.Errorf("copy identities: %w", err)
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"events"},
			[]string{"workspace_id", "key_id", "source", "message_id", "type", "name", "profile_id", "origin_profile_id", "timestamp", "received_at", "properties", "raw"},
			pgx.CopyFromRows(evs)); err != nil {
			return fmt.Errorf("copy events: %w", err)
		}
	}
	return nil
}

// eventRow is a track record about a profile, as ingestion stores it.
func eventRow(ws, key, profileID string, msg int64, name string, at time.Time, props map[string]any) []any {
	pj, _ := json.Marshal(props)
	raw, _ := json.Marshal(map[string]any{"type": "track", "event": name, "properties": props, "timestamp": at})
	return []any{ws, key, "web", "recompute-" + strconv.FormatInt(msg, 10), "track", name, profileID, profileID, at, at, pj, raw}
}

// formatCount writes a count: 7, 1,234.
func formatCount(n int) string {
	if n < 100 {
		return strconv.Itoa(n)
	}
	return formatNumber(float64(n))
}

// mix spreads an integer over 64 bits (splitmix64), so that the generated
// population's attributes are independent of one another.
func mix(x uint64) uint64 {
	z := x + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

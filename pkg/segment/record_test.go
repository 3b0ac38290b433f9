package segment_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/segment"
)

// Two profiles swapping segments at the same moment (one enters A and
// leaves B, the other enters B and leaves A) are recorded side by side
// without a deadlock, and every transition exactly once.
func TestCrossedTransitionsDoNotDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newHookEnv(t)
	for _, sg := range []struct{ slug, rule string }{{"a", `profile.traits.plan == "a"`}, {"b", `profile.traits.plan == "b"`}} {
		if _, err := e.segments.Create(ctx, e.ws, sg.slug, sg.slug, sg.rule); err != nil {
			t.Fatal(err)
		}
	}
	e.identify(t, map[string]string{"p1": "a", "p2": "b"})
	p1, p2 := e.profileOf(t, "p1"), e.profileOf(t, "p2")
	const rounds = 40
	for round := range rounds {
		plan1, plan2 := "b", "a"
		if round%2 == 1 {
			plan1, plan2 = "a", "b"
		}
		if _, err := e.pool.Exec(ctx, `UPDATE profiles SET traits = jsonb_build_object('plan', CASE id WHEN $2::uuid THEN $3 ELSE $4 END) WHERE workspace_id = $1 AND id IN ($2, $5)`,
			e.ws, p1, plan1, plan2, p2); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, p := range []string{p1, p2} {
			wg.Go(func() {
				_, err := e.segments.Refresh(ctx, e.ws, []segment.Change{{ProfileID: p, Traits: true}}, now)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	var entered, exited int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE kind = 'entered'), count(*) FILTER (WHERE kind = 'exited') FROM segment_events WHERE workspace_id = $1`, e.ws).Scan(&entered, &exited); err != nil {
		t.Fatal(err)
	}
	// The first identify entered each profile once; each round then moves both.
	if entered != 2+2*rounds || exited != 2*rounds {
		t.Fatalf("%d entries and %d exits, want %d and %d", entered, exited, 2+2*rounds, 2*rounds)
	}
}

// Rules that read event properties see them as stored: loading leaves them
// encoded until a function asks (sum, last), and counting does not need them.
func TestPropertiesAreReadFromStoredEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newHookEnv(t)
	at := func(ago time.Duration) string { return time.Now().Add(-ago).UTC().Format(time.RFC3339) }
	recs := `{"batch":[
		{"type":"track","messageId":"o1","userId":"ana","event":"Order Completed","properties":{"total":120.5,"coupon":"SPRING"},"timestamp":"` + at(2*time.Hour) + `"},
		{"type":"track","messageId":"o2","userId":"ana","event":"Order Completed","properties":{"total":30},"timestamp":"` + at(time.Hour) + `"},
		{"type":"track","messageId":"o3","userId":"bob","event":"Order Completed","properties":{"total":20},"timestamp":"` + at(time.Hour) + `"}]}`
	msgs, rejected, _, err := events.ParseBatch([]byte(recs), time.Now())
	if err != nil || len(rejected) > 0 {
		t.Fatalf("parse: %v %v", err, rejected)
	}
	if _, err := e.ingest.Ingest(ctx, e.origin, msgs, nil); err != nil {
		t.Fatal(err)
	}
	for rule, want := range map[string]int{
		`sum("Order Completed", "total", "30d") > 100`:            1, // ana: 150.5
		`sum("Order Completed", "total", "30d") == 20`:            1, // bob
		`last("Order Completed")?.properties?.total == 30`:        1, // ana's latest
		`last("Order Completed")?.properties?.coupon == "SPRING"`: 0, // the coupon was on the earlier order
		`count("Order Completed", "30d") >= 1`:                    2,
	} {
		res, err := e.segments.Preview(ctx, e.ws, rule, time.Now().Add(time.Minute), 5)
		if err != nil {
			t.Fatalf("%s: %v", rule, err)
		}
		if res.Count != want {
			t.Errorf("%s selects %d profiles, want %d", rule, res.Count, want)
		}
	}
}

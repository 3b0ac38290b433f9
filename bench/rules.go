package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/parcours/parcours/pkg/segment"
)

// b1Rule is B1's 4-clause rule: two behavioural functions, a trait, a
// computed trait (the same rule as `go test -bench Evaluate ./pkg/segment`).
const b1Rule = `count("Order Completed", "30d") >= 1 && profile.traits.plan == "pro" && performed("Cart Updated", "2h") && profile.total_revenue > 100`

// b1Profiles builds 1,000 profiles with a few orders, carts and page views
// each, bound at one evaluation time.
func b1Profiles(now time.Time) []segment.Env {
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	const day = 24 * time.Hour
	envs := make([]segment.Env, 1000)
	for i := range envs {
		d := &segment.Data{
			Profile: segment.Profile{ID: fmt.Sprint(i), State: "known", Traits: map[string]any{"plan": []string{"pro", "free"}[i%2]},
				OrderCount: i % 5, TotalRevenue: float64(i % 400)},
			Events: []segment.Event{
				{Name: "Order Completed", At: ago(time.Duration(i%60) * day), Properties: map[string]any{"total": 40.0}},
				{Name: "Order Completed", At: ago(90 * day), Properties: map[string]any{"total": 25.0}},
				{Name: "Cart Updated", At: ago(time.Duration(i%240) * time.Minute), Properties: map[string]any{"cart_id": "c"}},
				{Name: "Page Viewed", At: ago(3 * day), Properties: map[string]any{"url": "/shoes"}},
				{Name: "Page Viewed", At: ago(1 * day), Properties: map[string]any{"url": "/cart"}},
			},
			Segments: map[string]bool{},
		}
		envs[i] = segment.Bind(d, now)
	}
	return envs
}

// benchRuleEvaluation measures B1 in process, on one goroutine, for
// s.Duration: the rule compiled once and evaluated over the 1,000 profiles
// in turn; with compileEveryCall, compiled again before each evaluation
// (what expr.Eval does), the baseline.
func benchRuleEvaluation(ctx context.Context, s Sizes, compileEveryCall bool) (Result, error) {
	envs := b1Profiles(time.Now())
	rule, err := segment.Compile(b1Rule)
	if err != nil {
		return Result{}, err
	}
	matched := 0
	var n int64
	start := time.Now()
	deadline := start.Add(s.Duration)
	for ctx.Err() == nil && (n%1024 != 0 || time.Now().Before(deadline)) {
		r := rule
		if compileEveryCall {
			if r, err = segment.Compile(b1Rule); err != nil {
				return Result{}, err
			}
		}
		ok, err := r.Run(envs[n%int64(len(envs))])
		if err != nil {
			return Result{}, err
		}
		if ok {
			matched++
		}
		n++
	}
	if matched == 0 || matched == int(n) {
		return Result{}, fmt.Errorf("B1: the rule matched %d of %d evaluations: the profiles do not exercise it", matched, n)
	}
	return Result{Ops: n, Units: n, Elapsed: time.Since(start)}, nil
}

package segment_test

import (
	"fmt"
	"testing"

	"github.com/parcours/parcours/pkg/segment"
)

// benchRules are segment rules of 2 to 8 clauses, behavioural functions included.
var benchRules = map[int]string{
	2: `count("Order Completed", "30d") >= 1 && profile.traits.plan == "pro"`,
	4: `count("Order Completed", "30d") >= 1 && profile.traits.plan == "pro" && performed("Cart Updated", "2h") && profile.total_revenue > 100`,
	8: `count("Order Completed", "30d") >= 1 && profile.traits.plan == "pro" && performed("Cart Updated", "2h") && profile.total_revenue > 100 && ` +
		`sum("Order Completed", "total", "90d") > 50 && in_segment("vip") && days_since(profile.last_order_at) < 30 && "web" in profile.sources`,
}

// BenchmarkEvaluate measures a compiled rule over 1,000 profiles (B1), with
// compiling on every call (what expr.Eval does) as the baseline in the same run.
func BenchmarkEvaluate(b *testing.B) {
	profiles := make([]*segment.Data, 1000)
	for i := range profiles {
		d := data()
		d.Profile.TotalRevenue = float64(i)
		profiles[i] = d
	}
	for _, clauses := range []int{2, 4, 8} {
		src := benchRules[clauses]
		b.Run(fmt.Sprintf("clauses=%d/parcours", clauses), func(b *testing.B) {
			r, err := segment.Compile(src)
			if err != nil {
				b.Fatal(err)
			}
			envs := make([]segment.Env, len(profiles))
			for i, d := range profiles {
				envs[i] = segment.Bind(d, now)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := r.Run(envs[i%len(envs)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/profile")
		})
		// Baseline: what expr.Eval does, compiling the rule on every call.
		b.Run(fmt.Sprintf("clauses=%d/compile-every-call", clauses), func(b *testing.B) {
			envs := make([]segment.Env, len(profiles))
			for i, d := range profiles {
				envs[i] = segment.Bind(d, now)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r, err := segment.Compile(src)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.Run(envs[i%len(envs)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/profile")
		})
	}
}

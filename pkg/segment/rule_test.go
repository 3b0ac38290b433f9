package segment_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/rules"
	"github.com/parcours/parcours/pkg/segment"
)

var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) time.Time { return now.Add(-d) }

const day = 24 * time.Hour

func data() *segment.Data {
	lastOrder := ago(10 * day)
	return &segment.Data{
		Profile: segment.Profile{
			ID: "p1", State: "known", Traits: map[string]any{"plan": "pro", "age": 34.0},
			Identities: map[string][]string{"email": {"ana@example.com"}},
			Consents:   map[string]bool{"email": true},
			OrderCount: 3, TotalRevenue: 250, LastOrderAt: &lastOrder, Sources: []string{"store", "web"},
		},
		Events: []segment.Event{
			{Name: "Order Completed", At: ago(10 * day), Properties: map[string]any{"total": 100.0}},
			{Name: "Order Completed", At: ago(40 * day), Properties: map[string]any{"total": 50.0}},
			{Name: "Order Completed", At: ago(100 * day), Properties: map[string]any{"total": 100.0}},
			{Name: "Cart Updated", At: ago(90 * time.Minute), Properties: map[string]any{"cart_id": "c9"}},
			{Name: "Page Viewed", At: ago(3 * day), Properties: map[string]any{"url": "/shoes"}},
			{Name: "Page Viewed", At: ago(1 * day), Properties: map[string]any{"url": "/cart"}},
			{Name: "Email Opened", At: ago(2 * day), Properties: map[string]any{"template": "welcome", "machine_open": false}},
			{Name: "Email Opened", At: ago(2 * day), Properties: map[string]any{"template": "newsletter", "machine_open": true}},
			{Name: "Email Clicked", At: ago(2 * day), Properties: map[string]any{"template": "welcome", "url": "https://shop.example/"}},
			{Name: "Order Completed", At: now.Add(time.Hour), Properties: map[string]any{"total": 999.0}}, // after the evaluation time
		},
		Segments: map[string]bool{"vip": true},
	}
}

func TestEveryFunction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rule string
		want bool
	}{
		{`count("Order Completed", "30d") == 1`, true},
		{`count("Order Completed", "60d") == 2`, true},
		{`count("Order Completed", "all") == 3`, true},
		{`sum("Order Completed", "total", "90d") == 150`, true},
		{`sum("Order Completed", "total", "all") == 250`, true},
		{`performed("Cart Updated", "2h")`, true},
		{`performed("Cart Updated", "1h")`, false},
		{`last("Page Viewed").properties.url == "/cart"`, true},
		{`last("Page Viewed").days_ago < 2`, true},
		{`last("Never Happened") == nil`, true},
		{`days_since(profile.last_order_at) >= 10 && days_since(profile.last_order_at) < 11`, true},
		{`days_since(profile.first_seen_at) > 30`, true}, // never set: NeverDays
		{`in_segment("vip") && !in_segment("churned")`, true},
		{`consented("email") && !consented("sms")`, true},
		{`opened("welcome") && clicked("welcome")`, true},
		{`opened("newsletter")`, false}, // a machine open is not a human one
		{`clicked("newsletter")`, false},
		{`profile.traits.plan == "pro" && profile.traits.age > 30`, true},
		{`profile.state == "known" && "store" in profile.sources && profile.order_count >= 3`, true},
		{`"ana@example.com" in profile.identities.email`, true},
		{`profile.total_revenue > 1000`, false},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			t.Parallel()
			r, err := segment.Compile(tt.rule)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Evaluate(data(), now)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// The same rule gives another answer only when the evaluation time moves.
func TestEvaluationTimeIsAnInput(t *testing.T) {
	t.Parallel()
	r, err := segment.Compile(`count("Order Completed", "30d") == 0`)
	if err != nil {
		t.Fatal(err)
	}
	d := data()
	d.Events = d.Events[:9] // without the order placed after now
	if got, _ := r.Evaluate(d, now); got {
		t.Fatal("an order 10 days ago counts as none in 30 days")
	}
	if got, _ := r.Evaluate(d, now.Add(25*day)); !got {
		t.Fatal("35 days after the last order, the 30-day window should be empty")
	}
}

func TestCompileErrorsPointAtTheMistake(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rule      string
		line, col int
		has       string
	}{
		{`count(event_name, "30d") > 1`, 1, 7, "unknown name"},
		{`count("A", profile.traits.window) > 1`, 1, 0, "in quotes"},
		{`count("Order Completed", "30 days") > 1`, 1, 26, "window"},
		{"profile.order_count > 1 &&\n  sum(\"Order Completed\", \"total\", \"9x\") > 10", 2, 35, "window"},
		{`profile.order_count +`, 1, 0, ""},
		{`profile.order_count + 1`, 1, 0, "condition"},
		{`nope > 1`, 1, 0, "unknown name"},
		{`now() > 1`, 1, 0, ""},
		{``, 1, 1, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			t.Parallel()
			_, err := segment.Compile(tt.rule)
			var re *rules.Error
			if !errors.As(err, &re) {
				t.Fatalf("Compile(%q) = %v, want a rules.Error", tt.rule, err)
			}
			if re.Line != tt.line || (tt.col != 0 && re.Column != tt.col) || !strings.Contains(re.Message, tt.has) {
				t.Fatalf("got %+v, want line %d column %d saying %q", re, tt.line, tt.col, tt.has)
			}
		})
	}
}

func TestDependenciesComeFromTheAST(t *testing.T) {
	t.Parallel()
	r, err := segment.Compile(`count("Order Completed", "30d") >= 2 && sum("Order Completed", "total", "90d") > 100 && in_segment("vip") && profile.traits.plan == "pro"`)
	if err != nil {
		t.Fatal(err)
	}
	d := r.Deps
	if strings.Join(d.Events, ",") != "Order Completed" || d.MaxWindow != 90*day || !d.Traits || d.Computed || strings.Join(d.Segments, ",") != "vip" || !d.TimeWindows {
		t.Fatalf("deps %+v", d)
	}
	r, err = segment.Compile(`profile.order_count > 2`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(r.Deps.Events, ",") != "Order Completed" || r.Deps.Computed || r.Deps.TimeWindows {
		t.Fatalf("deps %+v", r.Deps)
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{`count("Order Completed", "30d") > 2`, `last("X").properties.a == 1`, `in_segment("a") || consented("sms")`, `((((`, `sum("a","b","1w") ?? 1`, `profile.traits["x"] matches "a+"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		r, err := segment.Compile(src)
		if err != nil {
			return
		}
		// A rule that compiles evaluates without panicking.
		_, _ = r.Evaluate(data(), now)
	})
}

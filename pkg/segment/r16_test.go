package segment_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/rules"
	"github.com/parcours/parcours/pkg/segment"
)

// R16: rules that could not run, or would cost too much to run, are refused
// when they are compiled (at save time), with a reason a marketer can act on.
func TestR16HostileRulesAreRefusedAtCompileTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, rule, has string
	}{
		{"1 MB", `profile.traits.plan == "` + strings.Repeat("x", 1_000_000) + `"`, "the limit is 4000"},
		{"20,000 nodes", strings.Repeat("true && ", 19_999) + "true", "the limit is 4000"},
		{"too many parts within the length limit", strings.Repeat("true && ", 490) + "true", "too complex"},
		{"a huge literal range", `profile.traits.age in 1..1000000000`, "holds 1000000000 numbers"},
		{"a huge negative range", `any(-2000000000..-5, {# == profile.order_count})`, "the limit is 10000"},
		{"a range as wide as int64", `len(-9223372036854775807..9223372036854775807) > 0`, "the limit is 10000"},
		{"a window beyond a Duration", `count("Order Completed", "100000w") > 0`, "longer than 290 years"},
		{"a window that used to wrap negative", `performed("Order Completed", "50000w")`, "longer than 290 years"},
		{"a number beyond int64", `profile.order_count > 99999999999999999999`, "out of range"},
		{"a loop in a loop over the same list", `any(profile.traits.tags, {any(profile.traits.tags, {# != nil})})`, "current item's own list"},
		{"a loop in a loop over a range", `any(1..5000, {any(1..5000, {# < 0})})`, "current item's own list"},
		{"events scanned for every item", `any(profile.traits.tags, {count("Order Completed", "30d") > 0})`, "outside the loop"},
		{"a list searched for every item", `any(profile.traits.tags, {# in profile.traits.tags})`, "inside a loop"},
		{"a number", `profile.order_count`, "condition"},
		{"a count", `count("Order Completed", "30d")`, "condition"},
		{"a text", `"yes"`, "condition"},
		{"arithmetic", `profile.traits.age * 2`, "condition"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := segment.Compile(tt.rule)
			var re *rules.Error
			if !errors.As(err, &re) || !strings.Contains(re.Message, tt.has) {
				t.Fatalf("Compile = %v, want a rules.Error saying %q", err, tt.has)
			}
		})
	}
	// Ranges a condition needs still compile.
	for _, ok := range []string{
		`profile.traits.age in 18..25`, `any(1..10000, {# == profile.order_count})`, `profile.order_count in 1..1000000000`,
		`any(profile.traits.orders, {any(#.items, {#.sku == "x"})})`, `any(profile.traits.tags, {# in ["a", "b"]})`,
		`count("Order Completed", "30d") > 0 && any(profile.traits.tags, {# == "vip"})`,
	} {
		if _, err := segment.Compile(ok); err != nil {
			t.Errorf("Compile(%q): %v", ok, err)
		}
	}
}

// R16: what compiles runs in bounded time and memory, whatever the data:
// loops allowed over the data are linear in its size, and lists built per
// item stop at expr's memory budget with an error instead of allocating
// gigabytes. (Ranges built from the data, and repeat, are refused when
// compiled since issue 16: see TestH2RulesThatBuildWithoutBoundAreRefused.)
func TestR16EvaluationIsBounded(t *testing.T) {
	t.Parallel()
	d := data()
	d.Profile.OrderCount = 2_000_000_000
	tags := make([]any, 200_000)
	orders := make([]any, 1000)
	for i := range orders {
		orders[i] = map[string]any{"items": make([]any, 1000)}
	}
	d.Profile.Traits["tags"], d.Profile.Traits["orders"] = tags, orders
	tests := []struct {
		rule   string
		budget bool // stopped by the memory budget
	}{
		{`len(map(profile.traits.tags, [#, #, #, #, #])) > 0`, true},
		{`len(map(profile.traits.orders, #.items)) > 0`, false},
		{`any(profile.traits.tags, {# != nil && # != 0})`, false},
		{`any(profile.traits.orders, {any(#.items, {# == 1})})`, false},
	}
	for _, tt := range tests {
		r, err := segment.Compile(tt.rule)
		if err != nil {
			t.Fatalf("Compile(%q): %v", tt.rule, err)
		}
		start := time.Now()
		_, err = r.Evaluate(d, now)
		took := time.Since(start)
		if stopped := err != nil && strings.Contains(err.Error(), "memory budget exceeded"); stopped != tt.budget {
			t.Errorf("%s: evaluation answered %v", tt.rule, err)
		}
		if took > 2*time.Second {
			t.Errorf("%s: evaluation took %v", tt.rule, took)
		}
	}
}

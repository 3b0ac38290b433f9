package segment_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/rules"
	"github.com/parcours/parcours/pkg/segment"
)

// allocated runs f and returns the bytes the process allocated meanwhile.
// The tests that use it do not call t.Parallel, so that they run alone.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

const mib = 1 << 20

// hostileData is a profile whose traits hold a 64 KiB text: a write key
// can send that much in one identify call.
func hostileData() *segment.Data {
	d := data()
	d.Profile.Traits["big"] = strings.Repeat("x", 64<<10)
	d.Profile.Traits["shout"] = strings.Repeat("X", 64<<10)
	d.Profile.Traits["pattern"] = "(a+)+$"
	return d
}

// H2 (issue 16): a rule that would build values without bound is refused
// when it is compiled, with a position and a reason a marketer can act on,
// and compiling it allocates next to nothing.
func TestH2RulesThatBuildWithoutBoundAreRefused(t *testing.T) {
	tests := []struct {
		name, rule, has string
	}{
		{"nested replace", `replace(replace(replace(replace(replace(replace(replace(replace("xxxxxxxxxx", "x", "xxxxxxxxxx"), "x", "xxxxxxxxxx"), "x", "xxxxxxxxxx"), "x", "xxxxxxxxxx"), "x", "xxxxxxxxxx"), "x", "xxxxxxxxxx"), "x", "xxxxxxxxxx"), "x", "xxxxxxxxxx") != ""`, "replace is not available"},
		{"repeat", `repeat("x", 1000000000) != ""`, "repeat is not available"},
		{"repeat from data", `len(repeat("ab", profile.order_count)) > 0`, "repeat is not available"},
		{"let doubling", `let a = "xxxxxxxxxxxxxxxx"; let b = a+a+a+a+a+a+a+a; let c = b+b+b+b+b+b+b+b; let d = c+c+c+c+c+c+c+c; let e = d+d+d+d+d+d+d+d; let f = e+e+e+e+e+e+e+e; len(f+f+f+f+f+f+f+f) > 0`, "let"},
		{"reduce doubling", `len(reduce(1..40, #acc + #acc, "x")) > 0`, "reduce is not available"},
		{"join of a big map", `len(join(map(1..10000, "xxxxxxxxxx"), "")) > 0`, "join is not available"},
		{"split", `len(split(profile.traits.big, "")) > 0`, "split is not available"},
		{"toJSON", `toJSON(profile) != ""`, "toJSON is not available"},
		{"pipe into repeat", `("x" | repeat(1000000000)) != ""`, "repeat is not available"},
		{"big literal range", `any(1..1000000000, # > 0)`, "the limit is 10000"},
		{"range from data", `any(1..profile.order_count, {# < 0})`, "written with numbers"},
		{"range from a trait", `len(0..int(profile.traits.age)) > 0`, "written with numbers"},
		{"map over a range from data", `len(map(1..profile.order_count, # * 2)) > 0`, "written with numbers"},
		{"pattern from data", `profile.traits.plan matches profile.traits.pattern`, "pattern in quotes"},
		{"clock", `now() != nil`, "clock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if n := allocated(func() { _, err = segment.Compile(tt.rule) }); n > 4*mib {
				t.Errorf("compiling allocated %d MiB", n/mib)
			}
			var re *rules.Error
			if !errors.As(err, &re) || !strings.Contains(re.Message, tt.has) {
				t.Fatalf("Compile = %v, want a rules.Error saying %q", err, tt.has)
			}
			if re.Line < 1 || re.Column < 1 {
				t.Fatalf("error without a position: %+v", re)
			}
		})
	}
	// The position points at the construct, for the editor.
	_, err := segment.Compile(`profile.order_count > 1 && repeat("x", 3) != ""`)
	var re *rules.Error
	if !errors.As(err, &re) || re.Line != 1 || re.Column != 28 {
		t.Fatalf("repeat at column 28: got %+v", err)
	}
	_, err = segment.Compile("profile.order_count > 1 &&\n  let x = 2; x > 1")
	if !errors.As(err, &re) || re.Line != 2 || re.Column != 3 {
		t.Fatalf("let at line 2, column 3: got %+v", err)
	}
}

// H2 (issue 16): the text a rule builds while it runs (+ on texts, upper,
// lower, string) is bounded per evaluation: a rule that would build
// megabytes from a 64 KiB trait stops with an error saying so, having
// allocated about the budget, not what the rule asked for.
func TestH2TextBuiltWhileRunningIsBounded(t *testing.T) {
	// A tree of + six levels deep: 64 copies of the trait, 24 MiB of
	// intermediate texts, in 1,200 characters and without let.
	leaf := "profile.traits.big"
	for range 6 {
		leaf = "(" + leaf + " + " + leaf + ")"
	}
	tests := []struct{ name, rule string }{
		{"+ doubling", `len(` + leaf + `) > 0`},
		{"+ in a loop kept by map", `len(map(1..1000, {profile.traits.big + "x"})) > 0`},
		{"upper in a loop", `any(1..2000, {upper(profile.traits.big) == ""})`},
		{"lower in a loop", `any(1..2000, {lower(profile.traits.shout) == ""})`},
		{"string in a loop", `any(1..2000, {string(profile.traits) == ""})`},
		{"+ on a typed text in a loop", `any(1..2000, {profile.id + profile.traits.big == ""})`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := segment.Compile(tt.rule)
			if err != nil {
				t.Fatal(err)
			}
			d := hostileData()
			var got bool
			n := allocated(func() { got, err = r.Evaluate(d, now) })
			if n > 8*mib {
				t.Errorf("evaluation allocated %d MiB", n/mib)
			}
			if got || err == nil || !strings.Contains(err.Error(), "KiB of text") {
				t.Fatalf("Evaluate = %v, %v; want an error about the text limit", got, err)
			}
		})
	}
}

// Rules that build a little text keep working, whatever the types.
func TestH2SmallTextStillWorks(t *testing.T) {
	t.Parallel()
	for _, rule := range []string{
		`lower(profile.traits.plan) + "!" == "pro!"`,
		`upper(profile.state) == "KNOWN" && string(profile.order_count) == "3"`,
		`profile.id + "-" + profile.state == "p1-known"`,
		`profile.traits.age + 1 == 35`,
		`profile.traits.age + profile.traits.age == 68`,
		`any(profile.sources, {# + "!" == "web!"})`,
		`"a" + "b" == "ab"`,
		`trim(" pro ") == profile.traits.plan && hasPrefix(profile.traits.plan, "p")`,
		`len(filter(profile.sources, # != "web")) == 1 && first(profile.sources) == "store"`,
		`profile.traits.plan matches "^p"`,
	} {
		r, err := segment.Compile(rule)
		if err != nil {
			t.Errorf("Compile(%q): %v", rule, err)
			continue
		}
		if got, err := r.Evaluate(data(), now); err != nil || !got {
			t.Errorf("%s = %v, %v; want true", rule, got, err)
		}
	}
}

// H2 (issue 16): a preview, which viewers may run, stops within one
// profile once its context is done, rather than evaluating a chunk of
// 2,000 profiles first: here each profile takes tens of milliseconds (the
// most a rule that compiles can cost), and the preview must give up soon
// after its deadline instead of going through all of them.
func TestH2PreviewStopsWithinAProfileOfItsDeadline(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t)
	const profiles = 30
	plans := map[string]string{}
	for i := range profiles {
		plans[fmt.Sprintf("u%d", i)] = "pro"
	}
	e.identify(t, plans)
	// 95 comparisons for each of 10,000 numbers: the longest loop a rule
	// may write, and never true.
	var parts []string
	for i := range 95 {
		parts = append(parts, fmt.Sprintf("# == %d", -i-1))
	}
	rule := `profile.traits.plan == "pro" && any(1..10000, {` + strings.Join(parts, " || ") + `})`
	r, err := segment.Compile(rule)
	if err != nil {
		t.Fatal(err)
	}
	var each time.Duration
	for range 3 {
		start := time.Now()
		if _, err := r.Evaluate(data(), now); err != nil {
			t.Fatal(err)
		}
		each = max(each, time.Since(start))
	}
	const deadline = 400 * time.Millisecond
	if each*profiles < 2*deadline {
		t.Skipf("one evaluation takes %v: too fast for %d profiles to outlast %v", each, profiles, deadline)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	res, err := e.segments.Preview(ctx, e.ws, rule, time.Now().UTC(), 5)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Preview = %+v, %v after %v; want it stopped by its deadline", res, err, took)
	}
	if res.Scanned >= profiles {
		t.Fatalf("scanned all %d profiles past the deadline", res.Scanned)
	}
	if over := took - deadline; over > 2*each+250*time.Millisecond {
		t.Fatalf("stopped %v after the deadline; one profile takes %v", over, each)
	}
	// Cancelled before it starts, it evaluates nobody.
	cancelled, stop := context.WithCancel(context.Background())
	stop()
	if res, err := e.segments.Preview(cancelled, e.ws, rule, time.Now().UTC(), 5); !errors.Is(err, context.Canceled) || res.Scanned != 0 {
		t.Fatalf("cancelled Preview = %+v, %v", res, err)
	}
}

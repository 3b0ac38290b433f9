package template

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// measure runs f and returns how many bytes the process allocated meanwhile.
// Not parallel with other tests: TotalAlloc counts every goroutine.
func measure(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// settled waits for the number of goroutines to come back to n, and says
// whether it did.
func settled(n int) bool {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if runtime.NumGoroutine() <= n {
			return true
		}
	}
	return false
}

// A template built to allocate or to loop without end is stopped by the
// rendering budget: an error naming the part, the line and the limit, soon,
// having allocated a few MiB at most, and with nothing left running.
// Before the budget, the first four rendered (allocating 64 MiB to a GiB)
// and the loops kept a goroutine spinning after Render returned at the 2 s
// timeout.
func TestRenderStopsRunawayTemplates(t *testing.T) {
	x400 := strings.Repeat("x", 400)
	tests := []struct {
		name string
		src  Source
		line int
		want string
	}{
		{"append doubling", Source{HTML: "<p>\n{% assign a = \"0123456789abcdef\" %}\n{% for i in (1..22) %}{% assign a = a | append: a %}{% endfor %}{{ a | size }}</p>"},
			3, "builds more than 4 MiB of text"},
		{"capture doubling", Source{Text: "{% assign a = \"0123456789abcdef\" %}{% for i in (1..22) %}\n{% capture a %}{{ a }}{{ a }}{% endcapture %}{% endfor %}{{ a | size }}"},
			2, "builds more than 4 MiB of text"},
		{"nested replace", Source{HTML: `{% assign a = "` + x400 + `" %}{% assign b = a | replace: "x", a %}{% assign c = b | replace: "x", a %}{{ c | size }}`},
			1, "builds more than 4 MiB of text"},
		{"join over a huge range", Source{Subject: `{% assign n = 2000000 %}{% assign s = (1..n) | join: "," %}{{ s | size }}`},
			1, "more than 10000 items"},
		{"a loop that writes nothing", Source{Text: "{% assign n = 100000000 %}\n\n{% for i in (1..n) %}{% endfor %}"},
			3, "loops run more than 10000 times"},
		{"nested loops", Source{HTML: `{% for i in (1..5000) %}{% for j in (1..5000) %}{% endfor %}{% endfor %}`},
			1, "loops run more than 10000 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compile(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			goroutines := runtime.NumGoroutine()
			var elapsed time.Duration
			allocated := measure(func() {
				start := time.Now()
				_, err = c.Render(context.Background(), Data{})
				elapsed = time.Since(start)
			})
			var ce *CompileError
			if !errors.As(err, &ce) || !strings.Contains(ce.Message, tt.want) || ce.Line != tt.line {
				t.Errorf("err = %#v, want a *CompileError at line %d saying %q", err, tt.line, tt.want)
			}
			if elapsed > time.Second {
				t.Errorf("stopped after %s", elapsed)
			}
			if allocated > 4*MaxBuilt {
				t.Errorf("allocated %d MiB", allocated>>20)
			}
			if !settled(goroutines) {
				t.Errorf("%d goroutines still running after Render returned (%d before)", runtime.NumGoroutine(), goroutines)
			}
		})
	}
}

// A range written in the template is checked when it is saved.
func TestCompileRefusesHugeRangeLiterals(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		src  Source
		ok   bool
		line int
	}{
		{Source{HTML: "<ul>\n{% for i in (1..100000) %}<li>{{ i }}</li>{% endfor %}</ul>"}, false, 2},
		{Source{Text: "{% assign r = (-5..9999999) %}"}, false, 1},
		{Source{Subject: "{{ (1..20000) | size }}"}, false, 1},
		{Source{Text: "{% if true %}\n{% for i in (1..10000) %}{% endfor %}{% endif %}"}, true, 0},
		{Source{Text: `{{ "(1..100000)" }}{% comment %}(1..100000){% endcomment %}`}, true, 0},
		{Source{Text: `{% assign n = 5 %}{% for i in (1..n) %}*{% endfor %}`}, true, 0},
	} {
		_, err := Compile(tt.src)
		var ce *CompileError
		switch {
		case tt.ok && err != nil:
			t.Errorf("%+v: %v", tt.src, err)
		case !tt.ok && (!errors.As(err, &ce) || ce.Line != tt.line || !strings.Contains(ce.Message, "at most 10000")):
			t.Errorf("%+v: err = %v, want a *CompileError at line %d", tt.src, err, tt.line)
		}
	}
}

// Ordinary Liquid still works under the budget: loops with their modifiers
// and forloop variables, cycle, break and continue, tablerow, capture,
// case, unless, string and list filters.
func TestRenderBudgetKeepsLiquid(t *testing.T) {
	t.Parallel()
	c, err := Compile(Source{Text: strings.Join([]string{
		`{% for i in (1..10) reversed limit: 3 offset: 2 %}{{ i }}{% if forloop.last %}.{% else %},{% endif %}{% endfor %}`,
		`{% for i in (1..6) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% cycle "a", "b" %}{% endfor %}`,
		`{% for x in profile.traits.none %}x{% else %}empty{% endfor %}`,
		`{% capture who %}{{ profile.traits.first_name | upcase }}!{% endcapture %}{{ who | prepend: "Hi " | replace: "!", "?" }}`,
		`{% case profile.traits.plan %}{% when "pro", "team" %}paid{% else %}free{% endcase %}{% unless profile.traits.vip %} not vip{% endunless %}`,
		`{{ profile.traits.tags | sort | join: "+" }} {{ "a,b,,c" | split: "," | size }} {{ profile.traits.tags | uniq | size }} {{ profile.traits.items | map: "sku" | join }}`,
		`{% for k in profile.traits.sizes %}{{ k[0] }}={{ k[1] }};{% endfor %} {{ profile.traits.first_name | truncate: 3, "" }} {{ "<b>" | escape }} {{ 3 | plus: 4 }}`,
	}, "\n")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Render(context.Background(), Data{Profile: map[string]any{"traits": map[string]any{
		"first_name": "Ana", "plan": "team", "tags": []any{"b", "a", "b"},
		"items": []any{map[string]any{"sku": "s1"}, map[string]any{"sku": "s2"}},
		"sizes": map[string]any{"shoe": 38, "coat": "M"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	want := "8,7,6.\n1a3b4a\nempty\nHi ANA?\npaid not vip\na+b+b 4 2 s1 s2\ncoat=M;shoe=38; Ana &lt;b&gt; 7"
	if out.Text != want {
		t.Fatalf("rendered\n%s\nwant\n%s", out.Text, want)
	}
	table, err := Compile(Source{HTML: `{% tablerow i in (1..3) cols: 2 %}{{ i }}{% endtablerow %}`})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := table.Render(context.Background(), Data{}); err != nil || out.HTML != `<tr class="row1"><td class="col1">1</td><td class="col2">2</td></tr><tr class="row2"><td class="col1">3</td></tr>` {
		t.Fatalf("tablerow: %q, %v", out.HTML, err)
	}
}

// A number too large for the expression scanner is a compile error naming
// the part; the library panics on it, which crashed the request.
func TestCompileRefusesNumbersTooLarge(t *testing.T) {
	t.Parallel()
	_, err := Compile(Source{Subject: "ok", Text: "{% for i in (1..99999999999999999999) %}{% endfor %}"})
	var ce *CompileError
	if !errors.As(err, &ce) || ce.Field != "text" || !strings.Contains(ce.Message, "out of range") {
		t.Fatalf("err = %v, want a *CompileError on text", err)
	}
}

package validation_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/validation"
)

func TestCompileReportsWhereARuleIsWrong(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rule      string
		line, col int
		reasonHas string
	}{
		{"", 1, 1, "empty"},
		{"properties.total >", 1, 0, ""},
		{"event == 'a' &&\n  nope > 1", 2, 0, "unknown name"},
		{"properties.total * 2", 1, 0, "condition"},
		{"now() > 0", 1, 0, ""},
		{strings.Repeat("a", validation.MaxRuleLength+1), 1, 1, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.rule[:min(len(tt.rule), 20)], func(t *testing.T) {
			t.Parallel()
			_, err := validation.Compile(tt.rule)
			var ce *validation.CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile(%q) = %v, want a CompileError", tt.rule, err)
			}
			if ce.Line != tt.line || (tt.col != 0 && ce.Column != tt.col) || !strings.Contains(ce.Message, tt.reasonHas) {
				t.Fatalf("error %+v, want line %d col %d saying %q", ce, tt.line, tt.col, tt.reasonHas)
			}
		})
	}
}

func FuzzCompileNeverPanics(f *testing.F) {
	for _, seed := range []string{`event != "Order Completed" || properties.total > 0`, "traits.email endsWith '@x.com'", "((", "properties[", "1 ?: 2"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, rule string) {
		prog, err := validation.Compile(rule)
		if err == nil && prog == nil {
			t.Fatal("no program and no error")
		}
	})
}

func TestCheckAppliesRulesOfTheRecordsSource(t *testing.T) {
	t.Parallel()
	m := &events.Message{Type: "track", Event: "Order Completed", Properties: map[string]any{"total": -1.0}}
	store := mustRules(t, map[string]string{"store": `event != "Order Completed" || properties.total > 0`})
	if r := validation.Check(store, m, "store"); !strings.Contains(r, "rejected") {
		t.Fatalf("store order with negative total: %q, want a rejection", r)
	}
	if r := validation.Check(store, m, "web"); r != "" {
		t.Fatalf("rule of the store applied to the web: %q", r)
	}
	missing := &events.Message{Type: "track", Event: "Order Completed", Properties: map[string]any{}}
	if r := validation.Check(store, missing, "store"); !strings.Contains(r, "could not be evaluated") {
		t.Fatalf("missing property: %q, want an evaluation failure", r)
	}
}

func mustRules(t *testing.T, bySource map[string]string) []validation.Rule {
	t.Helper()
	var out []validation.Rule
	for source, text := range bySource {
		r, err := validation.NewRule("rule for "+source, source, text)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

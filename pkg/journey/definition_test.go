package journey_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/journey"
)

func TestTheAbandonedCartScenarioIsValid(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/abandoned_cart.json")
	if err != nil {
		t.Fatal(err)
	}
	d, err := journey.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := journey.Validate(d); err != nil {
		t.Fatal(err)
	}
}

func TestValidationNamesTheNodeAndField(t *testing.T) {
	t.Parallel()
	base := func() journey.Definition {
		raw, _ := os.ReadFile("testdata/abandoned_cart.json")
		d, _ := journey.Parse(raw)
		return d
	}
	tests := []struct {
		name  string
		edit  func(d *journey.Definition)
		field string
		has   string
	}{
		{"missing template", func(d *journey.Definition) { d.Nodes[1].Template = "" }, "nodes[rescue_1].template", "template"},
		{"dangling next", func(d *journey.Definition) { d.Nodes[2].Next = "nowhere" }, "nodes[wait_day].next", "nowhere"},
		{"bad duration", func(d *journey.Definition) { d.Nodes[2].Duration = "a day" }, "nodes[wait_day].duration", "duration"},
		{"bad match rule", func(d *journey.Definition) { d.Nodes[0].Match = "properties.cart_id ==" }, "nodes[wait_order].match", ""},
		{"unknown type", func(d *journey.Definition) { d.Nodes[2].Type = "sleep" }, "nodes[wait_day].type", "not one of"},
		{"duplicate id", func(d *journey.Definition) { d.Nodes[3].ID = "rescue_1" }, "nodes[3].id", "two nodes"},
		{"bad start", func(d *journey.Definition) { d.Start = "x" }, "start", "not a node"},
		{"loop", func(d *journey.Definition) { d.Nodes[3].Next = "wait_order" }, "nodes[wait_order]", "loop"},
		{"unreachable", func(d *journey.Definition) {
			d.Nodes = append(d.Nodes, journey.Node{ID: "orphan", Type: "exit"})
		}, "nodes[orphan]", "cannot be reached"},
		{"split weights", func(d *journey.Definition) {
			d.Nodes[2] = journey.Node{ID: "wait_day", Type: "split", Variants: []journey.Variant{{Weight: 30, Next: "rescue_2"}, {Weight: 30, Next: "done"}}}
		}, "nodes[wait_day].variants", "100"},
		{"cooldown without duration", func(d *journey.Definition) { d.Entry.ReEntry = "cooldown" }, "entry.cooldown", "required"},
		{"bad branch condition", func(d *journey.Definition) {
			d.Nodes[2] = journey.Node{ID: "wait_day", Type: "branch", Branches: []journey.Branch{{Condition: `count("Order Completed", "1 week") > 0`, Next: "done"}}, Else: "rescue_2"}
		}, "nodes[wait_day].branches[0].condition", "window"},
		{"date and duration", func(d *journey.Definition) { d.Nodes[2].Date = "traits.renewal_at" }, "nodes[wait_day].date", "one of"},
		{"date not a trait", func(d *journey.Definition) {
			d.Nodes[2].Duration, d.Nodes[2].Date = "", "renewal_at"
		}, "nodes[wait_day].date", "traits.renewal_at"},
		{"bad offset", func(d *journey.Definition) {
			d.Nodes[2].Duration, d.Nodes[2].Date, d.Nodes[2].Offset = "", "traits.renewal_at", "3 days before"
		}, "nodes[wait_day].offset", "-3d"},
		{"dangling on_missing", func(d *journey.Definition) {
			d.Nodes[2].Duration, d.Nodes[2].Date, d.Nodes[2].OnMissing = "", "traits.renewal_at", "nowhere"
		}, "nodes[wait_day].on_missing", "nowhere"},
		{"webhook without URL", func(d *journey.Definition) {
			d.Nodes[1] = journey.Node{ID: "rescue_1", Type: "webhook", Next: "wait_day"}
		}, "nodes[rescue_1].url", "http"},
		{"webhook URL with credentials", func(d *journey.Definition) {
			d.Nodes[1] = journey.Node{ID: "rescue_1", Type: "webhook", URL: "https://user:pw@crm.example.com/hook", Next: "wait_day"}
		}, "nodes[rescue_1].url", "credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := base()
			tt.edit(&d)
			err := journey.Validate(d)
			var ve *journey.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("no validation error")
			}
			for _, f := range ve.Errors {
				if f.Field == tt.field && strings.Contains(f.Reason, tt.has) {
					return
				}
			}
			t.Fatalf("errors %+v do not name %s (%q)", ve.Errors, tt.field, tt.has)
		})
	}
}

func TestParseRejectsUnknownFields(t *testing.T) {
	t.Parallel()
	_, err := journey.Parse([]byte(`{"name":"x","trigerr":{}}`))
	if err == nil || !strings.Contains(err.Error(), "trigerr") {
		t.Fatalf("err %v", err)
	}
}

func TestEveryScenarioIsValid(t *testing.T) {
	t.Parallel()
	names := journey.Scenarios()
	if strings.Join(names, ",") != "abandoned_cart,resend_non_openers,thank_you,welcome" {
		t.Fatalf("scenarios %v", names)
	}
	for _, n := range names {
		s, err := journey.LoadScenario(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if err := journey.Validate(s.Definition); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		if len(s.Templates) == 0 {
			t.Errorf("%s sends nothing", n)
		}
	}
}

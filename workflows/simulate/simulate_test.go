package simulate_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/channel/channeltest"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/workflows/simulate"
)

var start = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

type fixture struct {
	*channeltest.Env
	deps simulate.Deps
	cart journey.Definition
	ana  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := channeltest.NewEnv(t)
	e.Template(t, "cart-rescue-1", "{{ profile.traits.first_name }}, your cart is waiting", "<p>Hello {{ profile.traits.first_name }}</p>", "Hello")
	e.Template(t, "cart-rescue-coupon", "10% off your {{ event.properties.total }} € cart", "<p>Code SAVE10</p>", "Code SAVE10")
	raw, err := os.ReadFile("../../pkg/journey/testdata/abandoned_cart.json")
	if err != nil {
		t.Fatal(err)
	}
	cart, err := journey.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{
		Env:  e,
		deps: simulate.Deps{Profiles: profile.NewStore(e.Pool), Segments: segment.NewStore(e.Pool, time.Minute), Templates: e.Ledger.Templates},
		cart: cart,
		ana:  e.Profile(t, "ana@example.com", map[string]any{"first_name": "Ana"}),
	}
}

func (f *fixture) run(t *testing.T, in simulate.Input) simulate.Result {
	t.Helper()
	in.WorkspaceID, in.Start = f.WorkspaceID, start
	res, err := simulate.Run(context.Background(), f.deps, in)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (f *fixture) nothingWritten(t *testing.T) {
	t.Helper()
	var deliveries int
	if err := f.Pool.QueryRow(context.Background(), `SELECT count(*) FROM deliveries`).Scan(&deliveries); err != nil {
		t.Fatal(err)
	}
	if deliveries != 0 || f.SendGrid.Calls() != 0 {
		t.Fatalf("a simulation sent or recorded something: %d deliveries, %d SendGrid calls", deliveries, f.SendGrid.Calls())
	}
}

func TestSimulatedAbandonedCartRendersBothEmailsAtTheirTimes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	res := f.run(t, simulate.Input{
		Definition: f.cart, ProfileID: f.ana,
		Trigger: &simulate.Event{Event: "Cart Updated", Properties: map[string]any{"cart_id": "c1", "total": 40}},
		Events:  []simulate.Event{{After: "10m", Type: "page", Event: "Page Viewed"}},
	})
	if !res.Entered || res.Outcome.String() != "completed" || len(res.Messages) != 2 {
		t.Fatalf("result %+v", res)
	}
	first, second := res.Messages[0], res.Messages[1]
	if first.To != "ana@example.com" || first.Subject != "Ana, your cart is waiting" || !first.At.Equal(start.Add(time.Hour)) {
		t.Fatalf("first email %+v", first)
	}
	if second.Subject != "10% off your 40 € cart" || !second.At.Equal(start.Add(25*time.Hour)) {
		t.Fatalf("second email %+v", second)
	}
	if len(res.Waits) != 2 || res.Waits[0].Kind != "event" || res.Waits[0].Resolution.String() != "timeout" || !res.Waits[0].To.Equal(start.Add(time.Hour)) ||
		res.Waits[1].Kind != "duration" || res.Waits[1].Resolution.String() != "timer" || res.Waits[1].To.Sub(res.Waits[1].From) != 24*time.Hour {
		t.Fatalf("waits %+v", res.Waits)
	}
	f.nothingWritten(t)
}

func TestSimulatedOrderEndsTheRescueAndCountsTheGoal(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// The order comes during the 24 h wait: one email, then the exit.
	res := f.run(t, simulate.Input{
		Definition: f.cart, ProfileID: f.ana,
		Trigger: &simulate.Event{Event: "Cart Updated", Properties: map[string]any{"cart_id": "c1", "total": 40}},
		Events:  []simulate.Event{{After: "5h", Event: "Order Completed", Properties: map[string]any{"cart_id": "c1", "total": 40}}},
	})
	if res.Outcome.String() != "exited:order_completed" || len(res.Messages) != 1 {
		t.Fatalf("result %+v", res)
	}
	if w := res.Waits[len(res.Waits)-1]; w.Node != "wait_day" || w.Resolution.String() != "exited:order_completed" || !w.To.Equal(start.Add(5*time.Hour)) {
		t.Fatalf("last wait %+v", w)
	}

	// Without the exit criterion the same order reaches the goal, credited to the email.
	goal := f.cart
	goal.Exits = nil
	res = f.run(t, simulate.Input{
		Definition: goal, ProfileID: f.ana,
		Trigger: &simulate.Event{Event: "Cart Updated", Properties: map[string]any{"cart_id": "c1", "total": 40}},
		Events:  []simulate.Event{{After: "5h", Event: "Order Completed", Properties: map[string]any{"cart_id": "c1"}}},
	})
	if res.Outcome.String() != "goal" || res.Goal == nil || res.Goal.AttributedTo != "rescue_1" || res.Goal.Event != "Order Completed" {
		t.Fatalf("goal %+v / %+v", res.Outcome, res.Goal)
	}
	f.nothingWritten(t)
}

func TestSimulatedTriggerAndEntryFiltersKeepProfilesOut(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	res := f.run(t, simulate.Input{Definition: f.cart, ProfileID: f.ana,
		Trigger: &simulate.Event{Event: "Cart Updated", Properties: map[string]any{"cart_id": "c1", "total": 0}}})
	if res.Entered || !strings.Contains(res.NotEntered, "trigger filter") || len(res.Steps) != 0 {
		t.Fatalf("an empty cart entered: %+v", res)
	}
	gated := f.cart
	gated.Entry.Filter = `profile.traits.vip == true`
	res = f.run(t, simulate.Input{Definition: gated, ProfileID: f.ana,
		Trigger: &simulate.Event{Event: "Cart Updated", Properties: map[string]any{"cart_id": "c1", "total": 5}}})
	if res.Entered || !strings.Contains(res.NotEntered, "entry filter") {
		t.Fatalf("a non-VIP entered: %+v", res)
	}
	// Traits given in the request count.
	res = f.run(t, simulate.Input{Definition: gated, ProfileID: f.ana, Traits: map[string]any{"vip": true},
		Trigger: &simulate.Event{Event: "Cart Updated", Properties: map[string]any{"cart_id": "c1", "total": 5}}})
	if !res.Entered {
		t.Fatalf("a VIP by simulated trait did not enter: %+v", res)
	}
	if _, err := simulate.Run(context.Background(), f.deps, simulate.Input{WorkspaceID: f.WorkspaceID, Definition: f.cart, ProfileID: f.ana, Start: start}); err == nil ||
		!strings.Contains(err.Error(), "trigger") {
		t.Fatalf("an event journey without a trigger record: %v", err)
	}
}

// Every node type runs in the simulator (so every activity the journey
// workflow calls has a read-only twin), for a profile made of traits only;
// simulated events count in branch conditions.
func TestSimulatorRunsEveryNodeType(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := journey.Definition{
		Name: "Everything", Trigger: journey.Trigger{Type: "api"}, Entry: journey.Entry{ReEntry: "every_time"}, Start: "day",
		Nodes: []journey.Node{
			{ID: "day", Type: "wait", Duration: "1d", Next: "morning"},
			{ID: "morning", Type: "wait", Until: "09:00", Next: "engaged"},
			{ID: "engaged", Type: "branch", Branches: []journey.Branch{{Condition: `count("Page Viewed", "7d") >= 2`, Next: "ab"}}, Else: "end"},
			{ID: "ab", Type: "split", Variants: []journey.Variant{{Name: "a", Weight: 50, Next: "tag"}, {Name: "b", Weight: 50, Next: "tag"}}},
			{ID: "tag", Type: "update_profile", Traits: map[string]any{"engaged": true}, Next: "renewal"},
			{ID: "renewal", Type: "wait", Date: "traits.renewal_at", Offset: "-3d", Next: "mail"},
			{ID: "mail", Type: "send", Channel: "email", Template: "cart-rescue-1", Next: "crm"},
			{ID: "crm", Type: "webhook", URL: "https://crm.example.com/hook", Next: "reply"},
			{ID: "reply", Type: "wait_for_event", Event: "Email Clicked", Timeout: "2d", OnEvent: "end", OnTimeout: "end"},
			{ID: "end", Type: "exit"},
		},
	}
	if err := journey.Validate(d); err != nil {
		t.Fatal(err)
	}
	res := f.run(t, simulate.Input{
		Definition: d,
		Traits:     map[string]any{"first_name": "Zoé", "email": "zoe@example.com", "timezone": "Europe/Paris", "renewal_at": "2026-12-20"},
		Events: []simulate.Event{
			{After: "2h", Type: "page", Event: "Page Viewed"}, {After: "3h", Type: "page", Event: "Page Viewed"},
			{After: "30d", Event: "Email Clicked"},
		},
	})
	var path []string
	for _, s := range res.Steps {
		path = append(path, s.Node)
	}
	want := "day morning engaged ab tag renewal mail crm reply end"
	if strings.Join(path, " ") != want || res.Outcome.String() != "completed" {
		t.Fatalf("path %v outcome %s, want %s", path, res.Outcome, want)
	}
	// 20 December at midnight in Paris, three days earlier.
	mail := res.Messages[0]
	if wantAt := time.Date(2026, 12, 17, 0, 0, 0, 0, mustZone(t, "Europe/Paris")); !mail.At.Equal(wantAt) || mail.To != "zoe@example.com" || mail.Subject != "Zoé, your cart is waiting" {
		t.Fatalf("mail %+v, want at %v", mail, wantAt)
	}
	if crm := res.Messages[1]; crm.Channel != "webhook" || crm.URL != "https://crm.example.com/hook" {
		t.Fatalf("webhook %+v", crm)
	}
	if res.Traits["engaged"] != true {
		t.Fatalf("traits set %v", res.Traits)
	}
	if w := res.Waits[len(res.Waits)-1]; w.Node != "reply" || w.Resolution.String() != "event" {
		t.Fatalf("reply wait %+v", w)
	}
	// Two page views no longer: the branch goes to the end.
	res = f.run(t, simulate.Input{Definition: d, Traits: map[string]any{"renewal_at": "2026-12-20"},
		Events: []simulate.Event{{After: "2h", Type: "page", Event: "Page Viewed"}}})
	if len(res.Steps) != 4 || res.Steps[3].Node != "end" {
		t.Fatalf("steps %+v", res.Steps)
	}
	f.nothingWritten(t)
}

func TestSimulationStopsAtTheHorizon(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := journey.Definition{
		Name: "Slow", Trigger: journey.Trigger{Type: "api"}, Entry: journey.Entry{ReEntry: "every_time"}, Start: "long",
		Nodes: []journey.Node{{ID: "long", Type: "wait", Duration: "60d", Next: "end"}, {ID: "end", Type: "exit"}},
	}
	res := f.run(t, simulate.Input{Definition: d, ProfileID: f.ana, Horizon: 30 * 24 * time.Hour})
	if res.Outcome.String() != "still_waiting" || len(res.Waits) != 1 || res.Waits[0].Resolution.String() != "still_waiting" || !res.Waits[0].To.Equal(start.Add(30*24*time.Hour)) {
		t.Fatalf("result %+v", res)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

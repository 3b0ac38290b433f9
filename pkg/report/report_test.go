package report_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/parcours/parcours/pkg/channel/channeltest"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/report"
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

// seeded is a hand-made week of the abandoned-cart journey; the expected
// figures in the tests below are counted by hand from it.
type seeded struct {
	*channeltest.Env
	journeyID      string
	p1, p2, p3, p4 string
	window         report.Window
}

func seed(t *testing.T) *seeded {
	t.Helper()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	raw, err := os.ReadFile("../journey/testdata/abandoned_cart.json")
	if err != nil {
		t.Fatal(err)
	}
	def, err := journey.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	j, err := journey.NewStore(e.Pool, 0).Create(ctx, e.WorkspaceID, def)
	if err != nil {
		t.Fatal(err)
	}
	s := &seeded{Env: e, journeyID: j.ID, window: report.Window{From: at("2026-11-01 00:00"), To: at("2026-11-05 00:00")}}
	s.p1, s.p2, s.p3, s.p4 = e.Profile(t, "p1@example.com", nil), e.Profile(t, "p2@example.com", nil), e.Profile(t, "p3@example.com", nil), e.Profile(t, "p4@example.com", nil)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := e.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	run := func(wf, profile string, entered time.Time, path []string) {
		exec(`INSERT INTO journey_runs (workspace_id, workflow_id, run_id, journey_id, version, profile_id, entered_at, node, path)
			VALUES ($1, $2, 'r', $3, 1, $4, $5, $6, $7)`, e.WorkspaceID, wf, j.ID, profile, entered, path[len(path)-1], path)
	}
	run("run1", s.p1, at("2026-11-02 10:00"), []string{"wait_order", "rescue_1", "wait_day", "rescue_2", "done"})
	run("run2", s.p2, at("2026-11-02 10:00"), []string{"wait_order", "done"})
	run("run3", s.p3, at("2026-11-02 10:00"), []string{"wait_order", "rescue_1", "wait_day"})
	run("run4", s.p4, at("2026-11-03 08:00"), []string{"wait_order", "rescue_1"})
	run("run0", s.p3, at("2026-10-30 08:00"), []string{"wait_order", "rescue_1"}) // before the window

	type times struct{ sent, delivered, opened, machine, clicked, bounced, unsub, updated *time.Time }
	p := func(s string) *time.Time { v := at(s); return &v }
	delivery := func(key, profile, node, status string, tm times) {
		if tm.updated == nil {
			tm.updated = tm.sent
		}
		exec(`INSERT INTO deliveries (workspace_id, business_key, profile_id, channel, status, class, journey_id, node_id,
			sent_at, delivered_at, opened_at, machine_opened_at, clicked_at, bounced_at, unsubscribed_at, updated_at)
			VALUES ($1, $2, $3, 'email', $4, 'marketing', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			e.WorkspaceID, key, profile, status, j.ID, node, tm.sent, tm.delivered, tm.opened, tm.machine, tm.clicked, tm.bounced, tm.unsub, tm.updated)
	}
	delivery("d1", s.p1, "rescue_1", "sent", times{sent: p("2026-11-02 11:00"), delivered: p("2026-11-02 11:01"), opened: p("2026-11-02 12:00"), clicked: p("2026-11-02 12:05")})
	delivery("d2", s.p1, "rescue_2", "sent", times{sent: p("2026-11-03 11:00"), delivered: p("2026-11-03 11:01"), machine: p("2026-11-03 11:02")})
	delivery("d3", s.p3, "rescue_1", "sent", times{sent: p("2026-11-02 11:00"), bounced: p("2026-11-02 11:01")})
	delivery("d4", s.p4, "rescue_1", "sent", times{sent: p("2026-11-03 09:00"), delivered: p("2026-11-03 09:01"), unsub: p("2026-11-03 10:00")})
	delivery("d5", s.p2, "rescue_1", "skipped", times{updated: p("2026-11-03 09:00")})
	delivery("d6", s.p3, "rescue_1", "sent", times{sent: p("2026-10-30 09:00"), delivered: p("2026-10-30 09:01"), opened: p("2026-10-30 10:00")})
	delivery("d7", s.p4, "rescue_1", "sent", times{sent: p("2026-10-31 09:00"), delivered: p("2026-10-31 09:01"), machine: p("2026-11-03 07:00")})

	exec(`INSERT INTO journey_conversions (workspace_id, workflow_id, run_id, journey_id, version, profile_id, node_id, revenue, at)
		VALUES ($1, 'run1', 'r', $2, 1, $3, 'rescue_2', 40, $4), ($1, 'run2', 'r', $2, 1, $5, NULL, 25, $6)`,
		e.WorkspaceID, j.ID, s.p1, at("2026-11-03 12:00"), s.p2, at("2026-11-02 10:20"))

	event := func(profile, typ, name, source string, ts time.Time, props string) {
		exec(`INSERT INTO events (workspace_id, message_id, type, name, profile_id, origin_profile_id, source, key_id, timestamp, received_at, properties, raw)
			VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $8, $9, '{}')`,
			e.WorkspaceID, uuid.NewString(), typ, name, profile, source, uuid.NewString(), ts, props)
	}
	// p1: browses the web, visits the store, clicks the rescue email, orders (first order, in the window).
	for _, h := range []string{"2026-11-01 09:00", "2026-11-02 09:00", "2026-11-02 09:30"} {
		event(s.p1, "page", "Product", "web", at(h), `{}`)
	}
	event(s.p1, "track", "Store Visit", "store", at("2026-11-02 15:00"), `{}`)
	event(s.p1, "track", "Email Opened", "parcours", at("2026-11-02 12:00"), `{"template": "cart-rescue-1"}`)
	event(s.p1, "track", "Email Clicked", "parcours", at("2026-11-02 12:05"), `{"template": "cart-rescue-1"}`)
	event(s.p1, "track", "Order Completed", "web", at("2026-11-03 12:00"), `{"total": 40}`)
	// p2: one page, a call, orders before any email.
	event(s.p2, "page", "Home", "web", at("2026-11-01 10:00"), `{}`)
	event(s.p2, "track", "Call", "call-centre", at("2026-11-02 09:00"), `{}`)
	event(s.p2, "track", "Order Completed", "call-centre", at("2026-11-02 10:20"), `{"total": 25}`)
	// p3: a customer since October: not new.
	event(s.p3, "track", "Order Completed", "web", at("2026-10-20 10:00"), `{"total": 10}`)
	event(s.p3, "track", "Order Completed", "web", at("2026-11-03 10:00"), `{"total": 10}`)
	// p4: pages, and an "open" by a mail privacy proxy only: new, but did not act.
	event(s.p4, "page", "Home", "web", at("2026-11-03 06:00"), `{}`)
	event(s.p4, "page", "Product", "web", at("2026-11-03 06:30"), `{}`)
	event(s.p4, "track", "Email Opened", "parcours", at("2026-11-03 07:00"), `{"template": "cart-rescue-1", "machine_open": true}`)
	event(s.p4, "track", "Order Completed", "web", at("2026-11-04 10:00"), `{"total": 15}`)
	return s
}

func TestJourneyReportMatchesHandCountedFigures(t *testing.T) {
	t.Parallel()
	s := seed(t)
	nodes := []string{"wait_order", "rescue_1", "wait_day", "rescue_2", "done"}
	r, err := report.NewStore(s.Pool).Journey(context.Background(), s.WorkspaceID, s.journeyID, "Abandoned cart rescue", nodes, s.window)
	if err != nil {
		t.Fatal(err)
	}
	want := report.Counts{Entered: 4, Sent: 4, Delivered: 3, Opened: 1, MachineOpened: 2, Clicked: 1, Bounced: 1, Unsubscribed: 1, Skipped: 1, Converted: 2, Revenue: 65}
	if r.Total.Counts != want {
		t.Fatalf("total\n got %+v\nwant %+v", r.Total.Counts, want)
	}
	if r.Total.Rates != (report.Rates{Delivery: 0.75, Open: 1.0 / 3, Click: 1.0 / 3, Bounce: 0.25, Unsubscribe: 1.0 / 3, Conversion: 0.5}) {
		t.Fatalf("rates %+v", r.Total.Rates)
	}
	byNode := map[string]report.Counts{}
	var order []string
	for _, n := range r.Nodes {
		byNode[n.Key] = n.Counts
		order = append(order, n.Key)
	}
	if len(order) != 5 || order[1] != "rescue_1" {
		t.Fatalf("node order %v", order)
	}
	if got, want := byNode["rescue_1"], (report.Counts{Entered: 3, Sent: 3, Delivered: 2, Opened: 1, MachineOpened: 1, Clicked: 1, Bounced: 1, Unsubscribed: 1, Skipped: 1}); got != want {
		t.Fatalf("rescue_1\n got %+v\nwant %+v", got, want)
	}
	if got, want := byNode["rescue_2"], (report.Counts{Entered: 1, Sent: 1, Delivered: 1, MachineOpened: 1, Converted: 1, Revenue: 40}); got != want {
		t.Fatalf("rescue_2\n got %+v\nwant %+v", got, want)
	}
	if byNode["wait_order"].Entered != 4 || byNode["done"].Entered != 2 {
		t.Fatalf("visits %+v", byNode)
	}
	if len(r.Days) != 2 || r.Days[0].Key != "2026-11-02" || r.Days[1].Key != "2026-11-03" {
		t.Fatalf("days %+v", r.Days)
	}
	if got, want := r.Days[0].Counts, (report.Counts{Entered: 3, Sent: 2, Delivered: 1, Opened: 1, Clicked: 1, Bounced: 1, Converted: 1, Revenue: 25}); got != want {
		t.Fatalf("2 November\n got %+v\nwant %+v", got, want)
	}
	if got, want := r.Days[1].Counts, (report.Counts{Entered: 1, Sent: 2, Delivered: 2, MachineOpened: 2, Unsubscribed: 1, Skipped: 1, Converted: 1, Revenue: 40}); got != want {
		t.Fatalf("3 November\n got %+v\nwant %+v", got, want)
	}
	// Days follow the zone asked for: in Auckland (UTC+13) the rescue emails
	// sent at 11:00 UTC went out at midnight, the next day.
	nz, _ := time.LoadLocation("Pacific/Auckland")
	w := s.window
	w.Zone = nz
	r, err = report.NewStore(s.Pool).Journey(context.Background(), s.WorkspaceID, s.journeyID, "", nodes, w)
	if err != nil || len(r.Days) != 3 || r.Days[0].Key != "2026-11-02" || r.Days[0].Entered != 3 || r.Days[0].Sent != 0 ||
		r.Days[2].Key != "2026-11-04" || r.Days[2].Sent != 1 || r.Days[2].Revenue != 40 {
		t.Fatalf("days in Auckland %+v %v", r.Days, err)
	}
}

func TestNewCustomersWhoActedOnJourneyEmails(t *testing.T) {
	t.Parallel()
	s := seed(t)
	r, err := report.NewStore(s.Pool).NewCustomers(context.Background(), s.WorkspaceID, "Order Completed", 7*24*time.Hour, s.window)
	if err != nil {
		t.Fatal(err)
	}
	// New: p1, p2, p4 (p3 ordered in October). Acted: p1 only (clicked); p4's open was a machine's.
	if r.NewCustomers != 3 || r.Acted != 1 || len(r.Customers) != 1 || r.Customers[0].ProfileID != s.p1 || r.Customers[0].Action != "clicked" || r.Customers[0].Revenue != 40 {
		t.Fatalf("report %+v", r)
	}
	if len(r.ByJourney) != 1 || r.ByJourney[0].JourneyName != "Abandoned cart rescue" || r.ByJourney[0].Customers != 1 || r.ByJourney[0].Revenue != 40 {
		t.Fatalf("by journey %+v", r.ByJourney)
	}
	// A 12-hour lookback no longer reaches p1's click (almost 24 h before the order).
	r, err = report.NewStore(s.Pool).NewCustomers(context.Background(), s.WorkspaceID, "Order Completed", 12*time.Hour, s.window)
	if err != nil || r.Acted != 0 {
		t.Fatalf("12-hour lookback: %+v %v", r, err)
	}
}

func TestTouchpointsBeforeConversion(t *testing.T) {
	t.Parallel()
	s := seed(t)
	r, err := report.NewStore(s.Pool).Touchpoints(context.Background(), s.WorkspaceID, "Order Completed", 30*24*time.Hour, s.window, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []report.Touchpoint{
		{Touchpoint: "web · page views", Prospects: 3, Occurrences: 6, Share: 1},
		{Touchpoint: "call-centre · Call", Prospects: 1, Occurrences: 1, Share: 1.0 / 3},
		{Touchpoint: "email · cart-rescue-1 (clicked)", Prospects: 1, Occurrences: 1, Share: 1.0 / 3},
		{Touchpoint: "email · cart-rescue-1 (opened)", Prospects: 1, Occurrences: 1, Share: 1.0 / 3},
		{Touchpoint: "store · Store Visit", Prospects: 1, Occurrences: 1, Share: 1.0 / 3},
	}
	if r.Converted != 3 || len(r.Touchpoints) != len(want) {
		t.Fatalf("report %+v", r)
	}
	for i := range want {
		if r.Touchpoints[i] != want[i] {
			t.Fatalf("touchpoint %d\n got %+v\nwant %+v", i, r.Touchpoints[i], want[i])
		}
	}
}

package demo_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parcours/parcours/pkg/demo"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/workspace"
)

func TestBuildIsTheSameShopWhateverTheTime(t *testing.T) {
	t.Parallel()
	monday := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	later := monday.Add(50*time.Hour + 17*time.Minute)
	a, b := demo.Build(monday), demo.Build(later)
	if len(a.Records) != len(b.Records) || len(a.EmailEvents) != len(b.EmailEvents) || len(a.Records) < 1000 {
		t.Fatalf("%d/%d records, %d/%d email events", len(a.Records), len(b.Records), len(a.EmailEvents), len(b.EmailEvents))
	}
	ids := map[string]bool{}
	for i, r := range a.Records {
		id := r.Body["messageId"].(string)
		if ids[id] {
			t.Fatalf("messageId %s used twice", id)
		}
		ids[id] = true
		if other := b.Records[i].Body["messageId"]; other != id {
			t.Fatalf("record %d is %s at one time, %s at another: a second load would duplicate it", i, id, other)
		}
		if shift := b.Records[i].At.Sub(r.At); shift != later.Sub(monday) {
			t.Fatalf("record %s moved by %s, want %s", id, shift, later.Sub(monday))
		}
		if !r.At.Before(monday) || r.At.Before(monday.Add(-7*24*time.Hour)) {
			t.Fatalf("record %s at %s, outside the 7 days before %s", id, r.At, monday)
		}
	}
}

// counts reads how many rows the demo touches, table by table.
func counts(t *testing.T, pool *pgxpool.Pool, ws string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"events", "profiles", "identities", "profile_merges", "segments", "segment_memberships",
		"journeys", "journey_versions", "templates", "rejected_records"} {
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table+` WHERE workspace_id = $1`, ws).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

func TestLoadTheShopTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	ws, _, _, err := workspace.NewStore(pool).Bootstrap(ctx, "default", "Default workspace")
	if err != nil {
		t.Fatal(err)
	}
	l := demo.New(pool)
	now := time.Now()
	started := time.Now()
	res, err := l.Load(ctx, ws.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(started)
	t.Logf("first load: %s, %d records, %d merges, %d email events", took, res.Accepted, res.Merges, res.EmailEvents)
	if took > 30*time.Second {
		t.Errorf("the load took %s; it must stay well under a minute", took)
	}
	if res.Accepted != res.Records || res.Duplicates != 0 || res.Rejected != 0 || !res.Added() {
		t.Errorf("first load: %+v", res)
	}
	for _, src := range []string{demo.SourceWeb, demo.SourceStore, demo.SourceCallCentre} {
		if res.BySource[src] == 0 {
			t.Errorf("no records from %s: %v", src, res.BySource)
		}
	}
	if res.Merges < 50 || res.EmailEvents == 0 {
		t.Errorf("merges %d, email events %d", res.Merges, res.EmailEvents)
	}

	// 200 people, each one profile in the end: identity resolution joined
	// every visitor, customer and caller that is the same person.
	want := map[string]int{profile.StateAnonymous: 70, profile.StateKnown: 70, profile.StateOmnichannel: 60}
	for state, n := range want {
		if res.Profiles[state] != n {
			t.Errorf("%d %s profiles, want %d (all: %v)", res.Profiles[state], state, n, res.Profiles)
		}
	}
	profiles := profile.NewStore(pool)
	// A shop customer who browsed anonymously, then signed in: one profile
	// with the website's cookie and the shop's customer number.
	id, err := profiles.Lookup(ctx, ws.ID, "email", "ines.michel@example.com")
	if err != nil {
		t.Fatal(err)
	}
	v, err := profiles.Get(ctx, ws.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, i := range v.Identities {
		types = append(types, i.Type)
	}
	if v.State != profile.StateOmnichannel || !slices.Contains(types, "anonymous_id") || !slices.Contains(types, "user_id") ||
		len(v.Merges) == 0 || !slices.Equal(v.Computed.Sources, []string{"store", "web"}) {
		t.Errorf("web and store customer: state %s, identities %v, %d merges, sources %v", v.State, types, len(v.Merges), v.Computed.Sources)
	}
	// A caller the shop knows by phone: the call joined the customer.
	id, err = profiles.Lookup(ctx, ws.ID, "phone", "+33639980165")
	if err != nil {
		t.Fatal(err)
	}
	if v, err = profiles.Get(ctx, ws.ID, id); err != nil {
		t.Fatal(err)
	}
	if v.State != profile.StateOmnichannel || !slices.Equal(v.Computed.Sources, []string{"call_centre", "store"}) || v.Computed.EventCounts["Call Logged"] == 0 {
		t.Errorf("caller and customer: state %s, sources %v, events %v", v.State, v.Computed.Sources, v.Computed.EventCounts)
	}

	// The records span the week before now.
	var first, last time.Time
	if err := pool.QueryRow(ctx, `SELECT min(timestamp), max(timestamp) FROM events WHERE workspace_id = $1 AND key_id = $2`, ws.ID, demo.KeyID).Scan(&first, &last); err != nil {
		t.Fatal(err)
	}
	if last.Sub(first) < 6*24*time.Hour || first.Before(now.Add(-7*24*time.Hour)) || last.After(now) {
		t.Errorf("records from %s to %s, want a spread over the 7 days before %s", first, last, now)
	}

	// Every demo segment has members; loyal customers are customers.
	sizes := map[string]int{}
	for _, s := range res.Segments {
		if !s.Created || s.Members == 0 {
			t.Errorf("segment %s: created %v, %d members", s.Slug, s.Created, s.Members)
		}
		sizes[s.Slug] = s.Members
	}
	t.Logf("segment sizes %v", sizes)
	if len(sizes) != 4 || sizes["loyal-customers"] >= sizes["customers"] {
		t.Errorf("segment sizes %v", sizes)
	}
	var members int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM segment_memberships m JOIN segments s ON s.id = m.segment_id
		WHERE m.workspace_id = $1 AND s.slug = 'customers' AND m.exited_at IS NULL`, ws.ID).Scan(&members); err != nil {
		t.Fatal(err)
	}
	if members != sizes["customers"] {
		t.Errorf("customers: %d memberships, size %d", members, sizes["customers"])
	}

	// The four scenarios are live journeys, and the templates they send exist.
	live, err := journey.NewStore(pool, 0).LiveJourneys(ctx, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, j := range live {
		names = append(names, j.Definition.Name)
	}
	slices.Sort(names)
	if want := []string{"Newsletter, resent to non-openers (demo)", "Rescue abandoned carts (demo)", "Thank new customers (demo)", "Welcome new sign-ups (demo)"}; !slices.Equal(names, want) {
		t.Errorf("live journeys %q, want %q", names, want)
	}
	if len(res.Templates) != 7 || slices.ContainsFunc(res.Templates, func(t demo.TemplateResult) bool { return !t.Created }) {
		t.Errorf("templates %+v", res.Templates)
	}

	// Loading again adds nothing and changes nothing.
	before := counts(t, pool, ws.ID)
	again, err := l.Load(ctx, ws.ID, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if again.Added() || again.Accepted != 0 || again.Duplicates != res.Records || again.Merges != 0 {
		t.Errorf("second load added something: %+v", again)
	}
	for k, v := range again.Profiles {
		if res.Profiles[k] != v {
			t.Errorf("second load: %d %s profiles, was %d", v, k, res.Profiles[k])
		}
	}
	if after := counts(t, pool, ws.ID); !mapsEqual(before, after) {
		t.Errorf("second load changed rows:\nbefore %v\nafter  %v", before, after)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

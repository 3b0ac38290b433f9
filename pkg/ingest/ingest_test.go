package ingest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/workspace"
)

type fixture struct {
	pool   *pgxpool.Pool
	store  *ingest.Store
	origin ingest.Origin
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pool := pgtest.NewPool(t)
	ws := workspace.NewStore(pool)
	w, keys, _, err := ws.Bootstrap(context.Background(), "default", "Default")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{pool: pool, store: ingest.NewStore(pool), origin: ingest.Origin{WorkspaceID: w.ID, KeyID: keys[1].ID, Source: "web"}}
}

// msg builds a record as the API would after parsing.
func msg(typ, id, anon, user, email, event string, at time.Time) events.Message {
	m := events.Message{
		Type: typ, MessageID: id, AnonymousID: anon, UserID: user, Event: event,
		Properties: map[string]any{}, Traits: map[string]any{}, Context: map[string]any{},
		Timestamp: at, ReceivedAt: at, Raw: []byte(`{}`),
	}
	if email != "" {
		m.Traits["email"] = email
	}
	if typ == events.TypeAlias {
		m.PreviousID, m.AnonymousID = anon, ""
	}
	if typ == events.TypePage {
		m.Name = "Home"
	}
	return m
}

// snapshot is the observable identity state: for each live profile, its
// identities and its events.
type snapshot map[string]string // profile id -> "identities | events"

func (f *fixture) snapshot(t *testing.T) snapshot {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `
		SELECT p.id::text,
		       coalesce((SELECT string_agg(type || ':' || value, ',' ORDER BY type, value) FROM identities i WHERE i.workspace_id = p.workspace_id AND i.profile_id = p.id), ''),
		       coalesce((SELECT string_agg(message_id, ',' ORDER BY message_id) FROM events e WHERE e.workspace_id = p.workspace_id AND e.profile_id = p.id AND e.source <> 'parcours'), ''),
		       (p.computed->>'event_count')::int
		FROM profiles p WHERE p.workspace_id = $1 AND p.merged_into IS NULL`, f.origin.WorkspaceID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	s := snapshot{}
	for rows.Next() {
		var id, ids, evs string
		var count int
		if err := rows.Scan(&id, &ids, &evs, &count); err != nil {
			t.Fatal(err)
		}
		if n := len(strings.Split(evs, ",")); evs != "" && n != count {
			t.Errorf("profile %s counts %d events but holds %d", id, count, n)
		}
		s[id] = ids + " | " + evs
	}
	return s
}

// Random interleavings of identify, alias, page and track for a few people,
// sent in random batches by concurrent clients with retries, must end with:
// one profile per email, every identity of a linked person on it, every
// record stored exactly once on a live profile.
func TestRandomInterleavingsKeepOneProfilePerPerson(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			r := rand.New(rand.NewPCG(seed, seed*7))
			const people = 4
			base := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
			var all []events.Message
			for i := 0; i < 60; i++ {
				p := r.IntN(people)
				anon := fmt.Sprintf("anon-%d-%d", p, r.IntN(2))
				user := fmt.Sprintf("user-%d", p)
				email := fmt.Sprintf("Person%d@Example.com", p)
				at := base.Add(time.Duration(i) * time.Minute)
				id := fmt.Sprintf("m-%d", i)
				switch r.IntN(4) {
				case 0:
					all = append(all, msg(events.TypePage, id, anon, "", "", "", at))
				case 1:
					all = append(all, msg(events.TypeIdentify, id, anon, user, email, "", at))
				case 2:
					all = append(all, msg(events.TypeAlias, id, anon, user, "", "", at))
				default:
					all = append(all, msg(events.TypeTrack, id, "", user, "", "Order Completed", at))
				}
				if r.IntN(6) == 0 && i > 0 { // a client retry of an earlier record
					all = append(all, all[r.IntN(len(all))])
				}
			}
			// Random batches, sent by three concurrent clients.
			var batches [][]events.Message
			for rest := all; len(rest) > 0; {
				n := min(1+r.IntN(5), len(rest))
				batches = append(batches, rest[:n])
				rest = rest[n:]
			}
			var wg sync.WaitGroup
			errs := make(chan error, len(batches))
			for c := 0; c < 3; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := c; i < len(batches); i += 3 {
						if _, err := f.store.Ingest(context.Background(), f.origin, batches[i], nil); err != nil {
							errs <- err
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			distinct := map[string]bool{}
			for _, m := range all {
				distinct[m.MessageID] = true
			}
			ctx := context.Background()
			var stored, onLive int
			if err := f.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE p.merged_into IS NULL) FROM events e JOIN profiles p ON p.workspace_id = e.workspace_id AND p.id = e.profile_id WHERE e.workspace_id = $1 AND e.source <> 'parcours'`, f.origin.WorkspaceID).Scan(&stored, &onLive); err != nil {
				t.Fatal(err)
			}
			if stored != len(distinct) || onLive != stored {
				t.Fatalf("%d records sent (distinct), %d stored, %d on live profiles", len(distinct), stored, onLive)
			}
			// One profile per email, and no profile with two.
			var profilesPerEmail, emailsPerProfile int
			if err := f.pool.QueryRow(ctx, `SELECT coalesce(max(n), 0) FROM (SELECT count(DISTINCT profile_id) n FROM identities WHERE workspace_id = $1 AND type = 'email' GROUP BY value) x`, f.origin.WorkspaceID).Scan(&profilesPerEmail); err != nil {
				t.Fatal(err)
			}
			if err := f.pool.QueryRow(ctx, `SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM identities WHERE workspace_id = $1 AND type = 'email' GROUP BY profile_id) x`, f.origin.WorkspaceID).Scan(&emailsPerProfile); err != nil {
				t.Fatal(err)
			}
			if profilesPerEmail > 1 || emailsPerProfile > 1 {
				t.Fatalf("profiles per email %d, emails per profile %d: want 1 and 1", profilesPerEmail, emailsPerProfile)
			}
			// Every user id ends on the profile of its person's email (they were
			// linked by an identify if one was sent), and identities point at live profiles.
			var stray int
			if err := f.pool.QueryRow(ctx, `
				SELECT count(*) FROM identities u JOIN identities e
				  ON e.workspace_id = u.workspace_id AND e.type = 'email' AND e.value = 'person' || substr(u.value, 6) || '@example.com'
				WHERE u.workspace_id = $1 AND u.type = 'user_id' AND u.profile_id <> e.profile_id`, f.origin.WorkspaceID).Scan(&stray); err != nil {
				t.Fatal(err)
			}
			if stray > 0 {
				t.Fatalf("%d user ids are not on their person's profile", stray)
			}
			var dead int
			if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM identities i JOIN profiles p ON p.workspace_id = i.workspace_id AND p.id = i.profile_id WHERE i.workspace_id = $1 AND p.merged_into IS NOT NULL`, f.origin.WorkspaceID).Scan(&dead); err != nil {
				t.Fatal(err)
			}
			if dead > 0 {
				t.Fatalf("%d identities point at merged profiles", dead)
			}
			f.snapshot(t) // checks computed event counts match held events
		})
	}
}

// A merge followed by its undo restores the two earlier profiles: their
// identities, their events and their counts.
func TestUnmergeRestoresTheEarlierProfiles(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	must := func(ms ...events.Message) ingest.Result {
		t.Helper()
		res, err := f.store.Ingest(ctx, f.origin, ms, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	must(msg(events.TypePage, "p1", "cookie-a", "", "", "", at), msg(events.TypePage, "p2", "cookie-a", "", "", "", at.Add(time.Minute)))
	must(msg(events.TypeIdentify, "i1", "cookie-b", "u1", "ana@example.com", "", at.Add(2*time.Minute)))
	must(msg(events.TypeTrack, "t1", "", "u1", "", "Order Completed", at.Add(3*time.Minute)))
	before := f.snapshot(t)
	if len(before) != 2 {
		t.Fatalf("want 2 profiles before the merge, got %v", before)
	}

	if res := must(msg(events.TypeAlias, "al1", "cookie-a", "u1", "", "", at.Add(4*time.Minute))); res.Merges != 1 {
		t.Fatalf("alias caused %d merges, want 1", res.Merges)
	}
	merged := f.snapshot(t)
	if len(merged) != 1 {
		t.Fatalf("want 1 profile after the merge, got %v", merged)
	}
	var survivor, mergeID string
	if err := f.pool.QueryRow(ctx, `SELECT survivor_id::text, id::text FROM profile_merges WHERE workspace_id = $1`, f.origin.WorkspaceID).Scan(&survivor, &mergeID); err != nil {
		t.Fatal(err)
	}
	// The merge is on the survivor's timeline as an internal event.
	var mergeEvents int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE workspace_id = $1 AND profile_id = $2 AND name = 'Profile Merged' AND properties->>'merge_id' = $3`,
		f.origin.WorkspaceID, survivor, mergeID).Scan(&mergeEvents); err != nil || mergeEvents != 1 {
		t.Fatalf("Profile Merged events: %d %v", mergeEvents, err)
	}
	restored, err := f.store.Unmerge(ctx, f.origin.WorkspaceID, survivor, mergeID)
	if err != nil {
		t.Fatal(err)
	}
	after := f.snapshot(t)
	// The alias record itself stays with the survivor, which it was attached to.
	want := snapshot{}
	for id, v := range before {
		if id == survivor {
			v = strings.Replace(v, " | ", " | al1,", 1)
			parts := strings.SplitN(v, " | ", 2)
			evs := strings.Split(parts[1], ",")
			sort.Strings(evs)
			v = parts[0] + " | " + strings.Join(evs, ",")
		}
		want[id] = v
	}
	if fmt.Sprint(after) != fmt.Sprint(want) {
		t.Fatalf("after unmerge:\n%v\nwant:\n%v", after, want)
	}
	if _, ok := after[restored]; !ok {
		t.Fatalf("restored profile %s not live", restored)
	}
	if _, err := f.store.Unmerge(ctx, f.origin.WorkspaceID, survivor, mergeID); err != ingest.ErrMergeAlreadyUndone {
		t.Fatalf("second unmerge: %v, want ErrMergeAlreadyUndone", err)
	}
}

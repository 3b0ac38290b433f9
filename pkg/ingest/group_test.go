package ingest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/ingest"
)

// Concurrent single calls committed in groups: each answer is its own (a
// retry is a duplicate, a new record is accepted), everything is stored
// once, and identities still resolve to one profile per person.
func TestGroupCommitKeepsEachCallsOwnResult(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	g := ingest.NewGroupCommitter(context.Background(), f.store)
	at := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	type answer struct {
		id  string
		res ingest.Result
		err error
	}
	answers := make(chan answer, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("m-%d", i%150) // 50 retries of earlier ids
			m := msg(events.TypeIdentify, id, fmt.Sprintf("anon-%d", i%150), fmt.Sprintf("user-%d", i%10), fmt.Sprintf("p%d@example.com", i%10), "", at)
			res, err := g.Ingest(context.Background(), f.origin, []events.Message{m}, nil)
			answers <- answer{id, res, err}
		}()
	}
	wg.Wait()
	close(answers)
	accepted := map[string]int{}
	dups := 0
	for a := range answers {
		if a.err != nil {
			t.Fatal(a.err)
		}
		if a.res.Accepted+a.res.Duplicates != 1 {
			t.Fatalf("answer for %s: %+v", a.id, a.res)
		}
		accepted[a.id] += a.res.Accepted
		dups += a.res.Duplicates
	}
	if len(accepted) != 150 || dups != 50 {
		t.Fatalf("%d ids, %d duplicates; want 150 and 50", len(accepted), dups)
	}
	for id, n := range accepted {
		if n != 1 {
			t.Fatalf("%s accepted %d times", id, n)
		}
	}
	var stored, profiles int
	ctx := context.Background()
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE workspace_id = $1 AND source = 'web'`, f.origin.WorkspaceID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM profiles WHERE workspace_id = $1 AND merged_into IS NULL`, f.origin.WorkspaceID).Scan(&profiles); err != nil {
		t.Fatal(err)
	}
	if stored != 150 || profiles != 10 {
		t.Fatalf("%d events and %d profiles; want 150 and 10", stored, profiles)
	}
}

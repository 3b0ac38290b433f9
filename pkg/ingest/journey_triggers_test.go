package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/events"
)

// Records that trigger a live journey are queued for it in the transaction
// that stores them, and only those: not records no journey starts on, not
// those of a paused journey, not imports.
func TestTriggeringRecordsAreQueuedForTheirJourneys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	ws := f.origin.WorkspaceID
	for _, j := range []struct{ status, event string }{{"live", "Signed Up"}, {"paused", "Order Completed"}} {
		if _, err := f.pool.Exec(ctx, `
			WITH j AS (INSERT INTO journeys (workspace_id, name, status, draft, published_version) VALUES ($1, $2, $3, '{}', 1) RETURNING id)
			INSERT INTO journey_versions (workspace_id, journey_id, version, definition)
			SELECT $1, j.id, 1, jsonb_build_object('trigger', jsonb_build_object('type', 'event', 'event', $2::text)) FROM j`,
			ws, j.event, j.status); err != nil {
			t.Fatal(err)
		}
	}
	queued := func() map[string]bool {
		rows, err := f.pool.Query(ctx, `SELECT e.message_id FROM journey_triggers t JOIN events e ON e.workspace_id = t.workspace_id AND e.id = t.event_id WHERE t.kind = 'event'`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			out[id] = true
		}
		return out
	}
	now := time.Now().UTC()
	api := f.origin
	api.Journeys = true
	if _, err := f.store.Ingest(ctx, api, []events.Message{
		msg(events.TypeTrack, "m1", "", "ana", "", "Signed Up", now),
		msg(events.TypeTrack, "m2", "", "ana", "", "Product Viewed", now),
		msg(events.TypeTrack, "m3", "", "ana", "", "Order Completed", now), // its journey is paused
	}, nil); err != nil {
		t.Fatal(err)
	}
	// An import of history (Journeys unset) starts nothing.
	if _, err := f.store.Ingest(ctx, f.origin, []events.Message{msg(events.TypeTrack, "m4", "", "bob", "", "Signed Up", now)}, nil); err != nil {
		t.Fatal(err)
	}
	if got := queued(); len(got) != 1 || !got["m1"] {
		t.Fatalf("queued starts %v, want only m1", got)
	}
}

package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/ingest"
)

func TestIngestInternalRecordsOnKnownProfilesOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	// ana and an anonymous visitor, then merged by an alias: the merged
	// profile's id now leads to the survivor (called ana below).
	res, err := f.store.Ingest(ctx, f.origin, []events.Message{
		msg(events.TypeIdentify, "m1", "", "ana", "ana@example.com", "", at),
		msg(events.TypePage, "m2", "anon-1", "", "", "", at),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ana, visitor := res.Stored[0].ProfileID, res.Stored[1].ProfileID
	if _, err := f.store.Ingest(ctx, f.origin, []events.Message{msg(events.TypeAlias, "m3", "anon-1", "ana", "", "", at.Add(time.Minute))}, nil); err != nil {
		t.Fatal(err)
	}
	// The survivor of the merge, whichever it is.
	if err := f.pool.QueryRow(ctx, `SELECT id::text, CASE WHEN id = $2 THEN $3 ELSE $2 END FROM profiles WHERE workspace_id = $1 AND id IN ($2, $3) AND merged_into IS NULL`,
		f.origin.WorkspaceID, ana, visitor).Scan(&ana, &visitor); err != nil {
		t.Fatal(err)
	}
	computed := func() string {
		var c string
		if err := f.pool.QueryRow(ctx, `SELECT computed::text FROM profiles WHERE workspace_id = $1 AND id = $2`, f.origin.WorkspaceID, ana).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	before := computed()
	opened := msg(events.TypeTrack, "sendgrid/sg:1", "", "", "", "Email Opened", at.Add(time.Hour))
	opened.Properties["machine_open"] = true
	evs := []ingest.InternalEvent{
		{ProfileID: ana, Message: opened},
		{ProfileID: visitor, Message: msg(events.TypeTrack, "sendgrid/sg:2", "", "", "", "Email Clicked", at.Add(time.Hour))},
		{ProfileID: "00000000-0000-0000-0000-000000000001", Message: msg(events.TypeTrack, "sendgrid/sg:3", "", "", "", "Email Opened", at)},
	}
	for i := 0; i < 3; i++ {
		res, err := f.store.IngestInternal(ctx, f.origin.WorkspaceID, evs)
		if err != nil {
			t.Fatal(err)
		}
		wantAccepted, wantDup := 2, 0
		if i > 0 {
			wantAccepted, wantDup = 0, 2
		}
		if res.Accepted != wantAccepted || res.Duplicates != wantDup || res.Suppressed != 1 {
			t.Fatalf("call %d: %+v", i, res)
		}
		if i == 0 {
			if len(res.Stored) != 2 || res.Stored[0].ProfileID != ana || res.Stored[1].ProfileID != ana {
				t.Fatalf("stored %+v, want both on the survivor of the merge", res.Stored)
			}
			if len(res.Changes) != 1 || res.Changes[0].ProfileID != ana || len(res.Changes[0].Events) != 2 || res.Changes[0].Traits {
				t.Fatalf("changes %+v", res.Changes)
			}
		}
	}
	var n int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE workspace_id = $1 AND profile_id = $2 AND source = 'parcours' AND name LIKE 'Email %'`,
		f.origin.WorkspaceID, ana).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d internal events on ana, want 2", n)
	}
	if after := computed(); after != before {
		t.Fatalf("computed traits changed by internal events:\n%s\n%s", before, after)
	}
}

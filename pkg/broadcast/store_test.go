package broadcast_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/parcours/parcours/pkg/broadcast"
	"github.com/parcours/parcours/pkg/channel/channeltest"
)

// setup is a workspace with an email channel, a template and a segment of n
// members who entered an hour ago.
func setup(t *testing.T, n int) (*channeltest.Env, *broadcast.Store, string) {
	t.Helper()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "news", "News", "<p>News</p>", "News")
	var segID string
	if err := e.Pool.QueryRow(ctx, `INSERT INTO segments (workspace_id, slug, name, rule, deps) VALUES ($1, 'all', 'All', 'true', '{}') RETURNING id::text`,
		e.WorkspaceID).Scan(&segID); err != nil {
		t.Fatal(err)
	}
	for range n {
		p := e.Profile(t, uuid.NewString()+"@example.com", nil)
		if _, err := e.Pool.Exec(ctx, `INSERT INTO segment_memberships (workspace_id, segment_id, profile_id, entered_at) VALUES ($1, $2, $3, now() - interval '1 hour')`,
			e.WorkspaceID, segID, p); err != nil {
			t.Fatal(err)
		}
	}
	return e, broadcast.NewStore(e.Pool), segID
}

// The audience is the members at the occurrence's start, copied page by
// page; a retried page copies nothing twice, and a later start of the same
// occurrence keeps the first one's time.
func TestSnapshotIsTheAudienceAtTheStartPageByPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, st, segID := setup(t, 25)
	b, err := st.Create(ctx, e.WorkspaceID, broadcast.Input{Name: "N", Segment: "all", Template: "news"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	asOf := time.Now().UTC()
	r, err := st.Start(ctx, e.WorkspaceID, b.ID, broadcast.Once, "wf", "run", asOf)
	if err != nil || !r.Proceed || !r.AsOf.Equal(asOf.Truncate(time.Microsecond)) {
		t.Fatalf("start: %+v %v", r, err)
	}
	// Someone enters after the start: not in this occurrence's audience.
	late := e.Profile(t, "late@example.com", nil)
	if _, err := e.Pool.Exec(ctx, `INSERT INTO segment_memberships (workspace_id, segment_id, profile_id, entered_at) VALUES ($1, $2, $3, now() + interval '1 minute')`,
		e.WorkspaceID, segID, late); err != nil {
		t.Fatal(err)
	}
	again, err := st.Start(ctx, e.WorkspaceID, b.ID, broadcast.Once, "wf", "run", asOf.Add(time.Hour))
	if err != nil || !again.Proceed || !again.AsOf.Equal(r.AsOf) {
		t.Fatalf("start again: %+v %v, want the first as-of time", again, err)
	}
	after, seq := "", 0
	var pages []int
	for {
		next, added, err := st.Snapshot(ctx, e.WorkspaceID, b.ID, broadcast.Once, after, seq, 10, r.AsOf)
		if err != nil {
			t.Fatal(err)
		}
		// The same page again (a retried activity): the same answer.
		next2, added2, err := st.Snapshot(ctx, e.WorkspaceID, b.ID, broadcast.Once, after, seq, 10, r.AsOf)
		if err != nil || next2 != next || added2 != added {
			t.Fatalf("retried page: %q %d, first %q %d (%v)", next2, added2, next, added, err)
		}
		pages = append(pages, added)
		seq += added
		if next == "" {
			break
		}
		after = next
	}
	if len(pages) != 3 || seq != 25 {
		t.Fatalf("pages %v, want 10, 10, 5", pages)
	}
	rs, err := st.Batch(ctx, e.WorkspaceID, b.ID, broadcast.Once, 0, 100)
	if err != nil || len(rs) != 25 {
		t.Fatalf("%d recipients (%v)", len(rs), err)
	}
	for i, r := range rs {
		if r.Seq != i || r.ProfileID == late {
			t.Fatalf("recipient %d: %+v", i, r)
		}
	}
	// Finished: a duplicate start does not run it again.
	if err := st.Finish(ctx, e.WorkspaceID, b.ID, broadcast.Once, broadcast.OccurrenceSent, ""); err != nil {
		t.Fatal(err)
	}
	if r, err := st.Start(ctx, e.WorkspaceID, b.ID, broadcast.Once, "wf2", "run2", time.Now()); err != nil || r.Proceed {
		t.Fatalf("start after the end: %+v %v", r, err)
	}
	got, err := st.Get(ctx, e.WorkspaceID, b.ID)
	if err != nil || got.Status != broadcast.StatusSent || got.Occurrences[0].Counts.Recipients != 25 || got.Occurrences[0].Counts.Pending != 25 {
		t.Fatalf("broadcast %+v %v", got, err)
	}
	if _, _, err := st.Cancel(ctx, e.WorkspaceID, b.ID); !errors.Is(err, broadcast.ErrFinished) {
		t.Fatalf("cancel after sent: %v", err)
	}
}

// Two recipients with one address: the first to claim it owns it, on
// every retry.
func TestClaimAddressesFirstComeOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, st, _ := setup(t, 0)
	b, err := st.Create(ctx, e.WorkspaceID, broadcast.Input{Name: "N", Segment: "all", Template: "news"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Start(ctx, e.WorkspaceID, b.ID, broadcast.Once, "wf", "run", time.Now()); err != nil {
		t.Fatal(err)
	}
	p1, p2, p3 := uuid.NewString(), uuid.NewString(), uuid.NewString()
	h1, h2 := []byte("address-1"), []byte("address-2")
	ok, err := st.ClaimAddresses(ctx, e.WorkspaceID, b.ID, broadcast.Once, []string{p1, p2, p3}, [][]byte{h1, h2, h1})
	if err != nil || !ok[0] || !ok[1] || ok[2] {
		t.Fatalf("first claim: %v %v", ok, err)
	}
	ok, err = st.ClaimAddresses(ctx, e.WorkspaceID, b.ID, broadcast.Once, []string{p3, p1}, [][]byte{h1, h1})
	if err != nil || ok[0] || !ok[1] {
		t.Fatalf("retry: %v %v", ok, err)
	}
}

// A segment deleted before an occurrence leaves it nothing to send to: the
// snapshot says so instead of sending to nobody.
func TestSnapshotOfADeletedSegment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, st, segID := setup(t, 2)
	b, err := st.Create(ctx, e.WorkspaceID, broadcast.Input{Name: "N", Segment: "all", Template: "news"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Start(ctx, e.WorkspaceID, b.ID, broadcast.Once, "wf", "run", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Pool.Exec(ctx, `DELETE FROM segments WHERE workspace_id = $1 AND id = $2`, e.WorkspaceID, segID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Snapshot(ctx, e.WorkspaceID, b.ID, broadcast.Once, "", 0, 10, time.Now()); !errors.Is(err, broadcast.ErrSegmentGone) {
		t.Fatalf("snapshot: %v, want ErrSegmentGone", err)
	}
}

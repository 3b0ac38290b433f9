package ingest_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/ingest"
)

func TestKeyLimiterIsATokenBucketPerKey(t *testing.T) {
	t.Parallel()
	l := ingest.NewKeyLimiter(100, 500)
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	if ok, _ := l.Take("k1", 500, t0); !ok {
		t.Fatal("a full bucket refused its burst")
	}
	ok, wait := l.Take("k1", 50, t0)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("an empty bucket: ok=%v wait=%v, want a refusal for 0.5s", ok, wait)
	}
	if ok, _ := l.Take("k2", 1, t0); !ok {
		t.Fatal("another key was held back")
	}
	if ok, _ := l.Take("k1", 50, t0.Add(500*time.Millisecond)); !ok {
		t.Fatal("the bucket did not refill at the rate")
	}
	// A call larger than the burst passes on a full bucket and empties it;
	// the key is not locked out for the rest.
	t1 := t0.Add(time.Hour)
	if ok, _ := l.Take("k1", 2000, t1); !ok {
		t.Fatal("a call larger than the burst never passes")
	}
	if ok, wait := l.Take("k1", 1, t1); ok || wait != 10*time.Millisecond {
		t.Fatalf("right after a call larger than the burst: ok=%v wait=%v, want a refusal for 10ms", ok, wait)
	}
	if ok, _ := l.Take("k1", 1, t1.Add(10*time.Millisecond)); !ok {
		t.Fatal("the bucket did not refill after a call larger than the burst")
	}
	// Zero turns it off.
	var off *ingest.KeyLimiter = ingest.NewKeyLimiter(0, 500)
	for range 10 {
		if ok, _ := off.Take("k", 1_000_000, t0); !ok {
			t.Fatal("a limiter of rate 0 refused")
		}
	}
}

func TestProfileCapCountsEachIdentifierOverASlidingMinute(t *testing.T) {
	t.Parallel()
	p := ingest.NewProfileCap(10)
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	rec := func(user, anon string) *events.Message { return &events.Message{UserID: user, AnonymousID: anon} }
	for i := range 10 {
		if ok, _ := p.Admit("ws", rec("", "a1"), t0.Add(time.Duration(i)*time.Second)); !ok {
			t.Fatalf("record %d under the cap refused", i)
		}
	}
	if ok, field := p.Admit("ws", rec("", "a1"), t0.Add(20*time.Second)); ok || field != "anonymousId" {
		t.Fatalf("the 11th record of the minute: ok=%v field=%q", ok, field)
	}
	// The same value elsewhere is someone else: another workspace, or a userId.
	if ok, _ := p.Admit("other", rec("", "a1"), t0.Add(20*time.Second)); !ok {
		t.Fatal("another workspace's a1 was held back")
	}
	if ok, _ := p.Admit("ws", rec("a1", ""), t0.Add(20*time.Second)); !ok {
		t.Fatal("userId a1 was held back by anonymousId a1")
	}
	// A record is refused if any of its identifiers is over the cap.
	if ok, field := p.Admit("ws", rec("fresh", "a1"), t0.Add(30*time.Second)); ok || field != "anonymousId" {
		t.Fatalf("a fresh userId with a hammered anonymousId: ok=%v field=%q", ok, field)
	}
	// Sliding: 90 s in, half of the last minute still counts (5 of 10).
	for i := range 5 {
		if ok, _ := p.Admit("ws", rec("", "a1"), t0.Add(90*time.Second)); !ok {
			t.Fatalf("record %d after half a minute refused", i)
		}
	}
	if ok, _ := p.Admit("ws", rec("", "a1"), t0.Add(90*time.Second)); ok {
		t.Fatal("the sliding minute let more than the cap through")
	}
	// After a quiet spell, everything is forgotten.
	if ok, _ := p.Admit("ws", rec("", "a1"), t0.Add(10*time.Minute)); !ok {
		t.Fatal("the cap outlived its minute")
	}
}

// The sketch's memory is fixed: hundreds of thousands of people a minute
// at a few records each are all admitted (no false positive from shared
// cells).
func TestProfileCapAdmitsManyPeople(t *testing.T) {
	t.Parallel()
	p := ingest.NewProfileCap(20)
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	for i := range 300_000 {
		m := &events.Message{UserID: "u" + strconv.Itoa(i), AnonymousID: "a" + strconv.Itoa(i)}
		for r := range 3 {
			if ok, field := p.Admit("ws", m, t0.Add(time.Duration(i)*100*time.Microsecond)); !ok {
				t.Fatalf("person %d, record %d, refused on %s", i, r, field)
			}
		}
	}
}

package api_test

import (
	"sync"
	"testing"
	"time"

	analytics "gopkg.in/segmentio/analytics-go.v3"
)

// recorder is an analytics-go callback that remembers what the library says
// happened to each message.
type recorder struct {
	mu       sync.Mutex
	ok       int
	failures []error
}

func (r *recorder) Success(analytics.Message) { r.mu.Lock(); r.ok++; r.mu.Unlock() }
func (r *recorder) Failure(_ analytics.Message, err error) {
	r.mu.Lock()
	r.failures = append(r.failures, err)
	r.mu.Unlock()
}

// The official Segment Go library, unchanged, pointed at Parcours: a mixed
// batch of every call type is delivered and every message is stored once.
func TestOfficialSegmentGoLibraryDeliversEveryMessageOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec := &recorder{}
	client, err := analytics.NewWithConfig(e.write, analytics.Config{
		Endpoint:  e.url,
		BatchSize: 7,
		Interval:  50 * time.Millisecond,
		Callback:  rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs := []analytics.Message{
		analytics.Page{AnonymousId: "cookie-9", Name: "Home", Properties: analytics.NewProperties().SetURL("https://shop.example/")},
		analytics.Identify{AnonymousId: "cookie-9", UserId: "u-9", Traits: analytics.NewTraits().SetEmail("Zoe@Example.com").SetName("Zoé")},
		analytics.Track{UserId: "u-9", Event: "Order Completed", Properties: analytics.NewProperties().SetRevenue(42.5).Set("total", 42.5)},
		analytics.Screen{UserId: "u-9", Name: "Cart"},
		analytics.Group{UserId: "u-9", GroupId: "acme", Traits: analytics.NewTraits().SetName("Acme")},
		analytics.Alias{PreviousId: "cookie-10", UserId: "u-9"},
	}
	for i := 0; i < 5; i++ { // 30 messages, several batches
		for _, m := range msgs {
			if err := client.Enqueue(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := client.Close(); err != nil { // flushes
		t.Fatal(err)
	}
	if rec.ok != 30 || len(rec.failures) > 0 {
		t.Fatalf("library reports %d delivered, failures %v", rec.ok, rec.failures)
	}
	if n := e.count(t, `SELECT count(DISTINCT message_id) FROM events WHERE workspace_id = $1 AND source = 'web'`, e.ws.ID); n != 30 {
		t.Fatalf("%d distinct messages stored, want 30", n)
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE workspace_id = $1 AND source = 'web'`, e.ws.ID); n != 30 {
		t.Fatalf("%d rows stored for 30 messages", n)
	}
	p := e.profileBy(t, "email=zoe@example.com")
	if p["id"] != e.profileBy(t, "anonymousId=cookie-9")["id"] || p["id"] != e.profileBy(t, "anonymousId=cookie-10")["id"] {
		t.Fatal("the library's identify and alias did not end in one profile")
	}
	c := p["computed"].(map[string]any)
	if c["order_count"] != 5.0 || c["total_revenue"] != 212.5 {
		t.Fatalf("computed %v", c)
	}
}

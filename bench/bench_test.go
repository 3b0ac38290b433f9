package bench

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/events"
)

func TestVerdict(t *testing.T) {
	t.Parallel()
	fig := func(v float64) *Figure { return &Figure{Value: v, Unit: "events/s"} }
	tests := []struct {
		name string
		row  Row
		want string
	}{
		{"ratio met", Row{Parcours: fig(40), Baseline: fig(100), Target: Target{MinRatio: 0.3}}, Meets},
		{"ratio met exactly", Row{Parcours: fig(30), Baseline: fig(100), Target: Target{MinRatio: 0.3}}, Meets},
		{"ratio missed", Row{Parcours: fig(29), Baseline: fig(100), Target: Target{MinRatio: 0.3}}, Misses},
		{"ratio without baseline", Row{Parcours: fig(29), Target: Target{MinRatio: 0.3}}, Failed},
		{"ratio over a zero baseline", Row{Parcours: fig(29), Baseline: fig(0), Target: Target{MinRatio: 0.3}}, Failed},
		{"latency met", Row{Parcours: fig(9.9), Target: Target{MaxValue: 10}}, Meets},
		{"latency missed", Row{Parcours: fig(10.1), Target: Target{MaxValue: 10}}, Misses},
		{"denominator", Row{Baseline: fig(1000)}, Recorded},
		{"error wins", Row{Parcours: fig(40), Baseline: fig(100), Target: Target{MinRatio: 0.3}, Err: errors.New("boom")}, Failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.row.Verdict(); got != tt.want {
				t.Fatalf("Verdict() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFormatNumber(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0.00"}, {0.4231, "0.42"}, {7.315, "7.32"}, {42.25, "42.2"}, {100, "100"},
		{999.6, "1,000"}, {61234.4, "61,234"}, {1234567, "1,234,567"},
	}
	for _, tt := range tests {
		if got := formatNumber(tt.in); got != tt.want {
			t.Errorf("formatNumber(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMarkdownHasEveryRowAndThePendingOnes(t *testing.T) {
	t.Parallel()
	rep := &Report{
		Started: time.Date(2026, 11, 29, 8, 30, 0, 0, time.UTC), Wall: 3 * time.Minute, Sizes: Quick,
		Machine: Machine{Cores: 2, GOMAXPROCS: 2, GoVersion: "go1.26", Postgres: "15"},
		Rows: []Row{
			{ID: "B0", Workload: "copy", Baseline: &Figure{Value: 30000, Unit: "rows/s"}},
			{ID: "B2", Workload: "batch", Parcours: &Figure{Value: 12000, Unit: "events/s"}, Baseline: &Figure{Value: 30000, Unit: "rows/s"}, Target: Target{MinRatio: 0.3, Text: "≥ 0.30×"}},
			{ID: "B3", Workload: "track", Err: errors.New("status 500 | oops\nsecond line")},
		},
		Pending: []Pending{{"B1", "segment rule evaluation", "not wired yet"}, {"B9", "a later benchmark", "not written yet"}},
	}
	var b strings.Builder
	if err := rep.Markdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| B0 | copy | — | 30,000 rows/s | — | denominator | recorded |",
		"| B2 | batch | 12,000 events/s | 30,000 rows/s | 0.40× | ≥ 0.30× | **meets** |",
		"| B3 | track | — | — | — | denominator | error: status 500 / oops second line |",
		"- B1 segment rule evaluation: not wired yet.", "- B9 a later benchmark: not written yet.",
		"2 cores", "2026-11-29 08:30 UTC",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if got := len(rep.Failed()); got != 1 {
		t.Errorf("Failed() lists %d rows, want 1", got)
	}
}

func TestClosedCountsUnitsAndErrors(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	res := Closed(context.Background(), 4, 50*time.Millisecond, 0, func(ctx context.Context, seq int64) (int, error) {
		calls.Add(1)
		time.Sleep(time.Millisecond)
		if seq%3 == 2 {
			return 0, errors.New("every third fails")
		}
		return 3, nil
	})
	if res.Ops+res.Errors != calls.Load() {
		t.Fatalf("ops %d + errors %d != calls %d", res.Ops, res.Errors, calls.Load())
	}
	if res.Units != 3*res.Ops || res.Errors == 0 || res.Err == nil {
		t.Fatalf("units %d for %d ops, %d errors (%v)", res.Units, res.Ops, res.Errors, res.Err)
	}
	if res.Rate() <= 0 || res.Percentile(0.5) < time.Millisecond {
		t.Fatalf("rate %v, p50 %v", res.Rate(), res.Percentile(0.5))
	}
	if err := res.check("test"); err == nil {
		t.Fatal("check accepted a run with failures")
	}
}

func TestClosedStopsAtMaxOps(t *testing.T) {
	t.Parallel()
	res := Closed(context.Background(), 3, time.Minute, 10, func(context.Context, int64) (int, error) { return 1, nil })
	if res.Ops != 10 || res.check("test") != nil {
		t.Fatalf("ran %d ops, want 10", res.Ops)
	}
}

func TestOpenKeepsItsRateAndCountsLatencyFromTheDueTime(t *testing.T) {
	t.Parallel()
	// One slot and operations twice as slow as the interval: later requests
	// wait for the slot, and their latency must include that wait.
	res := Open(context.Background(), 100, 200*time.Millisecond, 1, func(context.Context, int64) (int, error) {
		time.Sleep(20 * time.Millisecond)
		return 1, nil
	})
	if res.Ops != 20 {
		t.Fatalf("ran %d ops, want 20", res.Ops)
	}
	if p99 := res.Percentile(0.99); p99 < 150*time.Millisecond {
		t.Fatalf("p99 %v hides the queueing (coordinated omission)", p99)
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	t.Parallel()
	r := Result{latencies: []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}
	for p, want := range map[float64]time.Duration{0.5: 5, 0.9: 9, 0.99: 10, 1: 10, 0: 1} {
		if got := r.Percentile(p); got != want {
			t.Errorf("Percentile(%v) = %v, want %v", p, got, want)
		}
	}
	if (Result{}).Percentile(0.99) != 0 {
		t.Error("empty result has a percentile")
	}
}

func TestGeneratedBatchesAreValidAndUnique(t *testing.T) {
	t.Parallel()
	g := newGenerator("test", 50, time.Now())
	seen := map[string]bool{}
	types := map[string]int{}
	for first := int64(0); first < 1000; first += 100 {
		body := g.batch(first, 100)
		if len(body) > events.MaxBatchBytes {
			t.Fatalf("batch of %d bytes exceeds the API's limit", len(body))
		}
		msgs, rejected, _, err := events.ParseBatch(body, time.Now())
		if err != nil || len(rejected) > 0 {
			t.Fatalf("generated batch refused: %v %v", err, rejected)
		}
		for _, m := range msgs {
			if seen[m.MessageID] {
				t.Fatalf("messageId %s generated twice", m.MessageID)
			}
			seen[m.MessageID] = true
			types[m.Type]++
			if m.UserID == "" || m.AnonymousID == "" {
				t.Fatalf("record without both ids: %+v", m)
			}
		}
	}
	if types["identify"] != 100 || types["page"] != 200 || types["track"] != 700 {
		t.Fatalf("mix of types %v, want 100 identify, 200 page, 700 track", types)
	}
	m, err := events.ParseSingle(g.appendRecord(nil, 7, 3, "track"), events.TypeTrack, time.Now())
	if err != nil || m.UserID != "u3" || m.Event == "" {
		t.Fatalf("single track: %+v %v", m, err)
	}
}

package report_test

import (
	"context"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/report"
)

func TestDailyCountsEveryDayOfTheWindow(t *testing.T) {
	t.Parallel()
	s := seed(t)
	ctx := context.Background()
	// A broadcast email (no journey) on 4 November: in the workspace's
	// figures, not in the journey's.
	if _, err := s.Pool.Exec(ctx, `INSERT INTO deliveries (workspace_id, business_key, profile_id, channel, status, class, sent_at, delivered_at, updated_at)
		VALUES ($1, 'broadcast-1', $2, 'email', 'sent', 'marketing', $3, $4, $3)`, s.WorkspaceID, s.p2, at("2026-11-04 03:00"), at("2026-11-04 03:01")); err != nil {
		t.Fatal(err)
	}
	store := report.NewStore(s.Pool)
	day := func(d string) time.Time { v, _ := time.Parse("2006-01-02", d); return v }
	quiet := func(d string) report.Day { return report.Day{Day: day(d)} }
	// Counted by hand from seed: d1 (sent, delivered, opened, clicked) and d3
	// (sent, bounced) on the 2nd, d2 and d4 (sent, delivered) on the 3rd;
	// machine opens, the skipped d5 and October's d6 and d7 do not count.
	journeyDays := []report.Day{
		quiet("2026-11-01"),
		{Day: day("2026-11-02"), Sent: 2, Delivered: 1, Opened: 1, Clicked: 1, Bounced: 1, Converted: 1, Revenue: 25},
		{Day: day("2026-11-03"), Sent: 2, Delivered: 2, Converted: 1, Revenue: 40},
		quiet("2026-11-04"),
	}
	workspaceDays := append([]report.Day{}, journeyDays...)
	workspaceDays[3] = report.Day{Day: day("2026-11-04"), Sent: 1, Delivered: 1}
	for _, tt := range []struct {
		name, journeyID string
		want            []report.Day
	}{
		{"workspace", "", workspaceDays},
		{"journey", s.journeyID, journeyDays},
	} {
		got, err := store.Daily(ctx, s.WorkspaceID, tt.journeyID, s.window)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("%s: %d days, want %d: %+v", tt.name, len(got), len(tt.want), got)
		}
		for i := range tt.want {
			if !got[i].Day.Equal(tt.want[i].Day) || got[i].Day.Location() != time.UTC {
				t.Fatalf("%s: day %d is %v, want %v", tt.name, i, got[i].Day, tt.want[i].Day)
			}
			got[i].Day = tt.want[i].Day
			if got[i] != tt.want[i] {
				t.Errorf("%s %s\n got %+v\nwant %+v", tt.name, tt.want[i].Day.Format("2 Jan"), got[i], tt.want[i])
			}
		}
	}

	// In Auckland (UTC+13) the same window covers five local days, and the
	// emails sent at 11:00 UTC on the 2nd went out on the 3rd.
	nz, _ := time.LoadLocation("Pacific/Auckland")
	w := s.window
	w.Zone = nz
	got, err := store.Daily(ctx, s.WorkspaceID, s.journeyID, w)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || !got[0].Day.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, nz)) || got[0].Day.Location() != nz {
		t.Fatalf("days in Auckland: %+v", got)
	}
	if got[1].Sent != 0 || got[2].Sent != 3 || got[3].Sent != 1 {
		t.Fatalf("sends in Auckland by day: %d %d %d", got[1].Sent, got[2].Sent, got[3].Sent)
	}
}

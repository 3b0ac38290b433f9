package activities_test

import (
	"testing"
	"time"

	"github.com/parcours/parcours/activities"
)

func TestNextTimeOfDay(t *testing.T) {
	t.Parallel()
	// Friday 27 November 2026, 20:00 UTC (21:00 in Paris, 15:00 in New York).
	fri := time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC)
	tests := []struct {
		tz, until string
		days      []string
		want      time.Duration
	}{
		{"Europe/Paris", "09:00", nil, 12 * time.Hour},                      // Saturday 09:00 Paris
		{"Europe/Paris", "09:00", []string{"mon"}, (2*24 + 12) * time.Hour}, // Monday 09:00 Paris
		{"", "21:30", nil, 90 * time.Minute},                                // UTC, later today
		{"Not/AZone", "19:00", nil, 23 * time.Hour},                         // unknown zone: UTC, tomorrow
		{"America/New_York", "16:00", []string{"fri"}, 1 * time.Hour},       // 15:00 in New York now
	}
	for _, tt := range tests {
		got, err := activities.NextTimeOfDay(fri, tt.tz, tt.until, tt.days)
		if err != nil || got != tt.want {
			t.Errorf("NextTimeOfDay(%s, %s, %v) = %v, %v; want %v", tt.tz, tt.until, tt.days, got, err, tt.want)
		}
	}
}

func TestNextProfileDate(t *testing.T) {
	t.Parallel()
	// Friday 27 November 2026, 20:00 UTC.
	now := time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		tz        string
		value     any
		offset    string
		everyYear bool
		want      time.Duration
		missing   bool
	}{
		{"three days before a renewal time", "", "2026-12-10T20:00:00Z", "-3d", false, 10 * 24 * time.Hour, false},
		{"a calendar date is midnight in the profile's zone", "Europe/Paris", "2026-11-29", "0", false, 27 * time.Hour, false},
		{"an offset after the date", "", "2026-11-27T18:00:00Z", "+2h", false, 0, true}, // 20:00 is now: not ahead
		{"unix seconds", "", float64(time.Date(2026, 11, 28, 20, 0, 0, 0, time.UTC).Unix()), "", false, 24 * time.Hour, false},
		{"a past date", "", "2026-01-01", "", false, 0, true},
		{"no date", "", nil, "-1d", false, 0, true},
		{"not a date", "", "soon", "", false, 0, true},
		{"a birthday recurs: this year's is past, next year's is ahead", "", "1990-03-14", "0", true,
			time.Date(2027, 3, 14, 0, 0, 0, 0, time.UTC).Sub(now), false},
		{"a birthday later this year, the day before at midnight", "", "1985-12-25", "-1d", true,
			time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC).Sub(now), false},
		{"29 February in a common year is 1 March", "", "2000-02-29", "0", true,
			time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC).Sub(now), false},
	}
	for _, tt := range tests {
		got, err := activities.NextProfileDate(now, tt.tz, tt.value, tt.offset, tt.everyYear)
		if err != nil || got.Missing != tt.missing || (!tt.missing && got.Wait != tt.want) {
			t.Errorf("%s: got %+v, %v; want wait %v missing %v", tt.name, got, err, tt.want, tt.missing)
		}
	}
	if _, err := activities.NextProfileDate(now, "", "2026-12-01", "soonish", false); err == nil {
		t.Error("a bad offset is an error")
	}
}

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

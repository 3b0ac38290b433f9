package channel

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestDecideQuietHoursAndCaps(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	at := func(day, hour, min int) time.Time { return time.Date(2025, time.March, day, hour, min, 0, 0, paris) }
	night := &QuietHours{Start: "21:00", End: "08:00", Channels: []string{"email"}}
	lunch := &QuietHours{Start: "12:00", End: "14:00", Channels: []string{"email"}}
	twoPerWeek := []capWindow{{max: 2, per: 7 * 24 * time.Hour}}
	tests := []struct {
		name   string
		now    time.Time
		caps   []capWindow
		quiet  *QuietHours
		sent   []time.Time
		reason string
		until  time.Time
	}{
		{"evening, quiet until the next morning", at(10, 22, 0), nil, night, nil, ReasonQuietHours, at(11, 8, 0)},
		{"early morning, quiet until 08:00 the same day", at(10, 7, 59), nil, night, nil, ReasonQuietHours, at(10, 8, 0)},
		{"08:00 is allowed", at(10, 8, 0), nil, night, nil, "", time.Time{}},
		{"20:59 is allowed", at(10, 20, 59), nil, night, nil, "", time.Time{}},
		{"a window within the day", at(10, 13, 0), nil, lunch, nil, ReasonQuietHours, at(10, 14, 0)},
		{"outside a window within the day", at(10, 14, 0), nil, lunch, nil, "", time.Time{}},
		{"under the cap", at(10, 10, 0), twoPerWeek, nil, []time.Time{at(9, 10, 0)}, "", time.Time{}},
		{"cap reached: until the oldest leaves the window", at(10, 10, 0), twoPerWeek, nil,
			[]time.Time{at(4, 9, 0), at(9, 10, 0)}, ReasonFrequencyCap, at(11, 9, 0)},
		{"sends older than the window do not count", at(10, 10, 0), twoPerWeek, nil,
			[]time.Time{at(2, 9, 0), at(3, 9, 59), at(9, 10, 0)}, "", time.Time{}},
		{"cap first, then the quiet hours it ends in", at(10, 10, 0), twoPerWeek, night,
			[]time.Time{at(3, 23, 0), at(9, 10, 0)}, ReasonFrequencyCap, at(11, 8, 0)},
		{"both at once: the cap is named, the time satisfies both", at(10, 22, 0), twoPerWeek, night,
			[]time.Time{at(4, 9, 0), at(10, 9, 0)}, ReasonFrequencyCap, at(11, 9, 0)},
		{"quiet hours with a cap not reached", at(10, 22, 0), twoPerWeek, night,
			[]time.Time{at(10, 9, 0)}, ReasonQuietHours, at(11, 8, 0)},
		// 30 March 2025: Paris moves from 02:00 to 03:00; 08:00 is 06:00 UTC.
		{"across a daylight saving change", at(29, 23, 0), nil, night, nil, ReasonQuietHours, at(30, 8, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := decide(tt.now, paris, tt.caps, tt.quiet, tt.sent)
			if d.Reason != tt.reason || !d.Until.Equal(tt.until) {
				t.Fatalf("decide = %s until %v, want %q until %v", d.Reason, d.Until, tt.reason, tt.until)
			}
		})
	}
	if got := at(30, 8, 0).UTC().Hour(); got != 6 {
		t.Fatalf("08:00 in Paris on 30 March is %d:00 UTC, want 6", got)
	}
}

func TestPolicyValidationNamesEveryField(t *testing.T) {
	t.Parallel()
	p := Policy{
		FrequencyCaps: []FrequencyCap{
			{Channel: "email", Max: 3, Per: "7d"},
			{Channel: "fax", Purpose: "transactional", Max: 0, Per: "7 days"},
		},
		QuietHours:      &QuietHours{Start: "25:00", End: "08:00", Channels: []string{"email", "pigeon"}},
		DefaultTimezone: "Mars/Olympus",
	}
	err := p.Validate()
	var pe *PolicyError
	if !errors.As(err, &pe) {
		t.Fatalf("validate: %v", err)
	}
	var fields []string
	for _, f := range pe.Errors {
		fields = append(fields, f.Field)
	}
	want := []string{"frequency_caps[1].channel", "frequency_caps[1].purpose", "frequency_caps[1].max", "frequency_caps[1].per",
		"quiet_hours.start", "quiet_hours.channels[1]", "default_timezone"}
	if !slices.Equal(fields, want) {
		t.Fatalf("fields %v, want %v", fields, want)
	}

	ok := Policy{FrequencyCaps: []FrequencyCap{{Channel: "email", Max: 3, Per: "7d"}},
		QuietHours: &QuietHours{Start: "21:00", End: "08:00", Channels: []string{"email", "sms"}}, DefaultTimezone: "Europe/Paris"}
	if err := ok.Validate(); err != nil || ok.FrequencyCaps[0].Purpose != Marketing {
		t.Fatalf("valid policy: %v %+v", err, ok)
	}
	same := Policy{QuietHours: &QuietHours{Start: "08:00", End: "08:00", Channels: []string{"email"}}}
	if err := same.Validate(); !errors.As(err, &pe) || pe.Errors[0].Field != "quiet_hours.end" {
		t.Fatalf("empty window: %v", err)
	}
}

func TestParseWindow(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"30m": 30 * time.Minute, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "4w": 28 * 24 * time.Hour} {
		if got, err := ParseWindow(in); err != nil || got != want {
			t.Errorf("ParseWindow(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "7", "d", "0d", "-1d", "7 d", "1y", "400d", "1.5h"} {
		if _, err := ParseWindow(in); err == nil {
			t.Errorf("ParseWindow(%q) accepted", in)
		}
	}
}

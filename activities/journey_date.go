package activities

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/temporal"

	"github.com/parcours/parcours/pkg/journey"
)

// UntilDateInput asks how long to wait until a date held by a profile
// trait, shifted by an offset.
type UntilDateInput struct {
	WorkspaceID string
	ProfileID   string
	// Date is the trait path, e.g. traits.renewal_at.
	Date      string
	Offset    string // -3d, +2h, 0
	EveryYear bool
	Now       time.Time
}

// UntilDateResult is the wait, or why there is none.
type UntilDateResult struct {
	Wait time.Duration
	// Missing is set when the profile has no usable date, or when its
	// moment (date + offset) has passed and the date does not recur.
	Missing bool
	Reason  string
}

// UntilProfileDate reads the date trait and the profile's time zone and
// answers the wait. The date's value stays out of workflow history: only
// the wait goes back.
func (a *Activities) UntilProfileDate(ctx context.Context, in UntilDateInput) (UntilDateResult, error) {
	trait := strings.TrimPrefix(in.Date, "traits.")
	var raw any
	var tz string
	err := a.Pool.QueryRow(ctx, `SELECT traits->$3, coalesce(traits->>'timezone', '') FROM profiles WHERE workspace_id = $1 AND id = $2`,
		in.WorkspaceID, in.ProfileID, trait).Scan(&raw, &tz)
	if errors.Is(err, pgx.ErrNoRows) {
		return UntilDateResult{Missing: true, Reason: "profile not found"}, nil
	}
	if err != nil {
		return UntilDateResult{}, fmt.Errorf("load %s of %s: %w", in.Date, in.ProfileID, err)
	}
	return NextProfileDate(in.Now, tz, raw, in.Offset, in.EveryYear)
}

// NextProfileDate is the wait from now until value + offset. value is an
// RFC 3339 time, a calendar date (2006-01-02, midnight in zone tz) or Unix
// seconds. With everyYear the month and day recur: the next anniversary
// whose shifted moment is still ahead.
func NextProfileDate(now time.Time, tz string, value any, offset string, everyYear bool) (UntilDateResult, error) {
	off, err := journey.ParseOffset(offset)
	if err != nil {
		return UntilDateResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "BadDefinition", err)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "" {
		loc = time.UTC
	}
	at, ok := parseDate(value, loc)
	if !ok {
		return UntilDateResult{Missing: true, Reason: "the profile has no readable date"}, nil
	}
	if everyYear {
		local := at.In(loc)
		n := now.In(loc)
		for year := n.Year() - 1; year <= n.Year()+1; year++ {
			c := time.Date(year, local.Month(), local.Day(), local.Hour(), local.Minute(), local.Second(), 0, loc)
			if c.Month() != local.Month() { // 29 February in a common year: 1 March
				c = time.Date(year, time.March, 1, local.Hour(), local.Minute(), local.Second(), 0, loc)
			}
			if w := c.Add(off).Sub(now); w > 0 {
				return UntilDateResult{Wait: w}, nil
			}
		}
		return UntilDateResult{Missing: true, Reason: "no anniversary ahead"}, nil
	}
	w := at.Add(off).Sub(now)
	if w <= 0 {
		return UntilDateResult{Missing: true, Reason: "the date has passed"}, nil
	}
	return UntilDateResult{Wait: w}, nil
}

func parseDate(v any, loc *time.Location) (time.Time, bool) {
	switch x := v.(type) {
	case string:
		s := strings.TrimSpace(x)
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, true
		}
		if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
			return t, true
		}
		if t, err := time.ParseInLocation("2006-01-02T15:04:05", s, loc); err == nil {
			return t, true
		}
	case float64:
		if x > 0 && x < math.MaxInt32*4 {
			return time.Unix(int64(x), 0), true
		}
	}
	return time.Time{}, false
}

// ConversionInput records a run's goal.
type ConversionInput struct {
	WorkspaceID string
	WorkflowID  string
	RunID       string
	JourneyID   string
	Version     int
	ProfileID   string
	// EventID is the goal record; DeliveryKey the business key of the last
	// message sent ("" when none was), NodeID its node.
	EventID     int64
	DeliveryKey string
	NodeID      string
}

// RecordConversion records a conversion once per run, with the revenue the
// goal record carries (properties.revenue, else total, else value).
func (a *Activities) RecordConversion(ctx context.Context, in ConversionInput) error {
	_, err := a.Pool.Exec(ctx, `
		INSERT INTO journey_conversions (workspace_id, workflow_id, run_id, journey_id, version, profile_id, event_id, delivery_id, node_id, revenue, at)
		SELECT $1, $2, $3, $4, $5, $6, nullif($7::bigint, 0),
			(SELECT id FROM deliveries WHERE workspace_id = $1 AND business_key = $8 AND $8 <> ''),
			nullif($9, ''),
			(SELECT coalesce(
				CASE WHEN jsonb_typeof(properties->'revenue') = 'number' THEN (properties->>'revenue')::numeric END,
				CASE WHEN jsonb_typeof(properties->'total') = 'number' THEN (properties->>'total')::numeric END,
				CASE WHEN jsonb_typeof(properties->'value') = 'number' THEN (properties->>'value')::numeric END)
			 FROM events WHERE workspace_id = $1 AND id = $7),
			now()
		ON CONFLICT DO NOTHING`,
		in.WorkspaceID, in.WorkflowID, in.RunID, in.JourneyID, in.Version, in.ProfileID, in.EventID, in.DeliveryKey, in.NodeID)
	if err != nil {
		return fmt.Errorf("record conversion of %s: %w", in.WorkflowID, err)
	}
	return nil
}

// ContinueRunInput names a run continued as new.
type ContinueRunInput struct {
	WorkspaceID string
	WorkflowID  string
	PrevRunID   string
	RunID       string
}

// ContinueJourneyRun moves the run's record to its new run id; running it
// again is harmless.
func (a *Activities) ContinueJourneyRun(ctx context.Context, in ContinueRunInput) error {
	return a.Journeys.ContinueRun(ctx, in.WorkspaceID, in.WorkflowID, in.PrevRunID, in.RunID)
}

package report

import (
	"context"
	"fmt"
	"time"
)

// Day is what happened on one day: messages sent (handed to the provider),
// delivered, opened by people (not by mail privacy proxies), clicked and
// bounced, and the journey runs that reached their goal, with the revenue.
type Day struct {
	// Day is the midnight that starts the day, in the window's zone.
	Day       time.Time `json:"day"`
	Sent      int       `json:"sent"`
	Delivered int       `json:"delivered"`
	Opened    int       `json:"opened"`
	Clicked   int       `json:"clicked"`
	Bounced   int       `json:"bounced"`
	Converted int       `json:"converted"`
	Revenue   float64   `json:"revenue"`
}

// dailySQL counts each outcome on the day it happened (a message sent on
// Monday and opened on Tuesday is sent Monday, opened Tuesday), as the
// journey report does, and gives every day of the window a row, zeros
// included, so that a chart has a point per day.
//
// $1 workspace, $2 and $3 the window, $4 the zone, $5 a journey id, or empty
// for the whole workspace (journeys and broadcasts).
const dailySQL = `
	WITH days AS (
		SELECT d::date AS day
		FROM generate_series(($2::timestamptz AT TIME ZONE $4)::date,
			(($3::timestamptz - interval '1 microsecond') AT TIME ZONE $4)::date, interval '1 day') AS d
	), facts AS (
		SELECT (x.at AT TIME ZONE $4)::date AS day, x.measure, 0::float8 AS revenue
		FROM deliveries d CROSS JOIN LATERAL (VALUES
			('sent', d.sent_at), ('delivered', d.delivered_at), ('opened', d.opened_at),
			('clicked', d.clicked_at), ('bounced', d.bounced_at)) AS x(measure, at)
		WHERE d.workspace_id = $1 AND ($5 = '' OR d.journey_id = $5) AND x.at >= $2 AND x.at < $3
		UNION ALL
		SELECT (at AT TIME ZONE $4)::date, 'converted', coalesce(revenue, 0)::float8
		FROM journey_conversions
		WHERE workspace_id = $1 AND ($5 = '' OR journey_id::text = $5) AND at >= $2 AND at < $3
	)
	SELECT days.day,
		count(*) FILTER (WHERE measure = 'sent'), count(*) FILTER (WHERE measure = 'delivered'),
		count(*) FILTER (WHERE measure = 'opened'), count(*) FILTER (WHERE measure = 'clicked'),
		count(*) FILTER (WHERE measure = 'bounced'), count(*) FILTER (WHERE measure = 'converted'),
		coalesce(sum(revenue), 0)
	FROM days LEFT JOIN facts USING (day)
	GROUP BY days.day ORDER BY days.day`

// Daily counts, for every day of w, what happened to the workspace's
// messages and journey runs; with journeyID set, to that journey's only.
// Days with nothing are zeros.
func (s *Store) Daily(ctx context.Context, workspaceID, journeyID string, w Window) ([]Day, error) {
	if w.Zone == nil {
		w.Zone = time.UTC
	}
	rows, err := s.pool.Query(ctx, dailySQL, workspaceID, w.From, w.To, w.Zone.String(), journeyID)
	if err != nil {
		return nil, fmt.Errorf("daily report: %w", err)
	}
	defer rows.Close()
	out := []Day{}
	for rows.Next() {
		var d Day
		var day time.Time
		if err := rows.Scan(&day, &d.Sent, &d.Delivered, &d.Opened, &d.Clicked, &d.Bounced, &d.Converted, &d.Revenue); err != nil {
			return nil, fmt.Errorf("daily report: %w", err)
		}
		d.Day = time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, w.Zone)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("daily report: %w", err)
	}
	return out, nil
}

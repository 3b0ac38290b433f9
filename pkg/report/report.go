// Package report answers the questions marketers judge journeys by: per
// journey and per node, how many entered, were sent, delivered, opened (by
// people, and separately by mail privacy proxies), clicked, bounced,
// unsubscribed and converted, with the revenue; by day; which new customers
// acted on journey emails before their first order; and which touchpoints
// prospects had before they converted.
//
// Every figure counts things that happened in the window [From, To) by their
// own time (a delivery sent on Monday and opened on Tuesday counts as sent
// Monday, opened Tuesday), and each delivery or run at most once per
// measure (first open, first click).
package report

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Counts are the measures of a journey, a node or a day.
type Counts struct {
	Entered       int     `json:"entered"`
	Sent          int     `json:"sent"`
	Delivered     int     `json:"delivered"`
	Opened        int     `json:"opened"`
	MachineOpened int     `json:"machine_opened"`
	Clicked       int     `json:"clicked"`
	Bounced       int     `json:"bounced"`
	Unsubscribed  int     `json:"unsubscribed"`
	Skipped       int     `json:"skipped"`
	Failed        int     `json:"failed"`
	Converted     int     `json:"converted"`
	Revenue       float64 `json:"revenue"`
}

// Rates are ratios of Counts (0 when the denominator is 0): delivery and
// bounce over sent; open, click and unsubscribe over delivered (opens by
// people only); conversion over entered.
type Rates struct {
	Delivery    float64 `json:"delivery_rate"`
	Open        float64 `json:"open_rate"`
	Click       float64 `json:"click_rate"`
	Bounce      float64 `json:"bounce_rate"`
	Unsubscribe float64 `json:"unsubscribe_rate"`
	Conversion  float64 `json:"conversion_rate"`
}

// RatesOf computes the rates of c.
func RatesOf(c Counts) Rates {
	div := func(a, b int) float64 {
		if b == 0 {
			return 0
		}
		return float64(a) / float64(b)
	}
	return Rates{
		Delivery: div(c.Delivered, c.Sent), Bounce: div(c.Bounced, c.Sent),
		Open: div(c.Opened, c.Delivered), Click: div(c.Clicked, c.Delivered), Unsubscribe: div(c.Unsubscribed, c.Delivered),
		Conversion: div(c.Converted, c.Entered),
	}
}

// Row is a node's or a day's counts and rates.
type Row struct {
	Key string `json:"key"`
	Counts
	Rates
}

// Window is a report's period; Zone buckets days.
type Window struct {
	From, To time.Time
	Zone     *time.Location
}

// Journey is one journey's report.
type Journey struct {
	JourneyID string    `json:"journey_id"`
	Name      string    `json:"name"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Total     Row       `json:"total"`
	Nodes     []Row     `json:"nodes"`
	Days      []Row     `json:"days"`
}

// Store reads reports from the database.
type Store struct{ pool *pgxpool.Pool }

// NewStore returns a Store.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// measure is one SQL that yields (node, day, value) for a measure. A
// node-only measure feeds node rows alone (visits); others feed the total
// and the days, and node rows when the node is known.
type measure struct {
	set      func(c *Counts, v float64)
	sql      string
	nodeOnly bool
}

// The measures, each over the window ($2, $3) of one journey ($4), with
// days in zone $5. Node "" means the run, not a node.
var measures = []measure{
	{func(c *Counts, v float64) { c.Entered += int(v) }, `
		SELECT '', (entered_at AT TIME ZONE $5)::date, count(*) FROM journey_runs
		WHERE workspace_id = $1 AND journey_id = $4::uuid AND entered_at >= $2 AND entered_at < $3 GROUP BY 2`, false},
	// Node visits: the runs that passed each node, by the day the run entered.
	{func(c *Counts, v float64) { c.Entered += int(v) }, `
		SELECT p.step, (entered_at AT TIME ZONE $5)::date, count(*) FROM journey_runs, unnest(path) AS p(step)
		WHERE workspace_id = $1 AND journey_id = $4::uuid AND entered_at >= $2 AND entered_at < $3 GROUP BY 1, 2`, true},
	// Handed to the provider: an SMS that Twilio later reports undelivered
	// is failed but was sent (sent_at stays).
	{func(c *Counts, v float64) { c.Sent += int(v) }, deliveryMeasure("sent_at", "sent_at IS NOT NULL"), false},
	{func(c *Counts, v float64) { c.Delivered += int(v) }, deliveryMeasure("delivered_at", "true"), false},
	{func(c *Counts, v float64) { c.Opened += int(v) }, deliveryMeasure("opened_at", "true"), false},
	{func(c *Counts, v float64) { c.MachineOpened += int(v) }, deliveryMeasure("machine_opened_at", "true"), false},
	{func(c *Counts, v float64) { c.Clicked += int(v) }, deliveryMeasure("clicked_at", "true"), false},
	{func(c *Counts, v float64) { c.Bounced += int(v) }, deliveryMeasure("bounced_at", "true"), false},
	{func(c *Counts, v float64) { c.Unsubscribed += int(v) }, deliveryMeasure("unsubscribed_at", "true"), false},
	{func(c *Counts, v float64) { c.Skipped += int(v) }, deliveryMeasure("updated_at", "status = 'skipped'"), false},
	{func(c *Counts, v float64) { c.Failed += int(v) }, deliveryMeasure("updated_at", "status = 'failed'"), false},
	{func(c *Counts, v float64) { c.Converted += int(v) }, `
		SELECT coalesce(node_id, ''), (at AT TIME ZONE $5)::date, count(*) FROM journey_conversions
		WHERE workspace_id = $1 AND journey_id = $4::uuid AND at >= $2 AND at < $3 GROUP BY 1, 2`, false},
	{func(c *Counts, v float64) { c.Revenue += v }, `
		SELECT coalesce(node_id, ''), (at AT TIME ZONE $5)::date, coalesce(sum(revenue), 0)::float8 FROM journey_conversions
		WHERE workspace_id = $1 AND journey_id = $4::uuid AND at >= $2 AND at < $3 GROUP BY 1, 2`, false},
}

func deliveryMeasure(col, cond string) string {
	return `SELECT coalesce(node_id, ''), (` + col + ` AT TIME ZONE $5)::date, count(*) FROM deliveries
		WHERE workspace_id = $1 AND journey_id = $4 AND ` + col + ` >= $2 AND ` + col + ` < $3 AND (` + cond + `) GROUP BY 1, 2`
}

// Journey reports one journey over w. nodes orders the node rows (the
// definition's order); nodes not listed follow by name.
func (s *Store) Journey(ctx context.Context, workspaceID, journeyID, name string, nodes []string, w Window) (Journey, error) {
	if w.Zone == nil {
		w.Zone = time.UTC
	}
	out := Journey{JourneyID: journeyID, Name: name, From: w.From, To: w.To, Total: Row{Key: "total"}, Nodes: []Row{}, Days: []Row{}}
	byNode := map[string]*Counts{}
	byDay := map[string]*Counts{}
	for _, n := range nodes {
		byNode[n] = &Counts{}
	}
	for _, m := range measures {
		set := m.set
		rows, err := s.pool.Query(ctx, m.sql, workspaceID, w.From, w.To, journeyID, w.Zone.String())
		if err != nil {
			return out, fmt.Errorf("journey report %s: %w", journeyID, err)
		}
		for rows.Next() {
			var node string
			var day time.Time
			var v float64
			if err := rows.Scan(&node, &day, &v); err != nil {
				rows.Close()
				return out, err
			}
			if m.nodeOnly {
				if byNode[node] == nil {
					byNode[node] = &Counts{}
				}
				set(byNode[node], v)
				continue
			}
			set(&out.Total.Counts, v)
			d := day.Format("2006-01-02")
			if byDay[d] == nil {
				byDay[d] = &Counts{}
			}
			set(byDay[d], v)
			if node != "" {
				if byNode[node] == nil {
					byNode[node] = &Counts{}
				}
				set(byNode[node], v)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return out, err
		}
	}
	out.Total.Rates = RatesOf(out.Total.Counts)
	seen := map[string]bool{}
	for _, n := range nodes {
		seen[n] = true
		out.Nodes = append(out.Nodes, Row{Key: n, Counts: *byNode[n], Rates: RatesOf(*byNode[n])})
	}
	var rest []string
	for n := range byNode {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	for _, n := range rest {
		out.Nodes = append(out.Nodes, Row{Key: n, Counts: *byNode[n], Rates: RatesOf(*byNode[n])})
	}
	var days []string
	for d := range byDay {
		days = append(days, d)
	}
	sort.Strings(days)
	for _, d := range days {
		out.Days = append(out.Days, Row{Key: d, Counts: *byDay[d], Rates: RatesOf(*byDay[d])})
	}
	return out, nil
}

// NewCustomer is a profile whose first conversion event fell in the window
// after it acted on a journey email.
type NewCustomer struct {
	ProfileID    string    `json:"profile_id"`
	FirstOrderAt time.Time `json:"first_order_at"`
	JourneyID    string    `json:"journey_id"`
	JourneyName  string    `json:"journey_name"`
	// Action is "clicked" or "opened", the strongest in the lookback.
	Action  string  `json:"action"`
	Revenue float64 `json:"revenue"`
}

// NewCustomers is "new customers who acted on my scenarios' emails".
type NewCustomers struct {
	// NewCustomers counts profiles whose first conversion event fell in the
	// window; Acted those of them who opened (as a person) or clicked a
	// journey email in the lookback before it.
	NewCustomers int               `json:"new_customers"`
	Acted        int               `json:"acted_on_journey_emails"`
	ByJourney    []JourneyCount    `json:"by_journey"`
	Customers    []NewCustomer     `json:"customers"`
	Event        string            `json:"event"`
	Lookback     string            `json:"lookback"`
	Window       map[string]string `json:"window"`
}

// JourneyCount is one journey's share.
type JourneyCount struct {
	JourneyID   string  `json:"journey_id"`
	JourneyName string  `json:"journey_name"`
	Customers   int     `json:"customers"`
	Revenue     float64 `json:"revenue"`
}

// NewCustomers finds the profiles whose first event named event (e.g.
// "Order Completed") fell in w, and among them those who opened or clicked
// a journey email within lookback before it. A customer is credited to the
// journey of the latest such email.
func (s *Store) NewCustomers(ctx context.Context, workspaceID, event string, lookback time.Duration, w Window) (NewCustomers, error) {
	out := NewCustomers{Event: event, Lookback: lookback.String(), ByJourney: []JourneyCount{}, Customers: []NewCustomer{},
		Window: map[string]string{"from": w.From.Format(time.RFC3339), "to": w.To.Format(time.RFC3339)}}
	rows, err := s.pool.Query(ctx, `
		WITH first AS (
			SELECT DISTINCT ON (profile_id) profile_id, timestamp AS at,
				CASE WHEN jsonb_typeof(properties->'revenue') = 'number' THEN (properties->>'revenue')::float8
				     WHEN jsonb_typeof(properties->'total') = 'number' THEN (properties->>'total')::float8 ELSE 0 END AS revenue
			FROM events WHERE workspace_id = $1 AND name = $2 AND type = 'track' AND profile_id IS NOT NULL
			ORDER BY profile_id, timestamp, id
		), new AS (
			SELECT * FROM first WHERE at >= $3 AND at < $4
		)
		SELECT n.profile_id::text, n.at, n.revenue, coalesce(a.journey_id, ''), coalesce(j.name, ''), coalesce(a.action, '')
		FROM new n
		LEFT JOIN LATERAL (
			SELECT d.journey_id, CASE WHEN d.clicked_at IS NOT NULL AND d.clicked_at <= n.at THEN 'clicked' ELSE 'opened' END AS action
			FROM deliveries d
			WHERE d.workspace_id = $1 AND d.profile_id = n.profile_id AND d.journey_id IS NOT NULL
			  AND ((d.clicked_at > n.at - $5::interval AND d.clicked_at <= n.at) OR (d.opened_at > n.at - $5::interval AND d.opened_at <= n.at))
			ORDER BY greatest(coalesce(d.clicked_at, '-infinity'), coalesce(d.opened_at, '-infinity')) DESC LIMIT 1
		) a ON true
		LEFT JOIN journeys j ON j.workspace_id = $1 AND j.id::text = a.journey_id
		ORDER BY n.at`, workspaceID, event, w.From, w.To, fmt.Sprintf("%d seconds", int64(lookback.Seconds())))
	if err != nil {
		return out, fmt.Errorf("new customers report: %w", err)
	}
	defer rows.Close()
	by := map[string]*JourneyCount{}
	for rows.Next() {
		var c NewCustomer
		if err := rows.Scan(&c.ProfileID, &c.FirstOrderAt, &c.Revenue, &c.JourneyID, &c.JourneyName, &c.Action); err != nil {
			return out, err
		}
		out.NewCustomers++
		if c.JourneyID == "" {
			continue
		}
		out.Acted++
		if len(out.Customers) < 500 {
			out.Customers = append(out.Customers, c)
		}
		if by[c.JourneyID] == nil {
			by[c.JourneyID] = &JourneyCount{JourneyID: c.JourneyID, JourneyName: c.JourneyName}
		}
		by[c.JourneyID].Customers++
		by[c.JourneyID].Revenue += c.Revenue
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	for _, jc := range by {
		out.ByJourney = append(out.ByJourney, *jc)
	}
	sort.Slice(out.ByJourney, func(i, j int) bool {
		a, b := out.ByJourney[i], out.ByJourney[j]
		return a.Customers > b.Customers || (a.Customers == b.Customers && a.JourneyName < b.JourneyName)
	})
	return out, nil
}

// Touchpoint is a kind of contact prospects had before converting.
type Touchpoint struct {
	// Touchpoint: "<source> · page views", "<source> · <event>", or
	// "email · <template> (clicked)" for journey emails.
	Touchpoint string `json:"touchpoint"`
	// Prospects is how many converting profiles had it; Occurrences how
	// many times it happened in their lookbacks.
	Prospects   int     `json:"prospects"`
	Occurrences int     `json:"occurrences"`
	Share       float64 `json:"share"`
}

// Touchpoints is "the most popular touchpoints of prospects before they convert".
type Touchpoints struct {
	Converted   int          `json:"converted"`
	Touchpoints []Touchpoint `json:"touchpoints"`
	Event       string       `json:"event"`
	Lookback    string       `json:"lookback"`
}

// Touchpoints ranks the touchpoints of the profiles whose first event
// named event fell in w, over the lookback before it: records by source and
// kind (page views, screen views, named events), and journey emails opened
// or clicked. The conversion event itself and identify/alias records do not
// count.
func (s *Store) Touchpoints(ctx context.Context, workspaceID, event string, lookback time.Duration, w Window, limit int) (Touchpoints, error) {
	out := Touchpoints{Event: event, Lookback: lookback.String(), Touchpoints: []Touchpoint{}}
	iv := fmt.Sprintf("%d seconds", int64(lookback.Seconds()))
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) FROM (
			SELECT profile_id, min(timestamp) AS at FROM events WHERE workspace_id = $1 AND name = $2 AND type = 'track' AND profile_id IS NOT NULL GROUP BY 1
		) f WHERE at >= $3 AND at < $4`, workspaceID, event, w.From, w.To).Scan(&out.Converted)
	if err != nil {
		return out, fmt.Errorf("touchpoints report: %w", err)
	}
	rows, err := s.pool.Query(ctx, `
		WITH conv AS (
			SELECT * FROM (
				SELECT profile_id, min(timestamp) AS at FROM events WHERE workspace_id = $1 AND name = $2 AND type = 'track' AND profile_id IS NOT NULL GROUP BY 1
			) f WHERE at >= $3 AND at < $4
		), touches AS (
			SELECT c.profile_id, CASE
				WHEN e.name IN ('Email Opened', 'Email Clicked') THEN 'email · ' || coalesce(e.properties->>'template', '?') ||
					CASE WHEN e.name = 'Email Clicked' THEN ' (clicked)' ELSE ' (opened)' END
				WHEN e.type = 'page' THEN e.source || ' · page views'
				WHEN e.type = 'screen' THEN e.source || ' · screen views'
				ELSE e.source || ' · ' || coalesce(e.name, e.type) END AS touchpoint
			FROM conv c JOIN events e ON e.workspace_id = $1 AND e.profile_id = c.profile_id
			WHERE e.timestamp >= c.at - $5::interval AND e.timestamp < c.at
			  AND e.type IN ('track', 'page', 'screen') AND coalesce(e.name, '') <> $2
			  AND coalesce((e.properties->>'machine_open')::boolean, false) = false
		)
		SELECT touchpoint, count(DISTINCT profile_id), count(*) FROM touches
		GROUP BY 1 ORDER BY 2 DESC, 3 DESC, 1 LIMIT $6`, workspaceID, event, w.From, w.To, iv, limit)
	if err != nil {
		return out, fmt.Errorf("touchpoints report: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t Touchpoint
		if err := rows.Scan(&t.Touchpoint, &t.Prospects, &t.Occurrences); err != nil {
			return out, err
		}
		if out.Converted > 0 {
			t.Share = float64(t.Prospects) / float64(out.Converted)
		}
		out.Touchpoints = append(out.Touchpoints, t)
	}
	return out, rows.Err()
}

package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/csvsafe"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/report"
)

// reportWindow reads from, to (RFC 3339 or YYYY-MM-DD; default: the 30 days
// to now) and tz (IANA; days are bucketed in it, and dates are midnights
// in it).
func reportWindow(c echo.Context) (report.Window, error) {
	var bad []FieldError
	w := report.Window{Zone: time.UTC}
	if tz := c.QueryParam("tz"); tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			bad = append(bad, FieldError{Field: "tz", Reason: fmt.Sprintf("%q is not a time zone such as Europe/Paris", tz)})
		} else {
			w.Zone = loc
		}
	}
	parse := func(field string) time.Time {
		v := c.QueryParam(field)
		if v == "" {
			return time.Time{}
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return t
		}
		if t, err := time.ParseInLocation("2006-01-02", v, w.Zone); err == nil {
			return t
		}
		bad = append(bad, FieldError{Field: field, Reason: fmt.Sprintf("%q is not a date (2026-11-01) or a time (2026-11-01T09:00:00Z)", v)})
		return time.Time{}
	}
	w.From, w.To = parse("from"), parse("to")
	if w.To.IsZero() {
		w.To = time.Now().UTC()
	}
	if w.From.IsZero() {
		w.From = w.To.Add(-30 * 24 * time.Hour)
	}
	if len(bad) == 0 && !w.From.Before(w.To) {
		bad = append(bad, FieldError{Field: "from", Reason: "must be before to"})
	}
	if len(bad) == 0 && w.To.Sub(w.From) > 400*24*time.Hour {
		bad = append(bad, FieldError{Field: "from", Reason: "a report spans at most 400 days"})
	}
	if len(bad) > 0 {
		return w, invalid("The report's period is not valid.", bad...)
	}
	return w, nil
}

// conversionParams reads event (default "Order Completed") and lookback
// (default 7d for new customers, 30d for touchpoints).
func conversionParams(c echo.Context, defaultLookback string) (string, time.Duration, error) {
	event := c.QueryParam("event")
	if event == "" {
		event = "Order Completed"
	}
	lb := c.QueryParam("lookback")
	if lb == "" {
		lb = defaultLookback
	}
	d, err := journey.ParseDuration(lb)
	if err != nil || d > 400*24*time.Hour {
		return "", 0, invalid("The report's parameters are not valid.", FieldError{Field: "lookback", Reason: fmt.Sprintf("%q is not a duration up to 400d such as 7d", lb)})
	}
	return event, d, nil
}

var countHeader = []string{"entered", "sent", "delivered", "opened", "machine_opened", "clicked", "bounced", "unsubscribed", "skipped", "failed",
	"converted", "revenue", "delivery_rate", "open_rate", "click_rate", "bounce_rate", "unsubscribe_rate", "conversion_rate"}

func countCells(r report.Row) []string {
	i := strconv.Itoa
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
	return []string{i(r.Entered), i(r.Sent), i(r.Delivered), i(r.Opened), i(r.MachineOpened), i(r.Clicked), i(r.Bounced), i(r.Unsubscribed),
		i(r.Skipped), i(r.Failed), i(r.Converted), strconv.FormatFloat(r.Revenue, 'f', 2, 64),
		f(r.Delivery), f(r.Open), f(r.Click), f(r.Bounce), f(r.Unsubscribe), f(r.Conversion)}
}

func writeCSV(c echo.Context, name string, rows [][]string) error {
	c.Response().Header().Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="`+name+`.csv"`)
	c.Response().WriteHeader(http.StatusOK)
	// Names and touchpoints come from events: csvsafe keeps them data.
	w := csvsafe.NewWriter(c.Response())
	if err := w.WriteAll(rows); err != nil {
		return err
	}
	w.Flush()
	return w.Error()
}

// journeyReport reports one journey: totals, per node (in the order of the
// published version), per day; ?format=csv gives the node rows and the
// total (&by=day: the day rows).
func (s *Server) journeyReport(c echo.Context) error {
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	id, err := s.journeyOf(c)
	if err != nil {
		return err
	}
	w, err := reportWindow(c)
	if err != nil {
		return err
	}
	j, err := s.Journeys.Get(ctx, ws, id)
	if err != nil {
		return journeyProblem(err)
	}
	def := j.Draft
	if j.PublishedVersion != nil {
		if v, err := s.Journeys.Version(ctx, ws, id, *j.PublishedVersion); err == nil {
			def = v
		}
	}
	var nodes []string
	for _, n := range def.Nodes {
		nodes = append(nodes, n.ID)
	}
	r, err := report.NewStore(s.Pool).Journey(ctx, ws, id, j.Name, nodes, w)
	if err != nil {
		return err
	}
	if c.QueryParam("format") != "csv" {
		return c.JSON(http.StatusOK, r)
	}
	key, rows := "node", append(r.Nodes, r.Total)
	if c.QueryParam("by") == "day" {
		key, rows = "day", append(r.Days, r.Total)
	}
	out := [][]string{append([]string{key}, countHeader...)}
	for _, row := range rows {
		out = append(out, append([]string{row.Key}, countCells(row)...))
	}
	return writeCSV(c, "journey-"+id, out)
}

// journeysReport lists every journey's totals over the period.
func (s *Server) journeysReport(c echo.Context) error {
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	w, err := reportWindow(c)
	if err != nil {
		return err
	}
	js, err := s.Journeys.List(ctx, ws)
	if err != nil {
		return err
	}
	store := report.NewStore(s.Pool)
	type line struct {
		JourneyID string     `json:"journey_id"`
		Name      string     `json:"name"`
		Status    string     `json:"status"`
		Total     report.Row `json:"total"`
	}
	out := []line{}
	for _, j := range js {
		r, err := store.Journey(ctx, ws, j.ID, j.Name, nil, w)
		if err != nil {
			return err
		}
		out = append(out, line{JourneyID: j.ID, Name: j.Name, Status: j.Status, Total: r.Total})
	}
	if c.QueryParam("format") == "csv" {
		rows := [][]string{append([]string{"journey_id", "journey"}, countHeader...)}
		for _, l := range out {
			rows = append(rows, append([]string{l.JourneyID, l.Name}, countCells(l.Total)...))
		}
		return writeCSV(c, "journeys", rows)
	}
	return c.JSON(http.StatusOK, map[string]any{"from": w.From, "to": w.To, "data": out})
}

// newCustomersReport: new customers who acted on journey emails.
func (s *Server) newCustomersReport(c echo.Context) error {
	w, err := reportWindow(c)
	if err != nil {
		return err
	}
	event, lookback, err := conversionParams(c, "7d")
	if err != nil {
		return err
	}
	r, err := report.NewStore(s.Pool).NewCustomers(c.Request().Context(), keyFrom(c).WorkspaceID, event, lookback, w)
	if err != nil {
		return err
	}
	if c.QueryParam("format") == "csv" {
		return writeCSV(c, "new-customers", newCustomersCSV(r))
	}
	return c.JSON(http.StatusOK, r)
}

// newCustomersCSV is the new customers report as CSV rows (the API and the
// console download the same file).
func newCustomersCSV(r report.NewCustomers) [][]string {
	rows := [][]string{{"profile_id", "first_order_at", "journey_id", "journey", "action", "revenue"}}
	for _, n := range r.Customers {
		rows = append(rows, []string{n.ProfileID, n.FirstOrderAt.Format(time.RFC3339), n.JourneyID, n.JourneyName, n.Action, strconv.FormatFloat(n.Revenue, 'f', 2, 64)})
	}
	return rows
}

// touchpointsReport: the most popular touchpoints of prospects before they convert.
func (s *Server) touchpointsReport(c echo.Context) error {
	w, err := reportWindow(c)
	if err != nil {
		return err
	}
	event, lookback, err := conversionParams(c, "30d")
	if err != nil {
		return err
	}
	limit := 20
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			return invalid("The report's parameters are not valid.", FieldError{Field: "limit", Reason: "must be a whole number from 1 to 200"})
		}
		limit = n
	}
	r, err := report.NewStore(s.Pool).Touchpoints(c.Request().Context(), keyFrom(c).WorkspaceID, event, lookback, w, limit)
	if err != nil {
		return err
	}
	if c.QueryParam("format") == "csv" {
		return writeCSV(c, "touchpoints", touchpointsCSV(r))
	}
	return c.JSON(http.StatusOK, r)
}

// touchpointsCSV is the touchpoints report as CSV rows.
func touchpointsCSV(r report.Touchpoints) [][]string {
	rows := [][]string{{"touchpoint", "prospects", "occurrences", "share"}}
	for _, t := range r.Touchpoints {
		rows = append(rows, []string{t.Touchpoint, strconv.Itoa(t.Prospects), strconv.Itoa(t.Occurrences), strconv.FormatFloat(t.Share, 'f', 4, 64)})
	}
	return rows
}

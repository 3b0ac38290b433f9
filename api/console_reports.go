package api

import (
	"context"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/report"
	"github.com/parcours/parcours/pkg/user"
)

// The Reports page answers "how are my messages and journeys doing?" over
// the last 7, 30 or 90 days: what was sent, delivered, opened, clicked,
// bounced and converted, day by day, for the whole workspace or one
// journey; each journey's totals and step-by-step funnel; and the two
// reports marketers asked for by name: new customers who acted on journey
// emails before their first order, and the touchpoints prospects had
// before converting. The same figures as the /v1/reports API (pkg/report),
// with CSV downloads that use the console session instead of an API key.

// reportPeriods are the periods the page offers, in days.
var reportPeriods = []int{7, 30, 90}

const (
	defaultReportDays  = 30
	defaultReportEvent = "Order Completed"
	// The lookbacks of the API's defaults: an email acted on in the week
	// before a first order counts; touchpoints in the month before it.
	newCustomersLookback = 7 * 24 * time.Hour
	touchpointsLookback  = 30 * 24 * time.Hour
	// Tables on the page stay short; the CSV has every row.
	reportPageRows = 50
)

// reportQuery is what the page's form asks: a period, a journey ("" for the
// whole workspace) and the event that makes a customer.
type reportQuery struct {
	Days      int
	JourneyID string
	Event     string
}

// readReportQuery reads days (7, 30 or 90; else 30), journey and event
// (default "Order Completed").
func readReportQuery(c echo.Context) reportQuery {
	q := reportQuery{Days: defaultReportDays, JourneyID: strings.TrimSpace(c.QueryParam("journey")), Event: strings.TrimSpace(c.QueryParam("event"))}
	if n, err := strconv.Atoi(c.QueryParam("days")); err == nil {
		for _, p := range reportPeriods {
			if n == p {
				q.Days = n
			}
		}
	}
	if q.Event == "" {
		q.Event = defaultReportEvent
	}
	return q
}

// window is the query's period: whole UTC days, today included, so that
// "last 7 days" is seven points on a chart.
func (q reportQuery) window(now time.Time) report.Window {
	now = now.UTC()
	to := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	return report.Window{From: to.AddDate(0, 0, -q.Days), To: to, Zone: time.UTC}
}

// values is the query as URL parameters, for links that keep it.
func (q reportQuery) values() url.Values {
	v := url.Values{"days": {strconv.Itoa(q.Days)}}
	if q.JourneyID != "" {
		v.Set("journey", q.JourneyID)
	}
	if q.Event != defaultReportEvent {
		v.Set("event", q.Event)
	}
	return v
}

type periodOption struct {
	Days     int
	Label    string
	Selected bool
}

type journeyOption struct {
	ID, Name string
	Selected bool
}

// reportTotals are the period's totals over the charts' measures.
type reportTotals struct {
	Sent, Delivered, Opened, Clicked, Bounced, Converted int
	Revenue                                              float64
	OpenRate, ClickRate, RevenueText                     string
}

// journeyReportRow is one journey's line in the journeys table.
type journeyReportRow struct {
	ID, Name, Status, StatusKey string
	Sent, Delivered, Converted  int
	OpenRate, ClickRate         string
	Revenue                     string
	// Link shows this journey's charts and funnel.
	Link     string
	Selected bool
}

// reportFunnelStep is one step of the selected journey's funnel.
type reportFunnelStep struct {
	Kind, Text string
	// Passed counts the runs that went through the step; Share is it over
	// the runs that entered.
	Passed int
	Share  string
	// IsSend: the step sends a message, so Sent, Opened, Clicked apply.
	IsSend                bool
	Sent, Opened, Clicked int
	// Converted counts goals credited to the step's message (the last one
	// before the goal), with their Revenue.
	Converted int
	Revenue   string
}

// newCustomerRow is one new customer who acted on a journey email.
type newCustomerRow struct {
	ProfileID, Profile     string
	FirstOrderAt           time.Time
	JourneyID, JourneyName string
	Action, Revenue        string
}

// touchpointRow is one touchpoint, its share written for people.
type touchpointRow struct {
	report.Touchpoint
	SharePct string
}

// journeyCustomersRow is one journey's new customers.
type journeyCustomersRow struct {
	report.JourneyCount
	RevenueText string
}

type reportsData struct {
	Periods  []periodOption
	Journeys []journeyOption
	// Scope names what the charts cover: the workspace, or a journey.
	Scope       string
	JourneyID   string
	Event       string
	From, Until time.Time
	Totals      reportTotals
	// MessagesChart draws sends, deliveries, opens, clicks and bounces;
	// ConversionsChart the journey runs that reached their goal.
	MessagesChart, ConversionsChart template.HTML
	// Daily is the charts' data as a table, newest day first.
	Daily                 []report.Day
	JourneyRows           []journeyReportRow
	FunnelChart           template.HTML
	Funnel                []reportFunnelStep
	FunnelEntered         int
	NewCustomers          report.NewCustomers
	NewCustomerRows       []newCustomerRow
	NewCustomerShare      string
	NewCustomersByJourney []journeyCustomersRow
	MoreNewCustomers      int
	Touchpoints           report.Touchpoints
	TouchpointRows        []touchpointRow
	TouchpointsChart      template.HTML
	// CSV links keep the page's query.
	JourneysCSV, NewCustomersCSV, TouchpointsCSV string
}

// reportsPage shows the period's figures: the charts of the workspace or of
// the chosen journey, the journeys table, that journey's funnel, and the two
// reports about customers.
func (s *Server) reportsPage(c echo.Context, sess user.Session) error {
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	q := readReportQuery(c)
	w := q.window(time.Now())
	store := report.NewStore(s.Pool)
	d := reportsData{JourneyID: q.JourneyID, Event: q.Event, From: w.From, Until: w.To.AddDate(0, 0, -1), Scope: "all journeys and broadcasts"}
	for _, p := range reportPeriods {
		d.Periods = append(d.Periods, periodOption{Days: p, Label: "Last " + strconv.Itoa(p) + " days", Selected: p == q.Days})
	}
	js, err := s.Journeys.List(ctx, ws)
	if err != nil {
		return err
	}
	var selected *journey.Journey
	for i, j := range js {
		d.Journeys = append(d.Journeys, journeyOption{ID: j.ID, Name: j.Name, Selected: j.ID == q.JourneyID})
		if j.ID == q.JourneyID {
			selected = &js[i]
		}
	}
	if q.JourneyID != "" && selected == nil {
		return problem(http.StatusNotFound, "There is no such journey in this workspace. Choose one in the list of the Reports page.")
	}
	if selected != nil {
		d.Scope = "the journey “" + selected.Name + "”"
	}

	days, err := store.Daily(ctx, ws, q.JourneyID, w)
	if err != nil {
		return err
	}
	d.Totals, d.Daily = dailyTotals(days)
	d.MessagesChart, d.ConversionsChart = dailyCharts(days, d.Scope)

	if d.JourneyRows, err = s.reportJourneyRows(ctx, ws, js, q, w); err != nil {
		return err
	}
	if selected != nil {
		if err := s.reportFunnel(ctx, ws, *selected, w, &d); err != nil {
			return err
		}
	}

	if err := s.reportCustomers(ctx, ws, q, w, &d); err != nil {
		return err
	}
	base := q.values()
	base.Del("journey")
	d.JourneysCSV = "/reports/journeys.csv?" + base.Encode()
	d.NewCustomersCSV = "/reports/new-customers.csv?" + base.Encode()
	d.TouchpointsCSV = "/reports/touchpoints.csv?" + base.Encode()
	return s.render(c, http.StatusOK, "reports.html", view{Title: "Reports", Nav: "reports", User: &sess.User, CSRF: sess.CSRF, D: d})
}

// reportJourneyRows is every journey's line of the journeys table.
func (s *Server) reportJourneyRows(ctx context.Context, ws string, js []journey.Journey, q reportQuery, w report.Window) ([]journeyReportRow, error) {
	store := report.NewStore(s.Pool)
	var rows []journeyReportRow
	for _, j := range js {
		r, err := store.Journey(ctx, ws, j.ID, j.Name, nil, w)
		if err != nil {
			return nil, err
		}
		v := q
		v.JourneyID = j.ID
		rows = append(rows, journeyReportRow{ID: j.ID, Name: j.Name, Status: journeyStatusLabels[j.Status], StatusKey: j.Status,
			Sent: r.Total.Sent, Delivered: r.Total.Delivered, Converted: r.Total.Converted, Revenue: fmtMoney(r.Total.Revenue),
			OpenRate: rate(r.Total.Opened, r.Total.Delivered), ClickRate: rate(r.Total.Clicked, r.Total.Delivered),
			Link: "/reports?" + v.values().Encode() + "#charts", Selected: j.ID == q.JourneyID})
	}
	return rows, nil
}

// reportCustomers fills the two reports about customers: new customers
// who acted on journey emails, and the touchpoints of prospects.
func (s *Server) reportCustomers(ctx context.Context, ws string, q reportQuery, w report.Window, d *reportsData) error {
	var err error
	if d.NewCustomers, err = report.NewStore(s.Pool).NewCustomers(ctx, ws, q.Event, newCustomersLookback, w); err != nil {
		return err
	}
	d.NewCustomerShare = pct(d.NewCustomers.Acted, d.NewCustomers.NewCustomers)
	for _, jc := range d.NewCustomers.ByJourney {
		d.NewCustomersByJourney = append(d.NewCustomersByJourney, journeyCustomersRow{JourneyCount: jc, RevenueText: fmtMoney(jc.Revenue)})
	}
	labels := map[string]string{}
	for i, n := range d.NewCustomers.Customers {
		if i == reportPageRows {
			d.MoreNewCustomers = len(d.NewCustomers.Customers) - reportPageRows
			break
		}
		label, err := s.cachedLabel(ctx, labels, ws, n.ProfileID)
		if err != nil {
			return err
		}
		d.NewCustomerRows = append(d.NewCustomerRows, newCustomerRow{ProfileID: n.ProfileID, Profile: label, FirstOrderAt: n.FirstOrderAt,
			JourneyID: n.JourneyID, JourneyName: n.JourneyName, Action: n.Action, Revenue: fmtMoney(n.Revenue)})
	}
	if d.Touchpoints, err = report.NewStore(s.Pool).Touchpoints(ctx, ws, q.Event, touchpointsLookback, w, 20); err != nil {
		return err
	}
	var bars []chartBar
	for _, t := range d.Touchpoints.Touchpoints {
		d.TouchpointRows = append(d.TouchpointRows, touchpointRow{Touchpoint: t, SharePct: sharePct(t.Share)})
		bars = append(bars, chartBar{Label: t.Touchpoint, Value: float64(t.Prospects), Note: sharePct(t.Share) + " of converters"})
	}
	d.TouchpointsChart = barChart("Touchpoints of prospects before “"+q.Event+"”", bars, chartOptions{ID: "touchpoints",
		Desc: "How many of the people who converted had each touchpoint in the 30 days before."})
	return nil
}

// dailyTotals sums the days and lists them newest first for the table.
func dailyTotals(days []report.Day) (reportTotals, []report.Day) {
	var t reportTotals
	rows := make([]report.Day, 0, len(days))
	for i := len(days) - 1; i >= 0; i-- {
		day := days[i]
		t.Sent += day.Sent
		t.Delivered += day.Delivered
		t.Opened += day.Opened
		t.Clicked += day.Clicked
		t.Bounced += day.Bounced
		t.Converted += day.Converted
		t.Revenue += day.Revenue
		rows = append(rows, day)
	}
	t.OpenRate, t.ClickRate = rate(t.Opened, t.Delivered), rate(t.Clicked, t.Delivered)
	t.RevenueText = fmtMoney(t.Revenue)
	return t, rows
}

// dailyCharts draws the messages and the conversions by day. Conversions
// get a chart of their own: a handful a day would lie flat under
// thousands of sends.
func dailyCharts(days []report.Day, scope string) (messages, conversions template.HTML) {
	measures := []struct {
		name string
		of   func(report.Day) int
	}{
		{"Sent", func(d report.Day) int { return d.Sent }},
		{"Delivered", func(d report.Day) int { return d.Delivered }},
		{"Opened", func(d report.Day) int { return d.Opened }},
		{"Clicked", func(d report.Day) int { return d.Clicked }},
		{"Bounced", func(d report.Day) int { return d.Bounced }},
	}
	var series []chartSeries
	for _, m := range measures {
		cs := chartSeries{Name: m.name}
		for _, d := range days {
			cs.Points = append(cs.Points, chartPoint{At: d.Day, Value: float64(m.of(d))})
		}
		series = append(series, cs)
	}
	conv := chartSeries{Name: "Conversions"}
	for _, d := range days {
		conv.Points = append(conv.Points, chartPoint{At: d.Day, Value: float64(d.Converted)})
	}
	messages = lineChart("Messages by day", series, chartOptions{ID: "messages",
		Desc: "Messages of " + scope + " by day: sent, delivered, opened by people, clicked and bounced."})
	conversions = lineChart("Conversions by day", []chartSeries{conv}, chartOptions{ID: "conversions", Height: 200,
		Desc: "Journey runs of " + scope + " that reached their goal, by day."})
	return messages, conversions
}

// reportFunnel fills the selected journey's funnel: how many of the runs
// that entered in the period went through each step, in the order of the
// published version (else the draft).
func (s *Server) reportFunnel(ctx context.Context, ws string, j journey.Journey, w report.Window, d *reportsData) error {
	def := j.Draft
	if j.PublishedVersion != nil {
		v, err := s.Journeys.Version(ctx, ws, j.ID, *j.PublishedVersion)
		if err != nil {
			return err
		}
		def = v
	}
	words, err := s.journeyWords(ctx, ws)
	if err != nil {
		return err
	}
	var order []string
	for _, layer := range def.Layout().Layers {
		order = append(order, layer...)
	}
	r, err := report.NewStore(s.Pool).Journey(ctx, ws, j.ID, j.Name, order, w)
	if err != nil {
		return err
	}
	byNode := map[string]report.Row{}
	for _, n := range r.Nodes {
		byNode[n.Key] = n
	}
	nodes := map[string]journey.Node{}
	for _, n := range def.Nodes {
		nodes[n.ID] = n
	}
	d.FunnelEntered = r.Total.Entered
	bars := []chartBar{{Label: "Entered", Value: float64(r.Total.Entered)}}
	for _, id := range order {
		n, ok := nodes[id]
		if !ok {
			continue
		}
		st := words.step(n)
		row := byNode[id]
		step := reportFunnelStep{Kind: st.Kind, Text: st.Text, Passed: row.Entered, Share: pct(row.Entered, r.Total.Entered),
			IsSend: n.Type == journey.NodeSend, Sent: row.Sent, Opened: row.Opened, Clicked: row.Clicked,
			Converted: row.Converted, Revenue: fmtMoney(row.Revenue)}
		d.Funnel = append(d.Funnel, step)
		bars = append(bars, chartBar{Label: st.Kind + ": " + strings.Trim(st.Text, " "), Value: float64(row.Entered), Note: step.Share})
	}
	d.FunnelChart = barChart("Funnel of “"+j.Name+"”", bars, chartOptions{ID: "funnel",
		Desc: "How many of the runs that entered in the period went through each step."})
	return nil
}

// reportJourneysCSV downloads every journey's totals over the period.
func (s *Server) reportJourneysCSV(c echo.Context, sess user.Session) error {
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	w := readReportQuery(c).window(time.Now())
	js, err := s.Journeys.List(ctx, ws)
	if err != nil {
		return err
	}
	store := report.NewStore(s.Pool)
	rows := [][]string{append([]string{"journey_id", "journey"}, countHeader...)}
	for _, j := range js {
		r, err := store.Journey(ctx, ws, j.ID, j.Name, nil, w)
		if err != nil {
			return err
		}
		rows = append(rows, append([]string{j.ID, j.Name}, countCells(r.Total)...))
	}
	return writeCSV(c, "journeys-"+csvPeriod(w), rows)
}

// reportNewCustomersCSV downloads the new customers who acted on journey
// emails: the same file as GET /v1/reports/new-customers?format=csv.
func (s *Server) reportNewCustomersCSV(c echo.Context, sess user.Session) error {
	q := readReportQuery(c)
	w := q.window(time.Now())
	r, err := report.NewStore(s.Pool).NewCustomers(c.Request().Context(), sess.User.WorkspaceID, q.Event, newCustomersLookback, w)
	if err != nil {
		return err
	}
	return writeCSV(c, "new-customers-"+csvPeriod(w), newCustomersCSV(r))
}

// reportTouchpointsCSV downloads the touchpoints of prospects: the same
// file as GET /v1/reports/touchpoints?format=csv&limit=200.
func (s *Server) reportTouchpointsCSV(c echo.Context, sess user.Session) error {
	q := readReportQuery(c)
	w := q.window(time.Now())
	r, err := report.NewStore(s.Pool).Touchpoints(c.Request().Context(), sess.User.WorkspaceID, q.Event, touchpointsLookback, w, 200)
	if err != nil {
		return err
	}
	return writeCSV(c, "touchpoints-"+csvPeriod(w), touchpointsCSV(r))
}

// csvPeriod names a download by its first and last day.
func csvPeriod(w report.Window) string {
	return w.From.Format("2006-01-02") + "-to-" + w.To.AddDate(0, 0, -1).Format("2006-01-02")
}

// rate writes n out of total as a percentage with one decimal ("—" when
// total is 0: no rate, rather than a misleading 0%).
func rate(n, total int) string {
	if total == 0 {
		return "—"
	}
	return sharePct(float64(n) / float64(total))
}

// sharePct writes a share (0.256) as a percentage (25.6%).
func sharePct(share float64) string {
	return strings.TrimSuffix(strconv.FormatFloat(math.Round(share*1000)/10, 'f', 1, 64), ".0") + "%"
}

// fmtMoney writes revenue with two decimals and thousands separators. The
// workspace has no currency setting: revenue is whatever the order events
// carried.
func fmtMoney(v float64) string {
	cents := int64(math.Round(v * 100))
	whole := chartNumber(float64(cents / 100))
	if cents < 0 && cents/100 == 0 {
		whole = "-0"
	}
	return fmt.Sprintf("%s.%02d", whole, abs64(cents%100))
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

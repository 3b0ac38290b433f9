package api_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/user"
)

// The Reports page counts what really went through the ledger, the SendGrid
// Event Webhook and a journey run, day by day; its CSV downloads need a
// console session.
func TestConsoleReportsPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	k := newSGKey(t)
	_, ana := sgSetup(t, e, k)
	now := time.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	if now.Add(2*time.Minute).Day() != now.Day() {
		t.Skip("too close to midnight UTC: the page's days would move under the test")
	}
	hour := func(day, h int) time.Time { return today.AddDate(0, 0, day).Add(time.Duration(h) * time.Hour) }
	event := func(d channel.Delivery, name, id string, at time.Time, extra map[string]any) map[string]any {
		ev := sgEvent(d, e.ws.ID, name, id, extra)
		ev["timestamp"] = at.Unix()
		return ev
	}

	// Three promotional emails through the ledger. The ledger stamps sends
	// with the clock; the first is moved two days back, as if sent then.
	promo1, promo2, promo3 := e.sendPromo(t, "promo/1", ana, "marketing"), e.sendPromo(t, "promo/2", ana, "marketing"), e.sendPromo(t, "promo/3", ana, "marketing")
	if _, err := e.pool.Exec(ctx, `UPDATE deliveries SET sent_at = $3 WHERE workspace_id = $1 AND id = $2`, e.ws.ID, promo1.ID, hour(-2, 0)); err != nil {
		t.Fatal(err)
	}

	// A journey: ana signs up, the welcome email goes out today.
	e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": "welcome", "name": "Welcome", "channel": "email", "subject": "Welcome", "html": "<p>Hi</p>", "text": "Hi"})
	_, _, j := e.call(t, "POST", "/v1/journeys", e.admin, welcomeJourney)
	journeyID := j["id"].(string)
	e.call(t, "POST", "/v1/journeys/"+journeyID+"/publish", e.admin, nil)
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Signed Up"})
	e.waitForEnded(t, journeyID, 1)
	var welcome channel.Delivery
	ds, err := e.ledger.List(ctx, e.ws.ID, ana, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.JourneyID == journeyID {
			welcome = d
		}
	}
	if welcome.ID == "" {
		t.Fatalf("no welcome delivery among %+v", ds)
	}

	// What SendGrid reports, each event on its own day. Today's welcome
	// click comes before ana's first order, which makes her a new customer
	// who acted on a journey email.
	clickedAt := now.Add(-2 * time.Minute)
	if clickedAt.Before(today) {
		clickedAt = today
	}
	batch := mustJSON(t, []map[string]any{
		event(promo1, "delivered", "p1-delivered", hour(-2, 1), nil),
		event(promo1, "open", "p1-open", hour(-1, 9), map[string]any{"sg_machine_open": false}),
		event(promo1, "click", "p1-click", hour(-1, 9), map[string]any{"url": "https://shop.example/sale"}),
		event(promo2, "delivered", "p2-delivered", now, nil),
		event(promo2, "open", "p2-open-machine", now, map[string]any{"sg_machine_open": true}),
		event(promo3, "bounce", "p3-bounce", now, map[string]any{"reason": "550 no such user"}),
		event(welcome, "delivered", "w-delivered", clickedAt, nil),
		event(welcome, "click", "w-click", clickedAt, map[string]any{"url": "https://shop.example/"}),
	})
	if status, out := e.postSigned(t, k, batch); status != 200 || out["stored"] != 8.0 {
		t.Fatalf("event webhook: %d %v", status, out)
	}
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Order Completed", "properties": map[string]any{"total": 30}})
	// The journey's goal is reached yesterday (the run reaches it through
	// the journey workflow; the welcome journey has no goal, so the row is
	// written as the workflow's activity writes it).
	if _, err := e.pool.Exec(ctx, `INSERT INTO journey_conversions (workspace_id, workflow_id, run_id, journey_id, version, profile_id, delivery_id, node_id, revenue, at)
		VALUES ($1, 'wf-ana', 'run-ana', $2, 1, $3, $4, 'send_welcome', 30, $5)`, e.ws.ID, journeyID, ana, welcome.ID, hour(-1, 12)); err != nil {
		t.Fatal(err)
	}

	password := e.consoleUser(t, "rita@shop.example", user.RoleViewer)
	b := newBrowser(t, e)
	b.signIn(t, "rita@shop.example", password)
	resp, page := b.do(t, "GET", "/reports?days=7", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /reports: %d\n%.3000s", resp.StatusCode, page)
	}
	if !strings.Contains(page, `href="/reports" aria-current="page"`) {
		t.Error("the Reports menu item is not current")
	}
	// Sent: three promos and the welcome email. Delivered: promo 1 and 2,
	// welcome. Opened by a person: promo 1 (promo 2's open was a mail
	// privacy proxy). Clicked: promo 1, welcome. Bounced: promo 3.
	totals := map[string]string{"sent": "4", "delivered": "3", "opened": "1", "clicked": "2", "bounced": "1", "converted": "1"}
	for name, want := range totals {
		if got := statOf(t, page, `data-total="`+name+`"`); got != want {
			t.Errorf("total %s = %q, want %s", name, got, want)
		}
	}
	for _, want := range []string{"open rate 33.3% of delivered", "click rate 66.7% of delivered", "revenue 30.00"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}

	// The chart has a point a day for each measure, and each day's figures
	// on its day.
	messages := reportPart(page, `id="messages-chart"`, "</svg>")
	for _, series := range []string{"Sent", "Delivered", "Opened", "Clicked", "Bounced"} {
		group := reportPart(messages, `data-series="`+series+`"`, "</g></g>")
		if n := strings.Count(group, `class="pt"`); n != 7 {
			t.Errorf("series %s has %d points, want 7 (one a day)", series, n)
		}
	}
	day := func(d int) string { return today.AddDate(0, 0, d).Format("Mon 2 Jan 2006") }
	for _, want := range []string{
		"Sent · " + day(-2) + ": 1", "Delivered · " + day(-2) + ": 1", "Opened · " + day(-1) + ": 1", "Clicked · " + day(-1) + ": 1",
		"Sent · " + day(0) + ": 3", "Delivered · " + day(0) + ": 2", "Opened · " + day(0) + ": 0", "Bounced · " + day(0) + ": 1",
		"Sent · " + day(-6) + ": 0",
	} {
		if !strings.Contains(messages, want) {
			t.Errorf("messages chart lacks the point %q", want)
		}
	}
	if !strings.Contains(reportPart(page, `id="conversions-chart"`, "</svg>"), "Conversions · "+day(-1)+": 1") {
		t.Error("conversions chart lacks yesterday's conversion")
	}

	// The journeys table, and the journey's own charts and funnel.
	row := reportPart(page, `id="journey-report"`, "</table>")
	if !strings.Contains(row, ">Welcome</a>") || !regexp.MustCompile(`<td class="num">1</td><td class="num">1</td><td class="num">0%</td><td class="num">100%</td>\s*<td class="num">1</td><td class="num">30.00</td>`).MatchString(row) {
		t.Errorf("journeys table:\n%s", row)
	}
	_, page = b.do(t, "GET", "/reports?days=7&journey="+journeyID, nil)
	if got := statOf(t, page, `data-total="sent"`); got != "1" {
		t.Errorf("the journey's sends = %q, want 1 (the promos are not the journey's)", got)
	}
	funnel := reportPart(page, `id="report-funnel"`, "</table>")
	if !strings.Contains(page, "Messages and conversions of the journey “Welcome”") || !strings.Contains(funnel, "Send “Welcome”") ||
		!strings.Contains(funnel, `<td class="num">1</td><td class="num">100%</td>`) {
		t.Errorf("journey funnel:\n%s", funnel)
	}
	if resp, page := b.do(t, "GET", "/reports?journey=4b1e0a52-0000-4000-8000-000000000000", nil); resp.StatusCode != 404 || !strings.Contains(page, "no such journey") {
		t.Errorf("unknown journey: %d", resp.StatusCode)
	}

	// The two reports of the paper.
	if got := reportPart(page, `id="new-customers-acted"`, "</div>"); !strings.Contains(got, ">1") {
		t.Errorf("new customers who acted: %q", got)
	}
	list := reportPart(page, `id="new-customers-list"`, "</table>")
	if !strings.Contains(list, "ana@example.com") || !strings.Contains(list, "clicked the email") || !strings.Contains(list, "Welcome") {
		t.Errorf("new customers list:\n%s", list)
	}
	if tp := reportPart(page, `id="touchpoints-list"`, "</table>"); !strings.Contains(tp, "Signed Up") {
		t.Errorf("touchpoints:\n%s", tp)
	}

	// CSV downloads: with the session, the same file as the API's;
	// without one, the sign-in page and no data.
	resp, body := b.do(t, "GET", "/reports/new-customers.csv?days=7", nil)
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || err != nil ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "new-customers-") || len(rows) != 2 ||
		rows[0][0] != "profile_id" || rows[1][0] != ana || rows[1][2] != journeyID || rows[1][4] != "clicked" {
		t.Errorf("new customers CSV: %d %v %q", resp.StatusCode, err, body)
	}
	resp, body = b.do(t, "GET", "/reports/touchpoints.csv?days=7", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "touchpoint,prospects,occurrences,share\n") || !strings.Contains(body, "Signed Up") {
		t.Errorf("touchpoints CSV: %d %q", resp.StatusCode, body)
	}
	resp, body = b.do(t, "GET", "/reports/journeys.csv?days=7", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, journeyID+",Welcome,1,1,1,") {
		t.Errorf("journeys CSV: %d %q", resp.StatusCode, body)
	}
	stranger := newBrowser(t, e)
	for _, path := range []string{"/reports/new-customers.csv", "/reports/touchpoints.csv", "/reports/journeys.csv", "/reports"} {
		resp, body := stranger.do(t, "GET", path, nil)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") || strings.Contains(body, ana) {
			t.Errorf("%s without a session: %d %s", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// An API key is not a session.
	req, _ := http.NewRequest("GET", e.url+"/reports/new-customers.csv", nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	if resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req); err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Errorf("with an API key instead of a session: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// A workspace with nothing yet: the page says so instead of drawing empty
// axes, and the period picker keeps the choice.
func TestConsoleReportsPageWhenEmpty(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	password := e.consoleUser(t, "rita@shop.example", user.RoleViewer)
	b := newBrowser(t, e)
	b.signIn(t, "rita@shop.example", password)
	resp, page := b.do(t, "GET", "/reports?days=90", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /reports: %d", resp.StatusCode)
	}
	if !strings.Contains(page, `<option value="90" selected>Last 90 days</option>`) {
		t.Error("the period picker lost the choice of 90 days")
	}
	if n := strings.Count(reportPart(page, `data-series="Sent"`, "</g></g>"), `class="pt"`); n != 90 {
		t.Errorf("an empty period still has a point a day (zeros): %d points, want 90", n)
	}
	for _, want := range []string{"No journeys yet.", "Choose a journey", "None in this period."} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Anything but 7, 30 or 90 is the default, 30 days.
	_, page = b.do(t, "GET", "/reports?days=100000", nil)
	if !strings.Contains(page, `<option value="30" selected>`) {
		t.Error("an unknown period should fall back to 30 days")
	}
}

// reportPart returns the part of page from marker to the next end, or ""
// when marker is not on the page.
func reportPart(page, marker, end string) string {
	i := strings.Index(page, marker)
	if i < 0 {
		return ""
	}
	j := strings.Index(page[i:], end)
	if j < 0 {
		return page[i:]
	}
	return page[i : i+j]
}

// statOf reads the figure of the .stat element with attr.
func statOf(t *testing.T, page, attr string) string {
	t.Helper()
	m := regexp.MustCompile(`<div class="stat" ` + regexp.QuoteMeta(attr) + `>([^<]*)</div>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no stat %s on the page", attr)
	}
	return m[1]
}

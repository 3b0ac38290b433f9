package api_test

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/rules"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/user"
)

// between returns the part of page from the element with id to the end of
// the next closing tag given, or "" when the id is not on the page.
func between(page, id, end string) string {
	i := strings.Index(page, `id="`+id+`"`)
	if i < 0 {
		return ""
	}
	j := strings.Index(page[i:], end)
	if j < 0 {
		return page[i:]
	}
	return page[i : i+j]
}

var (
	profileLink = regexp.MustCompile(`href="/profiles/([0-9a-f-]{36})"`)
	tableRow    = regexp.MustCompile(`<tr>`)
	// chartPoint is a point of a chart, with its hover title (the legend's
	// marker has none).
	chartPoint = regexp.MustCompile(`class="pt"[^>]*><title>`)
)

// The editor's script posts the rule as the marketer types; the answer puts
// the error at its line and column, with the line and a caret under the
// column, or counts the profiles the rule selects now and names some.
func TestConsoleChecksARuleAsYouType(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pw := e.consoleUser(t, "vic@shop.example", user.RoleViewer) // checking saves nothing: viewers may
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "42", "traits": map[string]any{"email": "ana@example.com", "first_name": "Ana"}})
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "42", "event": "Order Completed", "properties": map[string]any{"total": 99}})
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "43", "traits": map[string]any{"email": "bob@example.com"}})
	b := newBrowser(t, e)
	token := b.signIn(t, "vic@shop.example", pw)

	bad := "profile.total_revenue > 50 &&\n  count(\"Order Completed\", \"90d\") >="
	_, err := segment.Compile(bad)
	var re *rules.Error
	if !errors.As(err, &re) || re.Line != 2 {
		t.Fatalf("test rule should fail on line 2: %v", err)
	}
	resp, body := b.do(t, "POST", "/segments/check", url.Values{"csrf": {token}, "rule": {bad}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("check an invalid rule: %d\n%.1500s", resp.StatusCode, body)
	}
	status := html.UnescapeString(body)
	for _, want := range []string{
		`id="rule-error"`, fmt.Sprintf(`data-line="2" data-column="%d"`, re.Column),
		fmt.Sprintf("Line 2, column %d:", re.Column), re.Message,
		// The line itself, and a caret under the column.
		"  count(\"Order Completed\", \"90d\") >=\n" + strings.Repeat(" ", re.Column-1) + "^</pre>",
	} {
		if !strings.Contains(status, want) {
			t.Errorf("the check of an invalid rule lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "live-count") || strings.Contains(body, "<html") {
		t.Errorf("the check of an invalid rule is not just the error:\n%s", body)
	}

	// Browsers send a textarea's line breaks as CRLF: the position is the same.
	if _, crlf := b.do(t, "POST", "/segments/check", url.Values{"csrf": {token}, "rule": {strings.ReplaceAll(bad, "\n", "\r\n")}}); !strings.Contains(crlf, fmt.Sprintf("Line 2, column %d:", re.Column)) {
		t.Errorf("with CRLF line breaks:\n%s", crlf)
	}

	good := "profile.total_revenue > 50 &&\n  count(\"Order Completed\", \"90d\") >= 1"
	resp, body = b.do(t, "POST", "/segments/check", url.Values{"csrf": {token}, "rule": {good}})
	if resp.StatusCode != http.StatusOK || strings.Contains(body, "rule-error") {
		t.Fatalf("check a valid rule: %d\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(body, `<strong id="live-count-n">1</strong> of 2 profiles match now`) || !strings.Contains(body, ">Ana</a>") || strings.Contains(body, "bob@example.com") {
		t.Errorf("the check of a valid rule should count 1 of 2 and name Ana only:\n%s", body)
	}
	if segs, err := e.segments.List(context.Background(), e.ws.ID); err != nil || len(segs) != 0 {
		t.Errorf("a check saved segments: %v %v", segs, err)
	}

	// The page loads the script and gives it the check's address.
	_, page := b.do(t, "GET", "/segments/new", nil)
	if !strings.Contains(page, `<script src="/assets/segments.js" defer></script>`) || !strings.Contains(page, `data-check="/segments/check"`) ||
		!strings.Contains(page, `id="rule-status" aria-live="polite"`) {
		t.Errorf("the editor does not wire the live check:\n%.3000s", page)
	}
	if resp, js := b.do(t, "GET", "/assets/segments.js", nil); resp.StatusCode != http.StatusOK || !strings.Contains(js, "/segments/check") && !strings.Contains(js, "data-check") {
		t.Errorf("segments.js: %d", resp.StatusCode)
	}

	// Without the session's token, or without a session, nothing is checked.
	if resp, _ := b.do(t, "POST", "/segments/check", url.Values{"csrf": {"forged"}, "rule": {good}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("check with a forged token: %d", resp.StatusCode)
	}
	if resp, body := newBrowser(t, e).do(t, "POST", "/segments/check", url.Values{"csrf": {token}, "rule": {good}}); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "live-count") {
		t.Errorf("check without a session: %d\n%.500s", resp.StatusCode, body)
	}
}

// A saved segment's page lists its members a page at a time, each linked
// to the profile; Export CSV downloads them all with the console session
// (and only with it); the size history is drawn, with its numbers in a
// table; the list says when each segment last changed.
func TestConsoleSegmentMembersExportAndSizes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	const pro = 27 // more than a page of members
	var batch []map[string]any
	for i := range pro {
		traits := map[string]any{"email": fmt.Sprintf("u%02d@example.com", i), "plan": "pro"}
		if i == 0 {
			traits["first_name"], traits["last_name"] = "Ana", "Lima"
		}
		batch = append(batch, map[string]any{"type": "identify", "userId": fmt.Sprintf("u%02d", i), "traits": traits})
	}
	e.mustSend(t, e.write, "/v1/batch", map[string]any{"batch": batch})
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "free", "traits": map[string]any{"email": "free@example.com", "plan": "free"}})
	status, _, sg := e.call(t, "POST", "/v1/segments", e.admin, map[string]any{"slug": "pro", "name": "Pro customers", "rule": `profile.traits.plan == "pro"`})
	if status != 201 {
		t.Fatalf("create segment: %d %v", status, sg)
	}
	id := sg["id"].(string)
	e.createSegment(t, "nobody", `profile.traits.plan == "none"`)
	e.waitFor(t, "the segment to fill", func() bool {
		got, err := e.segments.Get(ctx, e.ws.ID, id)
		return err == nil && got.Size == pro && got.LastComputedAt != nil
	})

	mia := e.consoleUser(t, "mia@shop.example", user.RoleMarketer)
	b := newBrowser(t, e)
	b.signIn(t, "mia@shop.example", mia)

	// Members, a page at a time.
	resp, page := b.do(t, "GET", "/segments/"+id, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("segment page: %d\n%.2000s", resp.StatusCode, page)
	}
	first := between(page, "member-list", "</table>")
	if n := len(tableRow.FindAllString(first, -1)); n != 26 { // the heading and 25 members
		t.Fatalf("first page lists %d rows, want a heading and 25 members:\n%s", n, first)
	}
	anaID := e.profileBy(t, "userId=u00")["id"].(string)
	if !strings.Contains(first, `<span class="badge known">Known</span>`) || strings.Contains(first, "free@example.com") {
		t.Errorf("member rows:\n%s", first)
	}
	if !strings.Contains(html.UnescapeString(between(page, "segment-summary", "</p>")), "<strong>27</strong> members") {
		t.Errorf("summary: %s", between(page, "segment-summary", "</p>"))
	}
	next := regexp.MustCompile(`href="(/segments/[^"]+\?members_after=[^"#]+)#members" id="members-next">Next 25 members`).FindStringSubmatch(page)
	if next == nil || strings.Contains(page, "members-first") {
		t.Fatalf("first page's paging:\n%s", between(page, "members", "</section>"))
	}
	_, page2 := b.do(t, "GET", html.UnescapeString(next[1]), nil)
	second := between(page2, "member-list", "</table>")
	if n := len(tableRow.FindAllString(second, -1)); n != 3 || strings.Contains(page2, "members-next") || !strings.Contains(page2, "members-first") {
		t.Fatalf("second page: %d rows\n%s", n, between(page2, "members", "</section>"))
	}
	seen := map[string]bool{}
	for _, m := range profileLink.FindAllStringSubmatch(first+second, -1) {
		seen[m[1]] = true
	}
	if len(seen) != pro || !seen[anaID] {
		t.Errorf("the two pages list %d distinct profiles, want all %d with Ana", len(seen), pro)
	}
	if !strings.Contains(first+second, `<a href="/profiles/`+anaID+`">Ana Lima</a>`) || !strings.Contains(first+second, ">u26@example.com</a>") {
		t.Errorf("members are not named as a marketer knows them:\n%s\n%s", first, second)
	}

	// Export CSV: with the session, every member; without it, nothing.
	if !strings.Contains(page, `href="/segments/`+id+`/export"`) {
		t.Fatal("no Export CSV link on the segment page")
	}
	resp, file := b.do(t, "GET", "/segments/"+id+"/export", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="segment-pro.csv"` || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("export: %d %v\n%.500s", resp.StatusCode, resp.Header, file)
	}
	recs, err := csv.NewReader(strings.NewReader(file)).ReadAll()
	if err != nil || len(recs) != pro+1 || strings.Join(recs[0], ",") != "profile_id,entered_at,email,user_id,state" {
		t.Fatalf("export CSV (%v): %d records, header %v", err, len(recs), recs[0])
	}
	if !strings.Contains(file, "u26@example.com") || strings.Contains(file, "free@example.com") {
		t.Errorf("export content:\n%s", file)
	}
	resp, body := newBrowser(t, e).do(t, "GET", "/segments/"+id+"/export", nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") || strings.Contains(body, "@example.com") {
		t.Errorf("export without a session: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest("GET", e.url+"/segments/"+id+"/export", nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	if resp, err := newBrowser(t, e).c.Do(req); err != nil || resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Content-Type") == "text/csv; charset=utf-8" {
		t.Errorf("export with an API key instead of a session: %v %v, want the sign-in redirect", resp.Status, err)
	} else {
		resp.Body.Close()
	}
	vic := e.consoleUser(t, "vic@shop.example", user.RoleViewer)
	viewer := newBrowser(t, e)
	viewer.signIn(t, "vic@shop.example", vic)
	if resp, body := viewer.do(t, "GET", "/segments/"+id+"/export", nil); resp.StatusCode != http.StatusForbidden || strings.Contains(body, "@example.com") {
		t.Errorf("export by a viewer: %d", resp.StatusCode)
	}
	if _, vpage := viewer.do(t, "GET", "/segments/"+id, nil); strings.Contains(vpage, "/export") || !strings.Contains(vpage, `id="member-list"`) {
		t.Errorf("a viewer sees the members, without the Export link")
	}

	// Size over time: two recorded points and the size now.
	week := time.Now().UTC().Truncate(time.Hour).Add(-7 * 24 * time.Hour)
	for i, size := range []int{40, 50} {
		if _, err := e.pool.Exec(ctx, `INSERT INTO segment_sizes (workspace_id, segment_id, at, size) VALUES ($1, $2, $3, $4)`,
			e.ws.ID, id, week.Add(time.Duration(i-1)*7*24*time.Hour), size); err != nil {
			t.Fatal(err)
		}
	}
	_, page = b.do(t, "GET", "/segments/"+id, nil)
	chart := between(page, "size-chart", "</svg>")
	if !strings.Contains(chart, `<svg`) || !strings.Contains(chart, `role="img"`) || !strings.Contains(html.UnescapeString(chart), "Size of “Pro customers” over time") {
		t.Fatalf("size chart:\n%.1500s", chart)
	}
	if !strings.Contains(chart, "highest 50 on "+week.Format("2 Jan")) {
		t.Errorf("the chart's description does not give the highest size:\n%.1500s", chart)
	}
	table := html.UnescapeString(between(page, "size-table", "</table>"))
	for _, want := range []string{
		"<td>Now</td><td class=\"num\">27</td>",
		"<td>" + week.Add(-7*24*time.Hour).Format("2 Jan 2006, 15:04 UTC") + "</td><td class=\"num\">40</td>",
		"<td>" + week.Format("2 Jan 2006, 15:04 UTC") + "</td><td class=\"num\">50</td>",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("size table lacks %q:\n%s", want, table)
		}
	}
	if points, rows := len(chartPoint.FindAllString(chart, -1)), len(tableRow.FindAllString(table, -1))-1; points != rows || points < 3 {
		t.Errorf("the chart draws %d points, the table lists %d", points, rows)
	}

	// The list: size, and when someone last entered or left.
	var last time.Time
	if err := e.pool.QueryRow(ctx, `SELECT max(entered_at) FROM segment_memberships WHERE workspace_id = $1 AND segment_id = $2`, e.ws.ID, id).Scan(&last); err != nil {
		t.Fatal(err)
	}
	_, list := b.do(t, "GET", "/segments", nil)
	rows := strings.Split(between(list, "segment-list", "</table>"), "<tr>")
	var proRow, nobodyRow string
	for _, r := range rows {
		switch {
		case strings.Contains(r, ">Pro customers<"):
			proRow = r
		case strings.Contains(r, ">nobody<"):
			nobodyRow = r
		}
	}
	if !strings.Contains(proRow, `<td class="num">27</td>`) || !strings.Contains(proRow, "<td>"+last.UTC().Format("2 Jan 2006, 15:04 UTC")+"</td>") {
		t.Errorf("the list's row of Pro customers should give 27 members, last change %s:\n%s", last.UTC().Format("2 Jan 2006, 15:04 UTC"), proRow)
	}
	if !strings.Contains(nobodyRow, `<td class="num">0</td>`) || !strings.Contains(nobodyRow, "nobody yet") {
		t.Errorf("the list's row of an empty segment:\n%s", nobodyRow)
	}
}

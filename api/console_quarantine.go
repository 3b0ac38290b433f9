package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/user"
	"github.com/parcours/parcours/pkg/validation"
)

const (
	// quarantinePage is how many records the quarantine page lists at once.
	quarantinePage = 50
	// quarantineReasons is how many reasons the filter offers (the most
	// frequent).
	quarantineReasons = 30
)

// quarantineRow is a rejected record as the console shows it.
type quarantineRow struct {
	ingest.RejectedRecord
	SourceLabel string
	// Why says in a sentence what is wrong; Where is the field it was
	// found at, as sent.
	Why, Where string
	// Pretty is the raw record, indented when it is JSON.
	Pretty string
}

var (
	batchField  = regexp.MustCompile(`^batch\[(\d+)\]\.(.+)$`)
	importField = regexp.MustCompile(`^line (\d+)(?:: (.+))?$`)
)

// quarantineWhy words a rejection for people: "userId is missing: every
// record needs a userId or an anonymousId", "Validation rule “…” rejected
// it: …", "Line 12, column Email: …".
func quarantineWhy(field, reason string) string {
	if m := importField.FindStringSubmatch(field); m != nil {
		if m[2] == "" {
			return "Line " + m[1] + " of the file " + reason
		}
		return "Line " + m[1] + ", column “" + m[2] + "”: " + reason
	}
	if m := batchField.FindStringSubmatch(field); m != nil {
		field = m[2]
	}
	switch field {
	case "rule":
		return "Validation " + reason
	case "(record)", "body", "batch", "":
		subject := "The record "
		if field == "batch" {
			subject = "The batch "
		}
		if strings.HasPrefix(reason, "is ") || strings.HasPrefix(reason, "has ") {
			return subject + reason
		}
		return upperFirst(reason)
	}
	return field + " " + reason
}

func newQuarantineRow(r ingest.RejectedRecord) quarantineRow {
	row := quarantineRow{RejectedRecord: r, SourceLabel: sourceLabel(r.Source), Why: quarantineWhy(r.Field, r.Reason), Where: r.Field, Pretty: r.Raw}
	var buf bytes.Buffer
	if json.Valid([]byte(r.Raw)) && json.Indent(&buf, []byte(r.Raw), "", "  ") == nil {
		row.Pretty = buf.String()
	}
	return row
}

// filterOption is a choice of a filter, with how many records have it.
type filterOption struct {
	Value, Label string
	Count        int
}

type quarantineData struct {
	Rows     []quarantineRow
	Filter   ingest.QuarantineFilter
	Sources  []filterOption
	Reasons  []filterOption
	States   []filterOption
	Matching int
	// Older pages on: the id to list records before; 0 for no more.
	Older     int64
	CanReplay bool
	// Replayed is set after a replay: how many were accepted, how many not.
	Replayed        bool
	Accepted, Still int
	MaxReplay       int
	Rules           []validation.Stored
}

// quarantineFilter reads the filter of a query or a form.
func quarantineFilter(c echo.Context) ingest.QuarantineFilter {
	f := ingest.QuarantineFilter{Source: c.FormValue("source"), Reason: c.FormValue("reason"), State: c.FormValue("state")}
	if f.State != ingest.QuarantineReplayed && f.State != ingest.QuarantineAll {
		f.State = ingest.QuarantineWaiting
	}
	f.Before, _ = strconv.ParseInt(c.QueryParam("before"), 10, 64)
	return f
}

// filterQuery writes a filter back as a query string.
func filterQuery(f ingest.QuarantineFilter) url.Values {
	q := url.Values{}
	if f.Source != "" {
		q.Set("source", f.Source)
	}
	if f.Reason != "" {
		q.Set("reason", f.Reason)
	}
	if f.State != ingest.QuarantineWaiting {
		q.Set("state", f.State)
	}
	return q
}

func (s *Server) quarantinePage(c echo.Context, sess user.Session) error {
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	f := quarantineFilter(c)
	recs, err := s.Ingest.ListQuarantine(ctx, ws, f, quarantinePage)
	if err != nil {
		return err
	}
	d := quarantineData{Filter: f, CanReplay: sess.User.Role.Allows(user.RoleMarketer), MaxReplay: ingest.MaxReplayBatch}
	for _, r := range recs {
		d.Rows = append(d.Rows, newQuarantineRow(r))
	}
	if len(recs) == quarantinePage {
		d.Older = recs[len(recs)-1].ID
	}
	if d.Matching, err = s.Ingest.CountQuarantine(ctx, ws, f); err != nil {
		return err
	}
	sources, reasons, err := s.Ingest.QuarantineGroups(ctx, ws, quarantineReasons)
	if err != nil {
		return err
	}
	d.Sources = groupOptions(sources, f.Source, sourceLabel)
	d.Reasons = groupOptions(reasons, f.Reason, func(r string) string {
		if len(r) > 110 {
			r = strings.ToValidUTF8(r[:110], "") + "…"
		}
		return r
	})
	d.States = []filterOption{
		{Value: ingest.QuarantineWaiting, Label: "Waiting for a replay"},
		{Value: ingest.QuarantineReplayed, Label: "Accepted on replay"},
		{Value: ingest.QuarantineAll, Label: "All"},
	}
	if q := c.QueryParams(); q.Has("accepted") {
		d.Replayed = true
		d.Accepted, _ = strconv.Atoi(q.Get("accepted"))
		d.Still, _ = strconv.Atoi(q.Get("still"))
	}
	if s.Validation != nil {
		if d.Rules, err = s.Validation.List(ctx, ws); err != nil {
			return err
		}
	}
	return s.renderData(c, sess, http.StatusOK, "data_quarantine.html", "Quarantine", "/data/quarantine", d)
}

// groupOptions makes a filter's choices; the current value stays offered
// even when no waiting record has it any more.
func groupOptions(groups []ingest.QuarantineGroup, current string, label func(string) string) []filterOption {
	var out []filterOption
	seen := false
	for _, g := range groups {
		out = append(out, filterOption{Value: g.Value, Label: label(g.Value), Count: g.Count})
		seen = seen || g.Value == current
	}
	if current != "" && !seen {
		out = append(out, filterOption{Value: current, Label: label(current)})
	}
	return out
}

// replayQuarantineForm runs quarantined records through parsing and the
// current validation rules again: one record (field id), or every waiting
// record the filter selects (up to ingest.MaxReplayBatch at once). Those
// now accepted are stored; the others keep their updated reason.
func (s *Server) replayQuarantineForm(c echo.Context, sess user.Session) error {
	ctx := c.Request().Context()
	ws := sess.User.WorkspaceID
	f := quarantineFilter(c)
	var ids []int64
	if v := c.FormValue("id"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return problem(http.StatusNotFound, "There is no such record in the quarantine.")
		}
		ids = []int64{id}
	} else {
		var err error
		if ids, err = s.Ingest.WaitingIDs(ctx, ws, f); err != nil {
			return err
		}
	}
	var res ingest.ReplayResult
	if len(ids) > 0 { // none would replay everything: never from a filter
		rules, err := s.Validation.Enabled(ctx, ws)
		if err != nil {
			return err
		}
		res, err = s.Ingest.Replay(ctx, ws, ids, func(m *events.Message, source string) string {
			return validation.Check(rules, m, source)
		})
		if err != nil {
			return err
		}
		s.logger.InfoContext(ctx, "quarantine replayed in the console", "user_id", sess.User.ID,
			"accepted", res.Replayed, "still_rejected", res.StillRejected)
	}
	q := filterQuery(f)
	q.Set("accepted", strconv.Itoa(res.Replayed))
	q.Set("still", strconv.Itoa(res.StillRejected))
	return c.Redirect(http.StatusSeeOther, "/data/quarantine?"+q.Encode()+"#replayed")
}

// toggleRuleForm turns a validation rule on or off (field enabled: on or
// off), typically to let records it rejected through on a replay.
func (s *Server) toggleRuleForm(c echo.Context, sess user.Session) error {
	id := c.Param("id")
	if !isUUID(id) {
		return problem(http.StatusNotFound, "There is no such validation rule in this workspace.")
	}
	enabled := c.FormValue("enabled") == "on"
	_, err := s.Validation.Update(c.Request().Context(), sess.User.WorkspaceID, id, nil, &enabled)
	if errors.Is(err, validation.ErrNotFound) {
		return problem(http.StatusNotFound, "There is no such validation rule in this workspace.")
	}
	if err != nil {
		return err
	}
	q := filterQuery(quarantineFilter(c))
	return c.Redirect(http.StatusSeeOther, "/data/quarantine?"+q.Encode()+"#rules")
}

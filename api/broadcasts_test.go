package api_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/pkg/broadcast"
	"github.com/parcours/parcours/pkg/channel/channeltest"
	"github.com/parcours/parcours/pkg/trigger"
	"github.com/parcours/parcours/worker"
	"github.com/parcours/parcours/workflows"
)

// broadcastEnv is an env with a fake SendGrid, a newsletter template and
// n people in the segment "pro" (plus one outside it).
func broadcastEnv(t *testing.T, n int) (*env, *channeltest.SendGrid) {
	t.Helper()
	e := newEnv(t)
	fake := channeltest.NewSendGrid(t, "SG.broadcast")
	if status, _, body := e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{"api_key": "SG.broadcast", "from_email": "news@shop.example", "base_url": fake.URL}); status != 200 {
		t.Fatalf("email channel: %d %v", status, body)
	}
	if status, _, body := e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": "newsletter", "name": "Newsletter", "channel": "email",
		"subject": "News for {{ profile.traits.first_name }}",
		"html":    `<p>Hi {{ profile.traits.first_name }},</p><p>Our November selection, for everyone.</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>`,
		"text":    "Hi {{ profile.traits.first_name }}, our November selection."}); status != 201 {
		t.Fatalf("template: %d %v", status, body)
	}
	for first := 0; first < n; first += 100 {
		var batch []map[string]any
		for i := first; i < min(first+100, n); i++ {
			batch = append(batch, map[string]any{"type": "identify", "userId": fmt.Sprintf("u%d", i),
				"traits": map[string]any{"email": fmt.Sprintf("u%d@example.com", i), "first_name": fmt.Sprintf("F%d", i), "plan": "pro"}})
		}
		e.mustSend(t, e.write, "/v1/batch", map[string]any{"batch": batch})
	}
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "free", "traits": map[string]any{"email": "free@example.com", "plan": "free"}})
	sg := e.createSegment(t, "pro", `profile.traits.plan == "pro"`)
	e.waitFor(t, "the segment to fill", func() bool {
		_, _, body := e.call(t, "GET", "/v1/segments/"+sg["id"].(string), e.admin, nil)
		return body["size"] == float64(n)
	})
	return e, fake
}

func (e *env) broadcast(t *testing.T, id string) map[string]any {
	t.Helper()
	status, _, body := e.call(t, "GET", "/v1/broadcasts/"+id, e.admin, nil)
	if status != 200 {
		t.Fatalf("GET broadcast: %d %v", status, body)
	}
	return body
}

// A broadcast to 2,500 people, one unsubscribed and one suppressed: 2,498
// emails in 3 SendGrid requests, each person once with their own content,
// the two others skipped with their reason; running the occurrence again
// (a duplicate start, a retried batch) sends nothing more.
func TestBroadcastSendsInBatchesOncePerPerson(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 2500
	e, fake := broadcastEnv(t, n)
	unsub := e.profileBy(t, "userId=u7")["id"].(string)
	if status, _, body := e.call(t, "PUT", "/v1/profiles/"+unsub+"/subscriptions/email", e.admin, map[string]any{"purpose": "marketing", "status": "unsubscribed"}); status != 200 {
		t.Fatalf("unsubscribe: %d %v", status, body)
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO suppressions (workspace_id, channel, address_hash, reason) VALUES ($1, 'email', $2, 'bounce')`,
		e.ws.ID, e.ledger.Settings.AddressHash(e.ws.ID, "u8@example.com")); err != nil {
		t.Fatal(err)
	}

	status, _, b := e.call(t, "POST", "/v1/broadcasts", e.admin, map[string]any{"name": "November newsletter", "segment": "pro", "template": "newsletter"})
	if status != 201 || b["status"] != "running" || b["class"] != "marketing" {
		t.Fatalf("create: %d %v", status, b)
	}
	id := b["id"].(string)
	deadline := time.Now().Add(60 * time.Second)
	for e.broadcast(t, id)["status"] != "sent" {
		if time.Now().After(deadline) {
			t.Fatalf("broadcast not sent in time: %v", e.broadcast(t, id))
		}
		time.Sleep(200 * time.Millisecond)
	}

	if calls := fake.Calls(); calls != 3 {
		t.Fatalf("%d SendGrid requests, want 3 (1,000 recipients each)", calls)
	}
	msgs := fake.Messages()
	if len(msgs) != n-2 {
		t.Fatalf("%d emails, want %d", len(msgs), n-2)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		addr := m.To.Email
		if seen[addr] {
			t.Fatalf("%s got two emails", addr)
		}
		seen[addr] = true
		i := strings.TrimSuffix(strings.TrimPrefix(addr, "u"), "@example.com")
		if m.Subject != "News for F"+i || !strings.Contains(m.HTML, "<p>Hi F"+i+",</p>") || m.Text != "Hi F"+i+", our November selection." {
			t.Fatalf("%s got %q / %q / %q", addr, m.Subject, m.HTML, m.Text)
		}
		if m.CustomArgs["parcours_broadcast_id"] != id || m.CustomArgs["parcours_delivery_id"] == "" || !strings.Contains(m.HTML, "/v1/unsubscribe?token=") {
			t.Fatalf("%s: custom args %v, html %q", addr, m.CustomArgs, m.HTML)
		}
	}
	for _, never := range []string{"u7@example.com", "u8@example.com", "free@example.com"} {
		if seen[never] {
			t.Fatalf("%s got an email", never)
		}
	}

	got := e.broadcast(t, id)
	occ := got["occurrences"].([]any)
	if len(occ) != 1 {
		t.Fatalf("occurrences %v", occ)
	}
	o := occ[0].(map[string]any)
	c := o["counts"].(map[string]any)
	skipped := c["skipped_by_reason"].(map[string]any)
	if o["occurrence"] != "once" || o["status"] != "sent" || c["recipients"] != float64(n) || c["sent"] != float64(n-2) || c["skipped"] != float64(2) ||
		skipped["unsubscribed from marketing email"] != float64(1) || skipped["address suppressed (bounce)"] != float64(1) || c["failed"] != float64(0) || c["pending"] != float64(0) {
		t.Fatalf("occurrence %v", o)
	}
	if !strings.Contains(o["temporal_ui_url"].(string), "/workflows/"+strings.ReplaceAll(o["workflow_id"].(string), "/", "%2F")) {
		t.Fatalf("temporal link %v", o["temporal_ui_url"])
	}
	// The skipped are in the ledger too, with their reason.
	status, _, ds := e.call(t, "GET", "/v1/deliveries?profile_id="+unsub, e.admin, nil)
	if d := ds["data"].([]any)[0].(map[string]any); status != 200 || d["status"] != "skipped" || d["business_key"] != "broadcast/"+id+"/once/"+unsub {
		t.Fatalf("delivery of the unsubscribed: %d %v", status, d)
	}

	// A duplicate start of the occurrence is refused by Temporal ...
	bc, err := broadcast.NewStore(e.pool).Load(ctx, e.ws.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := trigger.ScheduleBroadcast(ctx, e.tc, e.taskQueue, e.ws.ID, bc, time.Now()); err == nil {
		t.Fatal("a second start of the same occurrence was accepted")
	}
	// ... a run under another id finds the occurrence done ...
	run, err := e.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "rerun-" + id, TaskQueue: e.taskQueue}, workflows.BroadcastWorkflow,
		workflows.BroadcastInput{WorkspaceID: e.ws.ID, BroadcastID: id, Occurrence: "once"})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.BroadcastResult
	if err := run.Get(ctx, &res); err != nil || res.Status != "skipped" {
		t.Fatalf("rerun: %+v %v", res, err)
	}
	// ... and a retried batch finds every delivery decided.
	acts := &activities.Activities{Pool: e.pool, Ledger: e.ledger}
	again, err := acts.SendBroadcastBatch(ctx, activities.SendBroadcastBatchInput{
		BroadcastRef: activities.BroadcastRef{WorkspaceID: e.ws.ID, BroadcastID: id, Occurrence: "once"}, Batch: 0, Size: workflows.BroadcastBatchSize})
	if err != nil || again.HTTPCalls != 0 || again.Recipients != 1000 || again.Sent+again.Skipped != 1000 {
		t.Fatalf("retried batch: %+v %v", again, err)
	}
	if fake.Calls() != 3 || len(fake.Messages()) != n-2 {
		t.Fatalf("after the reruns: %d calls, %d emails", fake.Calls(), len(fake.Messages()))
	}

	// Temporal history holds ids and counts, no address or name.
	wid, rid := o["workflow_id"].(string), o["run_id"].(string)
	it := e.tc.GetWorkflowHistory(ctx, wid, rid, false, 0)
	events := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if text := historyText(ev); strings.Contains(text, "example.com") || strings.Contains(text, "F42") {
			t.Fatalf("personal data in the broadcast's history: %s", text)
		}
		events++
	}
	if events < 10 {
		t.Fatalf("only %d history events", events)
	}

	// Cancelling what was sent is a conflict.
	if status, _, body := e.call(t, "POST", "/v1/broadcasts/"+id+"/cancel", e.admin, nil); status != 409 {
		t.Fatalf("cancel a sent broadcast: %d %v", status, body)
	}
}

// A broadcast cancelled before its time sends nothing.
func TestBroadcastCancelledBeforeItsTimeSendsNothing(t *testing.T) {
	t.Parallel()
	e, fake := broadcastEnv(t, 5)
	at := time.Now().Add(3 * time.Second).Truncate(time.Second)
	status, _, b := e.call(t, "POST", "/v1/broadcasts", e.admin, map[string]any{"name": "Later", "segment": "pro", "template": "newsletter",
		"schedule": map[string]any{"at": at.Format(time.RFC3339)}})
	if status != 201 || b["status"] != "scheduled" {
		t.Fatalf("create: %d %v", status, b)
	}
	id := b["id"].(string)
	status, _, b = e.call(t, "POST", "/v1/broadcasts/"+id+"/cancel", e.admin, nil)
	if status != 200 || b["status"] != "cancelled" || b["cancelled_at"] == nil {
		t.Fatalf("cancel: %d %v", status, b)
	}
	if status, _, b := e.call(t, "POST", "/v1/broadcasts/"+id+"/cancel", e.admin, nil); status != 200 || b["status"] != "cancelled" {
		t.Fatalf("cancel again: %d %v", status, b)
	}
	// The run ends without sending, however long we wait past the time.
	run := e.tc.GetWorkflow(context.Background(), workflows.BroadcastRunID(e.ws.ID, id, "once"), "")
	var res workflows.BroadcastResult
	_ = run.Get(context.Background(), &res)
	time.Sleep(time.Until(at.Add(2 * time.Second)))
	if fake.Calls() != 0 {
		t.Fatalf("%d SendGrid calls after cancelling", fake.Calls())
	}
	desc, err := e.tc.DescribeWorkflowExecution(context.Background(), workflows.BroadcastRunID(e.ws.ID, id, "once"), "")
	if err != nil || desc.WorkflowExecutionInfo.CloseTime == nil {
		t.Fatalf("the run is still open: %v %v", desc, err)
	}
	if got := e.broadcast(t, id); got["status"] != "cancelled" {
		t.Fatalf("after its time: %v", got)
	}
}

// A recurring broadcast is a Temporal Schedule in the broadcast's time
// zone; each run is an occurrence named by its time; cancelling deletes
// the schedule.
func TestRecurringBroadcastRunsOnATemporalSchedule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, fake := broadcastEnv(t, 3)
	status, _, b := e.call(t, "POST", "/v1/broadcasts", e.admin, map[string]any{"name": "Monday news", "segment": "pro", "template": "newsletter",
		"schedule": map[string]any{"cron": "0 9 * * mon", "timezone": "Europe/Paris"}})
	if status != 201 || b["status"] != "active" {
		t.Fatalf("create: %d %v", status, b)
	}
	id := b["id"].(string)
	h := e.tc.ScheduleClient().GetHandle(ctx, trigger.BroadcastScheduleID(e.ws.ID, id))
	desc, err := h.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tz := desc.Schedule.Spec.TimeZoneName; tz != "Europe/Paris" {
		t.Fatalf("schedule time zone %q", tz)
	}
	if next := desc.Info.NextActionTimes; len(next) == 0 || next[0].In(mustZone(t, "Europe/Paris")).Weekday() != time.Monday || next[0].In(mustZone(t, "Europe/Paris")).Hour() != 9 {
		t.Fatalf("next runs %v, want Mondays 09:00 in Paris", next)
	}
	// Run one occurrence now.
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "the triggered occurrence to be sent", func() bool {
		occ := e.broadcast(t, id)["occurrences"].([]any)
		return len(occ) == 1 && occ[0].(map[string]any)["status"] == "sent"
	})
	o := e.broadcast(t, id)["occurrences"].([]any)[0].(map[string]any)
	if _, err := time.Parse(time.RFC3339, o["occurrence"].(string)); err != nil || fake.Calls() != 1 || len(fake.Messages()) != 3 {
		t.Fatalf("occurrence %v; %d calls, %d emails", o, fake.Calls(), len(fake.Messages()))
	}
	if got := e.broadcast(t, id); got["status"] != "active" {
		t.Fatalf("a recurring broadcast stays active after an occurrence: %v", got["status"])
	}
	if status, _, b := e.call(t, "POST", "/v1/broadcasts/"+id+"/cancel", e.admin, nil); status != 200 || b["status"] != "cancelled" {
		t.Fatalf("cancel: %d %v", status, b)
	}
	var nf *serviceerror.NotFound
	if _, err := h.Describe(ctx); !errors.As(err, &nf) {
		t.Fatalf("schedule after cancel: %v, want not found", err)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// Every mistake in a broadcast is a 422 naming the field.
func TestBroadcastValidationNamesTheField(t *testing.T) {
	t.Parallel()
	e, _ := broadcastEnv(t, 1)
	if status, _, body := e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": "hook", "name": "Hook", "channel": "webhook", "text": "x"}); status != 201 {
		t.Fatalf("webhook template: %d %v", status, body)
	}
	future := time.Now().Add(time.Hour).Format(time.RFC3339)
	ok := map[string]any{"name": "N", "segment": "pro", "template": "newsletter"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range ok {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	tests := []struct {
		name  string
		body  any
		field string
	}{
		{"no name", with("name", nil), "name"},
		{"unknown segment", with("segment", "nope"), "segment"},
		{"unknown template", with("template", "nope"), "template"},
		{"template of another channel", with("template", "hook"), "template"},
		{"sms", with("channel", "sms"), "channel"},
		{"class", with("class", "promo"), "class"},
		{"misspelt field", with("segmnet", "pro"), "segmnet"},
		{"at not a time", with("schedule", map[string]any{"at": "tomorrow"}), "schedule.at"},
		{"at in the past", with("schedule", map[string]any{"at": "2020-01-01T09:00:00Z"}), "schedule.at"},
		{"at and cron", with("schedule", map[string]any{"at": future, "cron": "0 9 * * mon"}), "schedule"},
		{"cron fields", with("schedule", map[string]any{"cron": "0 9 * *"}), "schedule.cron"},
		{"cron Temporal refuses", with("schedule", map[string]any{"cron": "0 25 * * mon"}), "schedule.cron"},
		{"time zone", with("schedule", map[string]any{"cron": "0 9 * * mon", "timezone": "Mars/Olympus"}), "schedule.timezone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := e.call(t, "POST", "/v1/broadcasts", e.admin, tt.body)
			if status != 422 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/problem+json") {
				t.Fatalf("%d %v", status, body)
			}
			errs, _ := body["errors"].([]any)
			if len(errs) == 0 || errs[0].(map[string]any)["field"] != tt.field || errs[0].(map[string]any)["reason"] == "" {
				t.Fatalf("errors %v, want field %s", body["errors"], tt.field)
			}
		})
	}
	if n := e.count(t, `SELECT count(*) FROM broadcasts`); n != 0 {
		t.Fatalf("%d broadcasts kept from refused requests", n)
	}
	for _, path := range []string{"/v1/broadcasts/00000000-0000-0000-0000-000000000000", "/v1/broadcasts/nope"} {
		if status, _, _ := e.call(t, "GET", path, e.admin, nil); status != 404 {
			t.Fatalf("GET %s: %d", path, status)
		}
	}
	if status, _, body := e.call(t, "GET", "/v1/broadcasts", e.admin, nil); status != 200 || len(body["data"].([]any)) != 0 {
		t.Fatalf("list: %d %v", status, body)
	}
}

// TestRecordBroadcastHistory records a broadcast occurrence's history and
// replays it against today's code; with PARCOURS_RECORD_HISTORIES=1 it
// writes workflows/testdata/broadcast.json for the replay test (the other
// histories are recorded by TestRecordWorkflowHistories).
func TestRecordBroadcastHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	if os.Getenv("PARCOURS_RECORD_HISTORIES") == "1" {
		dir = "../workflows/testdata"
	}
	e, _ := broadcastEnv(t, 3)
	status, _, b := e.call(t, "POST", "/v1/broadcasts", e.admin, map[string]any{"name": "Recorded", "segment": "pro", "template": "newsletter"})
	if status != 201 {
		t.Fatalf("create: %d %v", status, b)
	}
	run := e.tc.GetWorkflow(ctx, workflows.BroadcastRunID(e.ws.ID, b["id"].(string), "once"), "")
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	it := e.tc.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, 0)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	raw, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "broadcast.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	r := sdkworker.NewWorkflowReplayer()
	worker.RegisterWorkflows(r)
	if err := r.ReplayWorkflowHistoryFromJSONFile(nil, path); err != nil {
		t.Fatalf("fresh broadcast history does not replay: %v", err)
	}
}

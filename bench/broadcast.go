package bench

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/pkg/broadcast"
	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/template"
	"github.com/parcours/parcours/pkg/trigger"
	"github.com/parcours/parcours/worker"
	"github.com/parcours/parcours/workflows"
)

// broadcastFigures is what B7 measured.
type broadcastFigures struct {
	Recipients int
	// Took is the broadcast from its creation to the end of its workflow.
	Took  time.Duration
	Calls int
	// The baseline: one single send (one HTTP call) per recipient, measured
	// on a sample and extrapolated to Recipients.
	SampleSize     int
	SampleTook     time.Duration
	SampleCalls    int
	SampleSenders  int
	BaselineCalls  int
	BaselineTookAt time.Duration
}

// benchBroadcast measures a broadcast of one personalised template to a
// segment of s.BroadcastRecipients people through the real path: the API's
// store and Temporal start, the parcours.Broadcast workflow on an
// in-process Temporal server with the production worker registration, the
// batch activities, the delivery ledger and SendGrid's wire format on a
// local fake answering after s.BroadcastLatency. The baseline sends a
// sample of the same audience one message per HTTP call through the same
// ledger (Ledger.Send, what a journey's send node does), from
// s.WorkflowClients concurrent senders, and extrapolates.
func benchBroadcast(ctx context.Context, s Sizes, databaseURL string, a *parcoursAPI, log *slog.Logger) (broadcastFigures, error) {
	var f broadcastFigures
	t, err := a.newTenant(ctx, "bench-broadcast")
	if err != nil {
		return f, err
	}
	// The worker's own pool, as `parcours worker` opens it (pgxpool default).
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return f, fmt.Errorf("open worker pool: %w", err)
	}
	defer pool.Close()
	t0 := time.Now()
	if err := seedAudience(ctx, pool, t.id, s.BroadcastRecipients); err != nil {
		return f, err
	}
	log.Info("B7 audience seeded", "recipients", s.BroadcastRecipients, "took", time.Since(t0).Round(time.Millisecond))

	fake := channeltest.StartSendGrid("SG.bench")
	defer fake.Close()
	fake.SetLatency(s.BroadcastLatency)
	key := make([]byte, channel.KeySize)
	_, _ = rand.Read(key)
	box, err := channel.NewBox(key)
	if err != nil {
		return f, err
	}
	allow := []string{"127.0.0.1"}
	ledger := &channel.Ledger{
		Pool: pool, Settings: channel.NewStore(pool, box).AllowProviderHosts(channeltest.FakeHosts()...), Templates: template.NewStore(pool), Profiles: profile.NewStore(pool),
		SendGrid: channel.NewSendGrid(allow), Webhook: channel.NewWebhook(allow), PublicURL: "https://parcours.example.com",
	}
	if _, err := ledger.Settings.PutEmail(ctx, t.id, fake.APIKey, "news@shop.example", "The Shop", fake.URL); err != nil {
		return f, err
	}
	// A newsletter as marketers write them: the same text for everyone,
	// the first name in the subject and greeting, a one-click unsubscribe
	// link of its own in every body.
	if _, err := ledger.Templates.Create(ctx, t.id, template.Template{Slug: "newsletter", Name: "Newsletter", Channel: "email",
		Subject: "{{ profile.traits.first_name }}, our November selection",
		HTML:    newsletterHTML, Text: "Hi {{ profile.traits.first_name }}, our November selection: https://shop.example/november\nUnsubscribe: {{ unsubscribe_url }}"}); err != nil {
		return f, err
	}

	ts, err := startTemporal()
	if err != nil {
		return f, err
	}
	defer stopTemporal(ts)
	c := ts.GetDefaultClient()
	if err := worker.EnsureSearchAttributes(ctx, c, ts.GetDefaultNamespace(), log); err != nil {
		return f, err
	}
	const queue = "parcours-bench-broadcast"
	w := sdkworker.New(c, queue, sdkworker.Options{})
	worker.Register(w, &activities.Activities{Pool: pool, Segments: segment.NewStore(pool, time.Second), Ledger: ledger})
	if err := w.Start(); err != nil {
		return f, fmt.Errorf("start Temporal worker: %w", err)
	}
	defer w.Stop()

	// Parcours: create and run the broadcast, as POST /v1/broadcasts does.
	store := broadcast.NewStore(a.pool)
	start := time.Now()
	b, err := store.Create(ctx, t.id, broadcast.Input{Name: "November newsletter", Segment: "everyone", Template: "newsletter"}, start)
	if err != nil {
		return f, err
	}
	if err := trigger.ScheduleBroadcast(ctx, c, queue, t.id, b, start); err != nil {
		return f, err
	}
	var res workflows.BroadcastResult
	if err := c.GetWorkflow(ctx, workflows.BroadcastRunID(t.id, b.ID, broadcast.Once), "").Get(ctx, &res); err != nil {
		return f, fmt.Errorf("broadcast workflow: %w", err)
	}
	f.Took, f.Recipients, f.Calls = time.Since(start), s.BroadcastRecipients, fake.Calls()
	// Check, not trust: every recipient got exactly one email.
	seen := make(map[string]bool, f.Recipients)
	for _, m := range fake.Messages() {
		if seen[m.To.Email] {
			return f, fmt.Errorf("B7: %s got two emails", m.To.Email)
		}
		seen[m.To.Email] = true
	}
	if res.Status != "sent" || len(seen) != f.Recipients || res.Progress.Done.Sent != f.Recipients {
		return f, fmt.Errorf("B7: broadcast %s with %d of %d recipients emailed (progress %+v)", res.Status, len(seen), f.Recipients, res.Progress.Done)
	}
	log.Info("B7 broadcast sent", "recipients", f.Recipients, "calls", f.Calls, "took", f.Took.Round(time.Millisecond))

	// Baseline: one Ledger.Send, one HTTP call, per recipient of a sample.
	rows, err := pool.Query(ctx, `SELECT profile_id::text FROM broadcast_recipients WHERE workspace_id = $1 AND broadcast_id = $2 ORDER BY seq LIMIT $3`,
		t.id, b.ID, s.BroadcastSample)
	if err != nil {
		return f, err
	}
	sample, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return f, err
	}
	before := fake.Calls()
	f.SampleSize, f.SampleSenders = len(sample), s.WorkflowClients
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, f.SampleSenders)
	t1 := time.Now()
	for range f.SampleSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(sample) {
					return
				}
				d, err := ledger.Send(ctx, channel.SendRequest{BusinessKey: "bench-single/" + sample[i], WorkspaceID: t.id, ProfileID: sample[i],
					TemplateSlug: "newsletter", Channel: "email", Class: "marketing"})
				if err == nil && d.Status != channel.StatusSent {
					err = fmt.Errorf("single send to %s: %s %s", sample[i], d.Status, d.Reason)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	f.SampleTook = time.Since(t1)
	close(errs)
	if err := <-errs; err != nil {
		return f, err
	}
	f.SampleCalls = fake.Calls() - before
	if f.SampleCalls != f.SampleSize {
		return f, fmt.Errorf("B7 baseline: %d HTTP calls for %d single sends", f.SampleCalls, f.SampleSize)
	}
	f.BaselineCalls = f.Recipients // one per recipient, by construction (checked on the sample)
	f.BaselineTookAt = time.Duration(float64(f.SampleTook) * float64(f.Recipients) / float64(f.SampleSize))
	return f, nil
}

// newsletterHTML is a realistic newsletter body: a few kilobytes shared by
// everyone around a personal greeting and a personal unsubscribe link.
var newsletterHTML = func() string {
	body := `<!doctype html><html><body style="font-family:sans-serif"><h1>Hi {{ profile.traits.first_name }},</h1>` +
		`<p>Here is our November selection, chosen for runners who do not stop when the days get shorter.</p>`
	for i := range 12 {
		body += fmt.Sprintf(`<table role="presentation" width="100%%"><tr><td><img src="https://shop.example/img/p%d.jpg" alt="Product %d" width="120"></td>`+
			`<td><h2>Trail shoe %d</h2><p>Grip on wet leaves, a cushioned sole for long runs, reflective details for dark mornings.</p>`+
			`<p><a href="https://shop.example/p/%d">See the shoe</a> — €%d.90</p></td></tr></table>`, i, i, i, i, 79+i*5)
	}
	return body + `<p style="font-size:12px">You receive this because you are a customer of The Shop. ` +
		`<a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>`
}()

// seedAudience makes n known profiles with an email identity and a first
// name, all members of the segment "everyone", with CopyFrom (not timed).
func seedAudience(ctx context.Context, pool *pgxpool.Pool, workspaceID string, n int) error {
	sg, err := segment.NewStore(pool, 0).Create(ctx, workspaceID, "everyone", "Everyone", `profile.state != "anonymous"`)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	now := time.Now().Add(-time.Hour)
	ws, err := uuid.Parse(workspaceID)
	if err != nil {
		return err
	}
	segID, err := uuid.Parse(sg.ID)
	if err != nil {
		return err
	}
	const chunk = 10_000
	for first := 0; first < n; first += chunk {
		var profiles, identities, members [][]any
		for i := first; i < min(first+chunk, n); i++ {
			id := uuid.New()
			traits, _ := json.Marshal(map[string]any{"email": fmt.Sprintf("runner%d@example.com", i), "first_name": fmt.Sprintf("Runner%d", i)})
			profiles = append(profiles, []any{ws, id, "known", traits, now, now})
			identities = append(identities, []any{ws, "email", fmt.Sprintf("runner%d@example.com", i), id, id, "bench"})
			members = append(members, []any{ws, segID, id, now})
		}
		for _, cp := range []struct {
			table string
			cols  []string
			rows  [][]any
		}{
			{"profiles", []string{"workspace_id", "id", "state", "traits", "first_seen_at", "last_seen_at"}, profiles},
			{"identities", []string{"workspace_id", "type", "value", "profile_id", "origin_profile_id", "source"}, identities},
			{"segment_memberships", []string{"workspace_id", "segment_id", "profile_id", "entered_at"}, members},
		} {
			if _, err := pool.CopyFrom(ctx, pgx.Identifier{cp.table}, cp.cols, pgx.CopyFromRows(cp.rows)); err != nil {
				return fmt.Errorf("seed %s: %w", cp.table, err)
			}
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE profiles, identities, segment_memberships`); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}

// broadcastOutcome is B7's measurement, or why it failed.
type broadcastOutcome struct {
	s   Sizes
	f   broadcastFigures
	err error
}

// measureBroadcast runs B7 through the harness's step (CHECKPOINT before,
// progress logged).
func measureBroadcast(ctx context.Context, s Sizes, databaseURL string, a *parcoursAPI, log *slog.Logger,
	step func(string, func() (Result, error)) (Result, error)) broadcastOutcome {
	out := broadcastOutcome{s: s}
	_, out.err = step("B7 broadcast", func() (Result, error) {
		var err error
		out.f, err = benchBroadcast(ctx, s, databaseURL, a, log)
		return Result{}, err
	})
	return out
}

// rows are B7's two lines: HTTP calls, and the time to send everything.
func (o broadcastOutcome) rows() []Row {
	f := o.f
	workload := fmt.Sprintf("broadcast of a personalised newsletter to %s recipients, fake SendGrid answering after %s", formatNumber(float64(o.s.BroadcastRecipients)), o.s.BroadcastLatency)
	if o.err != nil {
		return []Row{{ID: "B7", Workload: workload, Err: o.err}}
	}
	perCall := float64(f.Recipients) / float64(max(f.Calls, 1))
	baseRate := float64(f.SampleSize) / f.SampleTook.Seconds()
	return []Row{
		{ID: "B7", Workload: workload + "; recipients per SendGrid HTTP call vs one call per recipient",
			Parcours: &Figure{Value: perCall, Unit: "recipients/call", Note: fmt.Sprintf("%d calls", f.Calls)},
			Baseline: &Figure{Value: 1, Unit: "recipients/call", Note: fmt.Sprintf("%s calls", formatNumber(float64(f.BaselineCalls)))},
			Target:   Target{MinRatio: 500, Text: "≥ 500× fewer HTTP calls"}},
		{ID: "B7", Workload: workload + "; time from creation to the last send recorded vs single sends (extrapolated)",
			Parcours: &Figure{Value: f.Took.Seconds(), Unit: "s", Note: fmt.Sprintf("%s recipients/s", formatNumber(float64(f.Recipients)/f.Took.Seconds()))},
			Baseline: &Figure{Value: f.BaselineTookAt.Seconds(), Unit: "s", Note: fmt.Sprintf("extrapolated from %d single sends by %d concurrent senders: %s/s",
				f.SampleSize, f.SampleSenders, formatNumber(baseRate))},
			Target: Target{MaxValue: 60, Text: "≤ 60 s"}},
	}
}

func (o broadcastOutcome) note() string {
	return fmt.Sprintf("**B7** seeds %s known profiles with an email identity and a first name, members of one segment (CopyFrom, not timed), "+
		"and a newsletter template of about 4 KB whose subject, greeting and one-click unsubscribe link differ for every person. "+
		"It then creates the broadcast through the API's store and starts it as `POST /v1/broadcasts` does, on an in-process Temporal server "+
		"with the production worker registration and its own pgxpool: the `parcours.Broadcast` workflow snapshots the audience, then sends "+
		"batches of 1,000 (4 in flight) through the delivery ledger (claim, consent, suppressions, render, one SendGrid request per batch with "+
		"the shared HTML once and per-person substitutions) to a local fake SendGrid that answers after %s. "+
		"The figure is the time from creation to the workflow's end; the harness then checks that every person got exactly one email. "+
		"The baseline is the same ledger's single send (one HTTP call per message, what a journey's send node does) to %d people of the same audience "+
		"from %d concurrent senders, its time extrapolated linearly to the whole audience; it leaves out the cost of one workflow per person, so it flatters the baseline. "+
		"Alone: `go run ./bench/cmd/parcours-bench -only B7`.",
		formatNumber(float64(o.s.BroadcastRecipients)), o.s.BroadcastLatency, o.s.BroadcastSample, o.s.WorkflowClients)
}

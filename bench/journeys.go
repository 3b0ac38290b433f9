package bench

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/api"
	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/template"
	"github.com/parcours/parcours/pkg/validation"
	"github.com/parcours/parcours/worker"
)

// journeyRig is Parcours with journeys: the API as `parcours api` builds it
// with a Temporal client, a worker as `parcours worker` registers it (real
// activities, the delivery ledger) on an in-process Temporal server, and a
// fake SendGrid on loopback.
type journeyRig struct {
	ts     *temporaltest.TestServer
	c      client.Client
	w      sdkworker.Worker
	hs     *httptest.Server
	url    string
	pool   *pgxpool.Pool
	fake   *channeltest.SendGrid
	tenant tenant
}

const journeyQueue = "parcours-bench-journeys"

func startJourneyRig(ctx context.Context, databaseURL string, a *parcoursAPI, slug string, log *slog.Logger) (_ *journeyRig, err error) {
	r := &journeyRig{}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if r.tenant, err = a.newTenant(ctx, slug); err != nil {
		return nil, err
	}
	if r.pool, err = pgxpool.New(ctx, databaseURL); err != nil {
		return nil, fmt.Errorf("open worker pool: %w", err)
	}
	if r.ts, err = startTemporal(); err != nil {
		return nil, err
	}
	r.c = r.ts.GetDefaultClient()
	if err := worker.EnsureSearchAttributes(ctx, r.c, r.ts.GetDefaultNamespace(), log); err != nil {
		return nil, err
	}
	key := make([]byte, channel.KeySize)
	_, _ = rand.Read(key)
	box, err := channel.NewBox(key)
	if err != nil {
		return nil, err
	}
	r.fake = channeltest.StartSendGrid("SG.bench")
	allow := []string{"127.0.0.1"}
	ledger := &channel.Ledger{
		Pool: r.pool, Settings: channel.NewStore(r.pool, box).AllowProviderHosts(channeltest.FakeHosts()...), Templates: template.NewStore(r.pool), Profiles: profile.NewStore(r.pool),
		SendGrid: channel.NewSendGrid(allow), Webhook: channel.NewWebhook(allow), PublicURL: "https://parcours.example.com",
	}
	if _, err := ledger.Settings.PutEmail(ctx, r.tenant.id, r.fake.APIKey, "news@shop.example", "The Shop", r.fake.URL); err != nil {
		return nil, err
	}
	if _, err := ledger.Templates.Create(ctx, r.tenant.id, template.Template{Slug: "hello", Name: "Hello", Channel: "email",
		Subject: "Hello {{ profile.traits.first_name }}", HTML: "<p>Hello {{ profile.traits.first_name }}</p>", Text: "Hello"}); err != nil {
		return nil, err
	}
	// The worker as `parcours worker` builds it (its options, e.g. pollers).
	r.w = worker.New(r.c, journeyQueue, &activities.Activities{Pool: r.pool, Segments: segment.NewStore(r.pool, time.Second),
		Journeys: journey.NewStore(r.pool, time.Second), Ingest: ingest.NewStore(r.pool), Ledger: ledger})
	if err := r.w.Start(); err != nil {
		return nil, fmt.Errorf("start Temporal worker: %w", err)
	}
	// The API, as startAPI builds it, with Temporal: triggers start runs.
	s := api.New(api.Deps{
		Pool: a.pool, Workspaces: a.workspaces, Ingest: a.ingest, GroupCommit: ingest.NewGroupCommitter(ctx, a.ingest),
		Profiles: profile.NewStore(a.pool), Journeys: journey.NewStore(a.pool, 5*time.Second),
		Validation: validation.NewStore(a.pool, 5*time.Second), Segments: segment.NewStore(a.pool, 5*time.Second),
		Channels: ledger.Settings, Templates: ledger.Templates, Ledger: ledger,
		Temporal: r.c, TaskQueue: journeyQueue, BodyLimit: "1M",
	})
	r.hs = httptest.NewServer(s.Handler())
	r.url = r.hs.URL
	return r, nil
}

func (r *journeyRig) close() {
	if r.hs != nil {
		r.hs.Close()
	}
	if r.w != nil {
		r.w.Stop()
	}
	if r.ts != nil {
		stopTemporal(r.ts)
	}
	if r.fake != nil {
		r.fake.Close()
	}
	if r.pool != nil {
		r.pool.Close()
	}
}

// publish creates and publishes a journey through the API.
func (r *journeyRig) publish(ctx context.Context, hc *http.Client, definition string) (string, error) {
	raw, err := do(ctx, hc, http.MethodPost, r.url+"/v1/journeys", []byte(definition), r.tenant.adminHeader, http.StatusCreated)
	if err != nil {
		return "", fmt.Errorf("create journey: %w", err)
	}
	id := jsonField(raw, "id")
	if _, err := do(ctx, hc, http.MethodPost, r.url+"/v1/journeys/"+id+"/publish", nil, r.tenant.adminHeader, http.StatusOK); err != nil {
		return "", fmt.Errorf("publish journey: %w", err)
	}
	return id, nil
}

// b5Journey is B5's three nodes: an email to the fake SendGrid, a 1 s wait,
// and a wait for an event that does not come (1 s timeout).
const b5Journey = `{"name": "B5", "trigger": {"type": "api"}, "entry": {"re_entry": "every_time"}, "start": "hello",
  "nodes": [
    {"id": "hello", "type": "send", "channel": "email", "template": "hello", "next": "pause"},
    {"id": "pause", "type": "wait", "duration": "1s", "next": "reply"},
    {"id": "reply", "type": "wait_for_event", "event": "Replied", "timeout": "1s", "on_event": "end", "on_timeout": "end"},
    {"id": "end", "type": "exit"}]}`

// benchJourneyStarts measures journeys started and run to their end per
// second (B5), closed loop like the bare-workflow baseline: JourneyClients
// clients each enter a profile through POST /v1/journeys/{id}/entries, wait
// for that run to end (its workflow result, from Temporal), and start
// again, for the measured duration. Every run spends 2 s in its timers, so
// the clients are many (a run waiting costs a client nothing else); the
// rate is runs ended per second, and every run must have sent its email.
func benchJourneyStarts(ctx context.Context, s Sizes, databaseURL string, a *parcoursAPI, log *slog.Logger) (Result, error) {
	r, err := startJourneyRig(ctx, databaseURL, a, "bench-b5", log)
	if err != nil {
		return Result{}, err
	}
	defer r.close()
	hc := newHTTPClient(s.JourneyClients)
	defer hc.CloseIdleConnections()
	id, err := r.publish(ctx, hc, b5Journey)
	if err != nil {
		return Result{}, err
	}
	n := min(s.Users, 1000)
	if err := seedProfiles(ctx, a.ingest, r.tenant, n); err != nil {
		return Result{}, err
	}
	profiles, err := profileIDs(ctx, a.pool, r.tenant.id, n)
	if err != nil {
		return Result{}, err
	}
	hdr := r.tenant.adminHeader.Clone()
	hdr.Set("Content-Type", "application/json")
	op := func(ctx context.Context, seq int64) (int, error) {
		body := []byte(`{"profile_id":"` + profiles[int(seq)%len(profiles)] + `"}`)
		raw, err := do(ctx, hc, http.MethodPost, r.url+"/v1/journeys/"+id+"/entries", body, hdr, http.StatusAccepted)
		if err != nil {
			return 0, err
		}
		// The run's end: its workflow result.
		if err := r.c.GetWorkflow(ctx, jsonField(raw, "workflow_id"), "").Get(ctx, nil); err != nil {
			return 0, fmt.Errorf("journey run: %w", err)
		}
		return 1, nil
	}
	res := throughput(ctx, s, s.JourneyClients, 1, op)
	if err := res.check("B5 journeys"); err != nil {
		return res, err
	}
	if sent := r.fake.Calls(); int64(sent) != res.Units+res.WarmupUnits {
		return res, fmt.Errorf("B5: %d emails for %d runs", sent, res.Units+res.WarmupUnits)
	}
	return res, nil
}

// profileIDs lists n profile ids of a workspace.
func profileIDs(ctx context.Context, pool *pgxpool.Pool, workspaceID string, n int) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT id::text FROM profiles WHERE workspace_id = $1 LIMIT $2`, workspaceID, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no profiles in workspace %s", workspaceID)
	}
	return out, rows.Err()
}

// b4Journey starts one run per cart, waiting for its order.
const b4Journey = `{"name": "B4", "trigger": {"type": "event", "event": "Cart Updated", "correlation_key": "properties.cart_id"},
  "entry": {"re_entry": "every_time"}, "start": "wait_order",
  "nodes": [
    {"id": "wait_order", "type": "wait_for_event", "event": "Order Completed", "match": "properties.cart_id == trigger.properties.cart_id",
     "timeout": "1h", "on_event": "end", "on_timeout": "end"},
    {"id": "end", "type": "exit"}]}`

// benchEventToJourney measures B4: /v1/track at a steady JourneyEventRate
// (open loop) for LookupDuration, one record in 20 a "Cart Updated" that
// starts a run (the others page-like "Product Viewed" records no journey
// listens to); the latency of a triggering record runs from when its
// request was due to when its run is at its first node (the workflow has
// started and recorded its step), seen by a watcher polling every 5 ms.
func benchEventToJourney(ctx context.Context, s Sizes, databaseURL string, a *parcoursAPI, log *slog.Logger) (Result, error) {
	r, err := startJourneyRig(ctx, databaseURL, a, "bench-b4", log)
	if err != nil {
		return Result{}, err
	}
	defer r.close()
	const maxInFlight = 64
	hc := newHTTPClient(maxInFlight)
	defer hc.CloseIdleConnections()
	id, err := r.publish(ctx, hc, b4Journey)
	if err != nil {
		return Result{}, err
	}
	var mu sync.Mutex
	due := map[string]time.Time{} // cart id → when its record was due
	seen := map[string]time.Time{}
	stop := make(chan struct{})
	watched := make(chan error, 1)
	go func() {
		// The watcher: runs at their first node, by cart id (the run key).
		prefix := len("journey/" + r.tenant.id + "/" + id + "/")
		for {
			select {
			case <-stop:
				watched <- nil
				return
			case <-time.After(5 * time.Millisecond):
			}
			rows, err := a.pool.Query(ctx, `SELECT workflow_id FROM journey_runs WHERE workspace_id = $1 AND journey_id = $2 AND node IS NOT NULL`, r.tenant.id, id)
			if err != nil {
				watched <- err
				return
			}
			now := time.Now()
			mu.Lock()
			for rows.Next() {
				var wid string
				if err := rows.Scan(&wid); err == nil && len(wid) > prefix {
					// workflow id: journey/<ws>/<journey>/<profile>/<cart>
					cart := wid[prefix:]
					if i := lastSlash(cart); i >= 0 {
						cart = cart[i+1:]
					}
					if _, ok := seen[cart]; !ok {
						seen[cart] = now
					}
				}
			}
			mu.Unlock()
			rows.Close()
		}
	}()
	g := newGenerator("b4", s.Users, time.Now())
	op := func(ctx context.Context, seq int64) (int, error) {
		user := "user" + strconv.Itoa(g.userOf(seq))
		var body string
		if seq%20 == 0 {
			cart := "c" + strconv.FormatInt(seq, 10)
			mu.Lock()
			due[cart] = time.Now()
			mu.Unlock()
			body = `{"userId":"` + user + `","event":"Cart Updated","messageId":"b4-` + cart + `","properties":{"cart_id":"` + cart + `","total":20}}`
		} else {
			body = `{"userId":"` + user + `","event":"Product Viewed","messageId":"b4-` + strconv.FormatInt(seq, 10) + `","properties":{"sku":"p` + strconv.FormatInt(seq%500, 10) + `"}}`
		}
		_, err := do(ctx, hc, http.MethodPost, r.url+"/v1/track", []byte(body), r.tenant.writeHeader, http.StatusOK)
		return 1, err
	}
	res := Open(ctx, s.JourneyEventRate, s.LookupDuration, maxInFlight, op)
	if err := res.check("B4 /v1/track"); err != nil {
		close(stop)
		return res, err
	}
	// Let the last runs start, then read the latencies.
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		done := len(seen) >= len(due)
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	if err := <-watched; err != nil {
		return res, err
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < len(due) {
		return res, fmt.Errorf("B4: %d of %d triggering records started a run within a minute", len(seen), len(due))
	}
	lat := make([]time.Duration, 0, len(due))
	for cart, t := range due {
		lat = append(lat, seen[cart].Sub(t))
	}
	slices.Sort(lat)
	out := Result{Ops: int64(len(lat)), Units: res.Units, Elapsed: res.Elapsed, latencies: lat}
	return out, nil
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// jsonField reads a top-level string field of a JSON object.
func jsonField(raw []byte, field string) string {
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	s, _ := m[field].(string)
	return s
}

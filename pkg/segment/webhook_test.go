package segment_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/workspace"
)

// hookEnv is a migrated database with a workspace, its segments and
// webhook stores, and a way to change profiles the way ingestion does.
type hookEnv struct {
	pool     *pgxpool.Pool
	ws       string
	origin   ingest.Origin
	ingest   *ingest.Store
	segments *segment.Store
	hooks    *segment.Webhooks
	box      *channel.Box
	seq      int
}

func newHookEnv(t *testing.T) *hookEnv {
	t.Helper()
	pool := pgtest.NewPool(t)
	ws, keys, _, err := workspace.NewStore(pool).Bootstrap(context.Background(), "default", "Default workspace")
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, channel.KeySize)
	rand.Read(key)
	box, err := channel.NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	return &hookEnv{
		pool: pool, ws: ws.ID, origin: ingest.Origin{WorkspaceID: ws.ID, KeyID: keys[1].ID, Source: "web"},
		ingest: ingest.NewStore(pool).WithHashes(box.Hashes()), segments: segment.NewStore(pool, 0), hooks: segment.NewWebhooks(pool, box), box: box,
	}
}

// identify stores identify calls (user id → plan trait, email user@example.com)
// and re-evaluates segments as the API does after ingesting.
func (e *hookEnv) identify(t *testing.T, plans map[string]string) {
	t.Helper()
	var recs []string
	for user, plan := range plans {
		e.seq++
		recs = append(recs, fmt.Sprintf(`{"type":"identify","messageId":"m-%d","userId":%q,"traits":{"email":"%s@example.com","plan":%q}}`, e.seq, user, user, plan))
	}
	msgs, rejected, _, err := events.ParseBatch([]byte(`{"batch":[`+strings.Join(recs, ",")+`]}`), time.Now())
	if err != nil || len(rejected) > 0 {
		t.Fatalf("parse: %v %v", err, rejected)
	}
	res, err := e.ingest.Ingest(context.Background(), e.origin, msgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.segments.Refresh(context.Background(), e.ws, res.Changes, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
}

func (e *hookEnv) profileOf(t *testing.T, user string) string {
	t.Helper()
	var id string
	if err := e.pool.QueryRow(context.Background(), `SELECT profile_id::text FROM identities WHERE workspace_id = $1 AND type = 'user_id' AND value = $2`, e.ws, user).Scan(&id); err != nil {
		t.Fatalf("profile of %s: %v", user, err)
	}
	return id
}

func (e *hookEnv) dispatcher(allow ...string) *segment.Dispatcher {
	if allow == nil {
		allow = []string{"127.0.0.1"} // the httptest receivers
	}
	return &segment.Dispatcher{Pool: e.pool, Box: e.box, Webhook: channel.NewWebhook(allow), Backoff: 20 * time.Millisecond, Poll: 10 * time.Millisecond}
}

// drain dispatches until nothing is due.
func drain(t *testing.T, d *segment.Dispatcher) {
	t.Helper()
	for range 1000 {
		posted, err := d.DispatchOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !posted {
			return
		}
	}
	t.Fatal("the dispatcher never ran out of work")
}

// post is one request a receiver got.
type post struct {
	body      []byte
	signature string
	delivery  string
	payload   segment.HookPayload
}

// receiver is a webhook receiver that records what it gets and answers
// with the statuses of answer in turn (200 once they run out).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	posts  []post
	answer []int
	delay  time.Duration
}

func newReceiver(t *testing.T, answer ...int) *receiver {
	r := &receiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		time.Sleep(r.delay)
		r.mu.Lock()
		status := http.StatusOK
		if len(r.answer) > 0 {
			status, r.answer = r.answer[0], r.answer[1:]
		}
		if status == http.StatusOK {
			p := post{body: raw, signature: req.Header.Get(channel.SignatureHeader), delivery: req.Header.Get("X-Parcours-Delivery")}
			if err := json.Unmarshal(raw, &p.payload); err != nil {
				t.Errorf("receiver: body is not a payload: %v", err)
			}
			r.posts = append(r.posts, p)
		}
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

// all returns the posts the receiver accepted.
func (r *receiver) all() []post {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]post(nil), r.posts...)
}

// events returns every event the receiver accepted, in order.
func (r *receiver) events() []segment.HookEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []segment.HookEvent
	for _, p := range r.posts {
		out = append(out, p.payload.Events...)
	}
	return out
}

func TestWebhookSendsEnterAndExitOnceSigned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newHookEnv(t)
	sg, err := e.segments.Create(ctx, e.ws, "pro", "Pro plan", `profile.traits.plan == "pro"`)
	if err != nil {
		t.Fatal(err)
	}
	both, exitsOnly := newReceiver(t), newReceiver(t)
	hook, err := e.hooks.Create(ctx, e.ws, sg.ID, segment.WebhookInput{URL: both.URL + "/parcours"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hook.SigningSecret, "whsec_") || len(hook.SigningSecret) < 40 {
		t.Fatalf("signing secret %q", hook.SigningSecret)
	}
	exitHook, err := e.hooks.Create(ctx, e.ws, sg.ID, segment.WebhookInput{URL: exitsOnly.URL, Kinds: []string{"exited"}})
	if err != nil {
		t.Fatal(err)
	}
	// The secret is stored sealed, never in clear.
	var sealed []byte
	if err := e.pool.QueryRow(ctx, `SELECT secret_ciphertext FROM segment_webhooks WHERE id = $1`, hook.ID).Scan(&sealed); err != nil || strings.Contains(string(sealed), hook.SigningSecret) {
		t.Fatalf("stored secret: %v", err)
	}

	d := e.dispatcher()
	e.identify(t, map[string]string{"ana": "pro", "bob": "free"})
	drain(t, d)
	e.identify(t, map[string]string{"ana": "pro"}) // no change: nothing new to send
	drain(t, d)
	e.identify(t, map[string]string{"ana": "free"})
	drain(t, d)

	got := both.events()
	if len(got) != 2 || got[0].Kind != "entered" || got[1].Kind != "exited" {
		t.Fatalf("receiver got %+v, want ana entering then exiting", got)
	}
	ana := e.profileOf(t, "ana")
	for _, ev := range got {
		want := segment.HookProfile{ID: ana, UserID: "ana", Email: "ana@example.com"}
		if ev.Profile != want || ev.Segment != (segment.HookSegment{ID: sg.ID, Slug: "pro", Name: "Pro plan"}) || ev.ID == "" || ev.At.IsZero() {
			t.Errorf("event %+v", ev)
		}
	}
	if got[0].ID == got[1].ID {
		t.Error("two events share an id")
	}
	for _, p := range both.all() {
		if p.payload.WebhookID != hook.ID || !strings.HasPrefix(p.delivery, hook.ID+"/") {
			t.Errorf("post names webhook %q, delivery %q", p.payload.WebhookID, p.delivery)
		}
		if !channel.VerifySignature(hook.SigningSecret, p.signature, p.body, time.Now(), 5*time.Minute) {
			t.Errorf("signature %q does not verify", p.signature)
		}
		// The signature covers the body: a receiver detects any change to it.
		tampered := []byte(strings.Replace(string(p.body), `"kind":"`, `"kind":"x`, 1))
		if channel.VerifySignature(hook.SigningSecret, p.signature, tampered, time.Now(), 5*time.Minute) {
			t.Error("a tampered body verified")
		}
		if channel.VerifySignature(exitHook.SigningSecret, p.signature, p.body, time.Now(), 5*time.Minute) {
			t.Error("another webhook's secret verified the body")
		}
	}
	if ex := exitsOnly.events(); len(ex) != 1 || ex[0].Kind != "exited" || ex[0].ID != got[1].ID {
		t.Fatalf("exits-only receiver got %+v", ex)
	}
	w, err := e.hooks.Get(ctx, e.ws, sg.ID, hook.ID)
	if err != nil {
		t.Fatal(err)
	}
	if w.Status != "active" || w.Pending != 0 || w.Delivered != 2 || w.Failures != 0 || w.LastDeliveredAt == nil || w.LastError != nil {
		t.Fatalf("webhook after delivery: %+v", w)
	}
}

func TestWebhookRetriesUntilTheReceiverAnswers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newHookEnv(t)
	sg, err := e.segments.Create(ctx, e.ws, "pro", "Pro plan", `profile.traits.plan == "pro"`)
	if err != nil {
		t.Fatal(err)
	}
	recv := newReceiver(t, 500, 500)
	hook, err := e.hooks.Create(ctx, e.ws, sg.ID, segment.WebhookInput{URL: recv.URL})
	if err != nil {
		t.Fatal(err)
	}
	d := e.dispatcher()
	// Long enough that "not due yet" holds on a loaded machine.
	d.Backoff = time.Second
	e.identify(t, map[string]string{"ana": "pro"})

	// First attempt: 500. The event stays, the retry is scheduled.
	if posted, err := d.DispatchOnce(ctx); !posted || err != nil {
		t.Fatalf("first attempt: %v %v", posted, err)
	}
	w, err := e.hooks.Get(ctx, e.ws, sg.ID, hook.ID)
	if err != nil {
		t.Fatal(err)
	}
	if w.Status != "retrying" || w.Failures != 1 || w.Pending != 1 || w.LastError == nil || !strings.Contains(*w.LastError, "500") {
		t.Fatalf("after a 500: %+v", w)
	}
	// The backoff (±10% jitter) counts from the failure, after the POST.
	if wait := w.NextAttemptAt.Sub(*w.LastAttemptAt); wait < 900*time.Millisecond || wait > 2100*time.Millisecond {
		t.Fatalf("first retry in %s, want about 1s", wait)
	}
	// Not due yet: nothing is posted before the retry time.
	if posted, err := d.DispatchOnce(ctx); posted || err != nil {
		t.Fatalf("posted before the retry time: %v %v", posted, err)
	}
	time.Sleep(time.Until(w.NextAttemptAt) + 20*time.Millisecond)
	if posted, err := d.DispatchOnce(ctx); !posted || err != nil {
		t.Fatalf("second attempt: %v %v", posted, err)
	}
	w, _ = e.hooks.Get(ctx, e.ws, sg.ID, hook.ID)
	if wait := w.NextAttemptAt.Sub(*w.LastAttemptAt); w.Failures != 2 || wait < 1800*time.Millisecond || wait > 3200*time.Millisecond {
		t.Fatalf("after the second 500: failures %d, retry in %s, want 2 and about 2s (doubled)", w.Failures, wait)
	}
	time.Sleep(time.Until(w.NextAttemptAt) + 20*time.Millisecond)
	drain(t, d)

	if got := recv.events(); len(got) != 1 || got[0].Kind != "entered" {
		t.Fatalf("receiver accepted %+v, want the entry once", got)
	}
	w, _ = e.hooks.Get(ctx, e.ws, sg.ID, hook.ID)
	if w.Status != "active" || w.Failures != 0 || w.Pending != 0 || w.Delivered != 1 || w.LastError != nil {
		t.Fatalf("after delivery: %+v", w)
	}
}

func TestFailingWebhookKeepsEventsAndResumes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newHookEnv(t)
	sg, err := e.segments.Create(ctx, e.ws, "pro", "Pro plan", `profile.traits.plan == "pro"`)
	if err != nil {
		t.Fatal(err)
	}
	down := make([]int, segment.FailingAfter)
	for i := range down {
		down[i] = http.StatusServiceUnavailable
	}
	recv := newReceiver(t, down...)
	hook, err := e.hooks.Create(ctx, e.ws, sg.ID, segment.WebhookInput{URL: recv.URL})
	if err != nil {
		t.Fatal(err)
	}
	d := e.dispatcher()
	d.Backoff, d.MaxBackoff = time.Millisecond, time.Millisecond
	e.identify(t, map[string]string{"ana": "pro", "bob": "pro"})
	for range segment.FailingAfter {
		time.Sleep(5 * time.Millisecond)
		if posted, err := d.DispatchOnce(ctx); !posted || err != nil {
			t.Fatalf("attempt: %v %v", posted, err)
		}
	}
	// More transitions while the receiver is down are queued too.
	e.identify(t, map[string]string{"cyd": "pro"})
	w, _ := e.hooks.Get(ctx, e.ws, sg.ID, hook.ID)
	if w.Status != "failing" || w.Failures != segment.FailingAfter || w.Pending != 3 || w.Delivered != 0 {
		t.Fatalf("after %d failures: %+v", segment.FailingAfter, w)
	}
	// The receiver is back; a retry now (instead of at the backoff) sends everything once.
	d.Backoff, d.MaxBackoff = time.Hour, time.Hour
	if _, err := e.hooks.Retry(ctx, e.ws, sg.ID, hook.ID); err != nil {
		t.Fatal(err)
	}
	drain(t, d)
	got := recv.events()
	if len(got) != 3 {
		t.Fatalf("receiver accepted %d events, want 3", len(got))
	}
	w, _ = e.hooks.Get(ctx, e.ws, sg.ID, hook.ID)
	if w.Status != "active" || w.Pending != 0 || w.Delivered != 3 {
		t.Fatalf("after recovery: %+v", w)
	}
}

func TestTwoDispatchersNeverSendTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newHookEnv(t)
	sg, err := e.segments.Create(ctx, e.ws, "pro", "Pro plan", `profile.traits.plan == "pro"`)
	if err != nil {
		t.Fatal(err)
	}
	const hooks, people = 3, 300
	var recvs []*receiver
	for range hooks {
		r := newReceiver(t)
		r.delay = 3 * time.Millisecond
		if _, err := e.hooks.Create(ctx, e.ws, sg.ID, segment.WebhookInput{URL: r.URL}); err != nil {
			t.Fatal(err)
		}
		recvs = append(recvs, r)
	}
	plans := map[string]string{}
	for i := range people {
		plans[fmt.Sprintf("u%d", i)] = "pro"
	}
	e.identify(t, plans)

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 2 {
		d := e.dispatcher()
		d.BatchSize, d.Concurrency = 20, 3
		wg.Go(func() { d.Run(runCtx) })
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		done := true
		for _, r := range recvs {
			done = done && len(r.events()) >= people
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a duplicate would arrive now
	stop()
	wg.Wait()
	for i, r := range recvs {
		seen := map[string]bool{}
		for _, ev := range r.events() {
			if seen[ev.ID] {
				t.Errorf("receiver %d got event %s twice", i, ev.ID)
			}
			seen[ev.ID] = true
		}
		if len(seen) != people {
			t.Errorf("receiver %d got %d distinct events, want %d", i, len(seen), people)
		}
	}
	var pending int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM segment_webhook_outbox`).Scan(&pending); err != nil || pending != 0 {
		t.Fatalf("%d events still queued (%v)", pending, err)
	}
}

func TestWebhookOptionsAndGuards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newHookEnv(t)
	sg, err := e.segments.Create(ctx, e.ws, "pro", "Pro plan", `profile.traits.plan == "pro"`)
	if err != nil {
		t.Fatal(err)
	}
	e.identify(t, map[string]string{"ana": "pro", "bob": "pro", "cyd": "free"})

	// Current members on request: one "entered" each, with the time they entered.
	withMembers, changesOnly := newReceiver(t), newReceiver(t)
	if _, err := e.hooks.Create(ctx, e.ws, sg.ID, segment.WebhookInput{URL: withMembers.URL, SendCurrentMembers: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.hooks.Create(ctx, e.ws, sg.ID, segment.WebhookInput{URL: changesOnly.URL}); err != nil {
		t.Fatal(err)
	}
	drain(t, e.dispatcher())
	if got := withMembers.events(); len(got) != 2 || got[0].Kind != "entered" || got[1].Kind != "entered" {
		t.Fatalf("current members sent: %+v", got)
	}
	if got := changesOnly.events(); len(got) != 0 {
		t.Fatalf("a webhook without send_current_members got %+v", got)
	}

	// Loopback is refused unless allowlisted: the failure is recorded, the event kept.
	guarded := newReceiver(t)
	hook, err := e.hooks.Create(ctx, e.ws, sg.ID, segment.WebhookInput{URL: guarded.URL})
	if err != nil {
		t.Fatal(err)
	}
	e.identify(t, map[string]string{"cyd": "pro"})
	strict := e.dispatcher("example.invalid")
	strict.Backoff = time.Hour // one attempt, however slow the machine
	drain(t, strict)
	w, _ := e.hooks.Get(ctx, e.ws, sg.ID, hook.ID)
	if w.Failures != 1 || w.Pending != 1 || w.LastError == nil || !strings.Contains(*w.LastError, "refused") || len(guarded.events()) != 0 {
		t.Fatalf("loopback without allowlist: %+v, receiver got %d", w, len(guarded.events()))
	}

	// Deleting a webhook drops what it had queued.
	if err := e.hooks.Delete(ctx, e.ws, sg.ID, hook.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.hooks.Get(ctx, e.ws, sg.ID, hook.ID); !errors.Is(err, segment.ErrWebhookNotFound) {
		t.Fatalf("deleted webhook: %v", err)
	}
	var queued int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM segment_webhook_outbox WHERE webhook_id = $1`, hook.ID).Scan(&queued); err != nil || queued != 0 {
		t.Fatalf("%d events left queued for a deleted webhook (%v)", queued, err)
	}

	// Deleting the segment takes its webhooks and their queue with it.
	e.identify(t, map[string]string{"dan": "pro"})
	if err := e.segments.Delete(ctx, e.ws, sg.ID); err != nil {
		t.Fatal(err)
	}
	var hooks, left int
	if err := e.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM segment_webhooks), (SELECT count(*) FROM segment_webhook_outbox)`).Scan(&hooks, &left); err != nil || hooks != 0 || left != 0 {
		t.Fatalf("after deleting the segment: %d webhooks, %d queued events (%v)", hooks, left, err)
	}
	sg, err = e.segments.Create(ctx, e.ws, "pro", "Pro plan", `profile.traits.plan == "pro"`)
	if err != nil {
		t.Fatal(err)
	}

	// Invalid input names the field.
	for _, tt := range []struct {
		in    segment.WebhookInput
		field string
	}{
		{segment.WebhookInput{URL: ""}, "url"},
		{segment.WebhookInput{URL: "ftp://x.example.com"}, "url"},
		{segment.WebhookInput{URL: "https://user:pw@x.example.com/"}, "url"},
		{segment.WebhookInput{URL: "https://x.example.com/", Kinds: []string{"entered", "left"}}, "kinds[1]"},
	} {
		_, err := e.hooks.Create(ctx, e.ws, sg.ID, tt.in)
		var fe *segment.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%+v: %v, want an error on %s", tt.in, err, tt.field)
		}
	}
	if _, err := e.hooks.Create(ctx, e.ws, "00000000-0000-0000-0000-000000000001", segment.WebhookInput{URL: "https://x.example.com/"}); !errors.Is(err, segment.ErrNotFound) {
		t.Errorf("webhook on a missing segment: %v", err)
	}
	noKey := segment.NewWebhooks(e.pool, nil)
	if _, err := noKey.Create(ctx, e.ws, sg.ID, segment.WebhookInput{URL: "https://x.example.com/"}); !errors.Is(err, segment.ErrNoSecretKey) {
		t.Errorf("without a secret key: %v", err)
	}
}

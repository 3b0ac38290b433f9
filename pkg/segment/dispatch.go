package segment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parcours/parcours/pkg/channel"
)

// Dispatcher posts the transitions queued in segment_webhook_outbox to
// their webhooks, in batches, signed (channel.Sign), through the SSRF-safe
// dialer of channel.Webhook. It runs in the worker process, never on the
// ingest path. Several dispatchers (worker replicas) share the work: each
// claims one webhook at a time with SELECT ... FOR NO KEY UPDATE SKIP
// LOCKED and a lease, so a batch is posted by one of them only.
//
// Delivery is at least once: a dispatcher that dies after the receiver took
// a batch, before recording it, leaves it to be posted again when its lease
// ends. Each event carries a stable id for receivers to dedupe on.
type Dispatcher struct {
	Pool *pgxpool.Pool
	// Box opens the signing secrets; nil means none can be read, and every
	// attempt fails with that reason (kept on the webhook).
	Box *channel.Box
	// Webhook posts; build it with channel.NewWebhook(PARCOURS_OUTBOUND_ALLOW).
	Webhook *channel.Webhook
	Logger  *slog.Logger
	// Poll is how long an idle dispatcher waits before looking for work
	// again. Default 1s: transitions reach receivers within about a second.
	Poll time.Duration
	// BatchSize is the most events one POST carries. Default 100.
	BatchSize int
	// Concurrency is how many webhooks one dispatcher posts to at once, so
	// that a slow receiver does not hold the others back. Default 4.
	Concurrency int
	// Backoff is the delay before the first retry, doubled after each
	// further failure up to MaxBackoff (with ±10% jitter so that webhooks
	// failing together do not retry together). Defaults 10s and 1h: a
	// receiver down for a day is tried about once an hour, and its events
	// wait.
	Backoff, MaxBackoff time.Duration
	// Lease is how long a claimed webhook is reserved for the dispatcher
	// posting to it. Default 1m: well beyond the 15 s a POST may take
	// (channel.NewWebhook's timeout), so a live dispatcher never loses it.
	Lease time.Duration
}

func (d *Dispatcher) poll() time.Duration       { return orDuration(d.Poll, time.Second) }
func (d *Dispatcher) backoff() time.Duration    { return orDuration(d.Backoff, 10*time.Second) }
func (d *Dispatcher) maxBackoff() time.Duration { return orDuration(d.MaxBackoff, time.Hour) }
func (d *Dispatcher) lease() time.Duration      { return orDuration(d.Lease, time.Minute) }
func orDuration(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

func (d *Dispatcher) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

// Run dispatches until ctx is done.
func (d *Dispatcher) Run(ctx context.Context) {
	n := d.Concurrency
	if n <= 0 {
		n = 4
	}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				posted, err := d.DispatchOnce(ctx)
				if err != nil && ctx.Err() == nil {
					d.logger().Warn("segment webhooks: dispatch failed; retrying", "err", err)
				}
				if posted && err == nil {
					continue // there may be more
				}
				select {
				case <-ctx.Done():
				case <-time.After(d.poll()):
				}
			}
		})
	}
	wg.Wait()
}

// HookPayload is the JSON body of a segment webhook POST.
type HookPayload struct {
	WebhookID string      `json:"webhook_id"`
	Events    []HookEvent `json:"events"`
}

// HookEvent is one transition in a HookPayload.
type HookEvent struct {
	// ID is stable across retries: receivers dedupe on it.
	ID string `json:"id"`
	// Kind is entered, exited, or erased (KindErased: the profile was
	// erased; Profile holds its id only).
	Kind    string      `json:"kind"`
	At      time.Time   `json:"at"`
	Segment HookSegment `json:"segment"`
	Profile HookProfile `json:"profile"`
}

// HookSegment names the segment of a HookEvent.
type HookSegment struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// HookProfile identifies the person of a HookEvent: the Parcours profile id
// always; the user id and email the profile holds when the batch is sent
// (absent when it holds none, e.g. after it was merged into another, and
// always in an erased notice).
type HookProfile struct {
	ID     string `json:"id"`
	UserID string `json:"user_id,omitempty"`
	Email  string `json:"email,omitempty"`
}

// claimed is a webhook a dispatcher holds the lease of.
type claimed struct {
	workspaceID, id, url string
	sealed               []byte
	failures             int
	token                string
}

// DispatchOnce posts one batch to one due webhook. It reports whether it
// found one; a failed POST is recorded on the webhook (for retry), not
// returned.
func (d *Dispatcher) DispatchOnce(ctx context.Context) (bool, error) {
	c := claimed{token: uuid.NewString()}
	err := d.Pool.QueryRow(ctx, `
		WITH due AS (
			SELECT w.workspace_id, w.id FROM segment_webhooks w
			WHERE w.next_attempt_at <= now()
			  AND EXISTS (SELECT 1 FROM segment_webhook_outbox o WHERE o.workspace_id = w.workspace_id AND o.webhook_id = w.id)
			ORDER BY w.next_attempt_at
			LIMIT 1
			FOR NO KEY UPDATE SKIP LOCKED)
		UPDATE segment_webhooks w SET claim = $1, next_attempt_at = now() + $2::interval, last_attempt_at = now()
		FROM due WHERE w.workspace_id = due.workspace_id AND w.id = due.id
		RETURNING w.workspace_id::text, w.id::text, w.url, w.secret_ciphertext, w.failures`,
		c.token, d.lease()).Scan(&c.workspaceID, &c.id, &c.url, &c.sealed, &c.failures)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim a segment webhook: %w", err)
	}
	events, err := d.batch(ctx, c)
	if err != nil || len(events) == 0 {
		// Nothing posted (the queue was drained meanwhile, or unreadable).
		return false, errors.Join(err, d.release(c))
	}
	body, err := json.Marshal(HookPayload{WebhookID: c.id, Events: events})
	if err != nil {
		return true, errors.Join(fmt.Errorf("encode segment webhook batch: %w", err), d.release(c))
	}
	var secret string
	if d.Box == nil {
		err = ErrNoSecretKey
	} else {
		secret, err = d.Box.Open(c.sealed, webhookAAD(c.workspaceID, c.id))
	}
	var retryAfter time.Duration
	if err == nil {
		deliveryID := c.id + "/" + events[0].ID + "-" + events[len(events)-1].ID
		_, err = d.Webhook.Post(ctx, c.url, secret, deliveryID, body)
		if ctx.Err() != nil {
			// Shutting down: not the receiver's fault; the next dispatcher
			// posts the batch again at once.
			return true, d.release(c)
		}
		var se *channel.SendError
		if errors.As(err, &se) {
			retryAfter = se.RetryAfter
		}
	}
	if err != nil {
		return true, d.failed(ctx, c, err, retryAfter)
	}
	return true, d.delivered(ctx, c, events)
}

// batch loads the next events of a claimed webhook, oldest first.
func (d *Dispatcher) batch(ctx context.Context, c claimed) ([]HookEvent, error) {
	size := d.BatchSize
	if size <= 0 {
		size = 100
	}
	rows, err := d.Pool.Query(ctx, `
		SELECT e.id, e.kind, e.at, e.profile_id::text, s.id::text, s.slug, s.name,
		       coalesce((SELECT i.value FROM identities i WHERE i.workspace_id = e.workspace_id AND i.profile_id = e.profile_id AND i.type = 'user_id'
		                 AND e.kind <> '`+KindErased+`' ORDER BY i.created_at DESC LIMIT 1), ''),
		       coalesce((SELECT i.value FROM identities i WHERE i.workspace_id = e.workspace_id AND i.profile_id = e.profile_id AND i.type = 'email'
		                 AND e.kind <> '`+KindErased+`' ORDER BY i.created_at DESC LIMIT 1), '')
		FROM segment_webhook_outbox o
		JOIN segment_events e ON e.workspace_id = o.workspace_id AND e.id = o.event_id
		JOIN segments s ON s.workspace_id = e.workspace_id AND s.id = e.segment_id
		WHERE o.workspace_id = $1 AND o.webhook_id = $2
		ORDER BY o.event_id
		LIMIT $3`, c.workspaceID, c.id, size)
	if err != nil {
		return nil, fmt.Errorf("load segment webhook batch: %w", err)
	}
	defer rows.Close()
	var out []HookEvent
	for rows.Next() {
		var e HookEvent
		var id int64
		if err := rows.Scan(&id, &e.Kind, &e.At, &e.Profile.ID, &e.Segment.ID, &e.Segment.Slug, &e.Segment.Name, &e.Profile.UserID, &e.Profile.Email); err != nil {
			return nil, fmt.Errorf("load segment webhook batch: %w", err)
		}
		e.ID = strconv.FormatInt(id, 10)
		e.At = e.At.UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// delivered records a batch the receiver took: its events leave the outbox,
// an erased notice no other webhook waits for goes (it names the erased
// profile), and the webhook is due again at once for the next batch.
// Nothing is recorded if the lease was lost meanwhile (the batch will be
// posted again).
func (d *Dispatcher) delivered(ctx context.Context, c claimed, events []HookEvent) error {
	ids := make([]int64, len(events))
	for i, e := range events {
		ids[i], _ = strconv.ParseInt(e.ID, 10, 64)
	}
	tag, err := d.Pool.Exec(ctx, `
		WITH w AS (
			UPDATE segment_webhooks SET claim = NULL, failures = 0, last_error = NULL, last_delivered_at = now(),
			       delivered = delivered + $4, next_attempt_at = now()
			WHERE workspace_id = $1 AND id = $2 AND claim = $3
			RETURNING id)
		DELETE FROM segment_webhook_outbox o USING w
		WHERE o.workspace_id = $1 AND o.webhook_id = w.id AND o.event_id = ANY ($5::bigint[])`,
		c.workspaceID, c.id, c.token, len(ids), ids)
	if err == nil && tag.RowsAffected() > 0 {
		_, err = d.Pool.Exec(ctx, `
			DELETE FROM segment_events e WHERE e.workspace_id = $1 AND e.id = ANY ($2::bigint[]) AND e.kind = '`+KindErased+`'
			  AND NOT EXISTS (SELECT 1 FROM segment_webhook_outbox o WHERE o.workspace_id = e.workspace_id AND o.event_id = e.id)`,
			c.workspaceID, ids)
	}
	if err != nil {
		return fmt.Errorf("record segment webhook delivery: %w", err)
	}
	if tag.RowsAffected() == 0 {
		d.logger().Warn("segment webhook: lease lost while posting; the batch will be posted again", "webhook", c.id)
	}
	return nil
}

// failed records a failed attempt and when to retry; the events stay.
func (d *Dispatcher) failed(ctx context.Context, c claimed, cause error, retryAfter time.Duration) error {
	failures := c.failures + 1
	wait := retryDelay(d.backoff(), d.maxBackoff(), failures)
	wait = time.Duration(float64(wait) * (0.9 + 0.2*rand.Float64()))
	wait = max(wait, min(retryAfter, d.maxBackoff()))
	reason := cause.Error()
	if len(reason) > 500 {
		reason = reason[:500] + "…"
	}
	_, err := d.Pool.Exec(ctx, `
		UPDATE segment_webhooks SET claim = NULL, failures = failures + 1, last_error = $4, next_attempt_at = now() + $5::interval
		WHERE workspace_id = $1 AND id = $2 AND claim = $3`, c.workspaceID, c.id, c.token, reason, wait)
	if err != nil {
		return fmt.Errorf("record segment webhook failure: %w", err)
	}
	// The reason may quote the receiver's answer: debug level only.
	d.logger().Warn("segment webhook delivery failed; events kept for retry", "webhook", c.id, "workspace", c.workspaceID,
		"failures", failures, "retry_in", wait.Round(time.Second))
	d.logger().Debug("segment webhook failure reason", "webhook", c.id, "reason", reason)
	return nil
}

// retryDelay is base doubled for each failure after the first, capped at
// limit (without overflowing, however many failures).
func retryDelay(base, limit time.Duration, failures int) time.Duration {
	wait := base
	for i := 1; i < failures && wait < limit; i++ {
		wait *= 2
	}
	return min(wait, limit)
}

// release gives a claimed webhook back, due at once, without counting an
// attempt. It runs after ctx may have ended (shutdown).
func (d *Dispatcher) release(c claimed) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.Pool.Exec(ctx, `UPDATE segment_webhooks SET claim = NULL, next_attempt_at = now() WHERE workspace_id = $1 AND id = $2 AND claim = $3`,
		c.workspaceID, c.id, c.token); err != nil {
		return fmt.Errorf("release segment webhook: %w", err)
	}
	return nil
}

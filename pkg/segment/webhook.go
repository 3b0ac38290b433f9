package segment

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parcours/parcours/pkg/channel"
)

// Transition kinds, as segment_events records them and webhooks send them.
const (
	KindEntered = "entered"
	KindExited  = "exited"
)

// FailingAfter is the number of consecutive failed attempts after which a
// webhook shows as failing. Its events are kept and retried all the same.
const FailingAfter = 5

// Webhook statuses, derived from the consecutive failures.
const (
	WebhookActive   = "active"   // the last attempt succeeded (or none failed yet)
	WebhookRetrying = "retrying" // the last attempts failed, fewer than FailingAfter
	WebhookFailing  = "failing"  // FailingAfter attempts or more failed in a row
)

// Errors of the webhook store.
var (
	ErrWebhookNotFound = errors.New("segment webhook not found")
	// ErrNoSecretKey means the process has no PARCOURS_SECRET_KEY, so it can
	// neither keep nor read signing secrets.
	ErrNoSecretKey = errors.New("no secret key configured (PARCOURS_SECRET_KEY): signing secrets cannot be kept")
)

// webhookLockClass is the first key of the workspace-wide advisory lock that
// orders recording transitions (shared) against creating a webhook
// (exclusive): "SegW". Two-key advisory locks do not overlap the one-key
// locks of identity resolution.
const webhookLockClass = 0x53656757

// Webhook is a subscription: a URL that receives a segment's entries and
// exits, signed with a secret that only the creator saw.
type Webhook struct {
	ID        string   `json:"id"`
	SegmentID string   `json:"segment_id"`
	URL       string   `json:"url"`
	Kinds     []string `json:"kinds"`
	// Status is active, retrying or failing (see FailingAfter).
	Status string `json:"status"`
	// Pending counts the transitions queued and not delivered yet.
	Pending int64 `json:"pending"`
	// Delivered counts the transitions delivered since creation.
	Delivered int64 `json:"delivered"`
	// Failures counts the consecutive failed attempts (0 after a delivery).
	Failures        int        `json:"failures"`
	LastError       *string    `json:"last_error"`
	LastAttemptAt   *time.Time `json:"last_attempt_at"`
	LastDeliveredAt *time.Time `json:"last_delivered_at"`
	// NextAttemptAt is when the dispatcher may post next (after a failure:
	// the retry time).
	NextAttemptAt time.Time `json:"next_attempt_at"`
	CreatedAt     time.Time `json:"created_at"`
}

// NewWebhook is a webhook just created, with its signing secret: the only
// time the secret is shown.
type NewWebhook struct {
	Webhook
	SigningSecret string `json:"signing_secret"`
}

// WebhookInput creates a webhook.
type WebhookInput struct {
	URL string
	// Kinds are the transitions to send: entered, exited; empty means both.
	Kinds []string
	// SendCurrentMembers queues an "entered" event for every current member
	// (with the time they entered), so that the receiver starts complete.
	SendCurrentMembers bool
}

// Webhooks keeps segment webhooks; secrets are sealed by box.
type Webhooks struct {
	pool *pgxpool.Pool
	box  *channel.Box
}

// NewWebhooks returns the webhook store. box may be nil: webhooks can then
// be listed but not created.
func NewWebhooks(pool *pgxpool.Pool, box *channel.Box) *Webhooks {
	return &Webhooks{pool: pool, box: box}
}

// webhookAAD binds a sealed secret to its row.
func webhookAAD(workspaceID, id string) string {
	return workspaceID + "/segment-webhook/" + id
}

const webhookCols = `w.id::text, w.segment_id::text, w.url, w.kinds, w.failures, w.last_error, w.last_attempt_at, w.last_delivered_at,
	w.next_attempt_at, w.delivered, w.created_at,
	(SELECT count(*) FROM segment_webhook_outbox o WHERE o.workspace_id = w.workspace_id AND o.webhook_id = w.id)`

func scanWebhook(row pgx.Row) (Webhook, error) {
	var w Webhook
	err := row.Scan(&w.ID, &w.SegmentID, &w.URL, &w.Kinds, &w.Failures, &w.LastError, &w.LastAttemptAt, &w.LastDeliveredAt,
		&w.NextAttemptAt, &w.Delivered, &w.CreatedAt, &w.Pending)
	if errors.Is(err, pgx.ErrNoRows) {
		return w, ErrWebhookNotFound
	}
	if err != nil {
		return w, fmt.Errorf("load segment webhook: %w", err)
	}
	w.Status = webhookStatus(w.Failures)
	return w, nil
}

func webhookStatus(failures int) string {
	switch {
	case failures == 0:
		return WebhookActive
	case failures < FailingAfter:
		return WebhookRetrying
	}
	return WebhookFailing
}

// checkWebhookURL accepts an https URL without credentials (plain http only
// where channel.CheckWebhookURL allows it: this machine, private
// addresses). Where it may point is checked at dial time
// (channel.SafeTransport), not here.
func checkWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return errors.New("is required: the https URL that receives the events")
	case len(raw) > 2000:
		return errors.New("must be at most 2000 characters")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return errors.New("must be an https URL, e.g. https://tools.example.com/hooks/parcours")
	case u.User != nil:
		return errors.New("must not carry credentials: the signature authenticates Parcours to the receiver")
	}
	return channel.CheckWebhookURL(raw)
}

// newSigningSecret returns a random secret: 32 bytes, URL-safe base64.
func newSigningSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate signing secret: %w", err)
	}
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b), nil
}

// Create subscribes a URL to a segment's transitions and returns it with its
// signing secret (shown this once). Every transition committed after Create
// returns is sent; with SendCurrentMembers, so is an "entered" event per
// current member.
func (s *Webhooks) Create(ctx context.Context, workspaceID, segmentID string, in WebhookInput) (NewWebhook, error) {
	in.URL = strings.TrimSpace(in.URL)
	if err := checkWebhookURL(in.URL); err != nil {
		return NewWebhook{}, &FieldError{Field: "url", Reason: err.Error()}
	}
	kinds := []string{KindEntered, KindExited}
	if len(in.Kinds) > 0 {
		kinds = nil
		for i, k := range in.Kinds {
			if k != KindEntered && k != KindExited {
				return NewWebhook{}, &FieldError{Field: fmt.Sprintf("kinds[%d]", i), Reason: fmt.Sprintf("must be %q or %q, not %q", KindEntered, KindExited, k)}
			}
			if !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	if s.box == nil {
		return NewWebhook{}, ErrNoSecretKey
	}
	secret, err := newSigningSecret()
	if err != nil {
		return NewWebhook{}, err
	}
	id := uuid.NewString()
	sealed, err := s.box.Seal(secret, webhookAAD(workspaceID, id))
	if err != nil {
		return NewWebhook{}, err
	}
	var out NewWebhook
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Wait for the transitions being recorded in this workspace and hold
		// new ones back until this commits: each transition is then either
		// recorded after the webhook exists (and queued for it) or already in
		// the members that SendCurrentMembers reads.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, webhookLockClass, workspaceID); err != nil {
			return fmt.Errorf("lock segment transitions: %w", err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM segments WHERE workspace_id = $1 AND id = $2)`, workspaceID, segmentID).Scan(&exists); err != nil {
			return fmt.Errorf("load segment: %w", err)
		}
		if !exists {
			return ErrNotFound
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO segment_webhooks (workspace_id, id, segment_id, url, kinds, secret_ciphertext) VALUES ($1, $2, $3, $4, $5, $6)`,
			workspaceID, id, segmentID, in.URL, kinds, sealed); err != nil {
			return fmt.Errorf("create segment webhook: %w", err)
		}
		if in.SendCurrentMembers && slices.Contains(kinds, KindEntered) {
			// Each current member's latest "entered" transition: the one that
			// made them a member, with its time.
			if _, err := tx.Exec(ctx, `
				INSERT INTO segment_webhook_outbox (workspace_id, webhook_id, event_id)
				SELECT DISTINCT ON (e.profile_id) $1, $2::uuid, e.id
				FROM segment_events e
				JOIN segment_memberships m ON m.workspace_id = e.workspace_id AND m.segment_id = e.segment_id AND m.profile_id = e.profile_id AND m.exited_at IS NULL
				WHERE e.workspace_id = $1 AND e.segment_id = $3 AND e.kind = 'entered'
				ORDER BY e.profile_id, e.id DESC`, workspaceID, id, segmentID); err != nil {
				return fmt.Errorf("queue current members: %w", err)
			}
		}
		w, err := scanWebhook(tx.QueryRow(ctx, `SELECT `+webhookCols+` FROM segment_webhooks w WHERE w.workspace_id = $1 AND w.id = $2`, workspaceID, id))
		out = NewWebhook{Webhook: w, SigningSecret: secret}
		return err
	})
	return out, err
}

// List returns a segment's webhooks, oldest first.
func (s *Webhooks) List(ctx context.Context, workspaceID, segmentID string) ([]Webhook, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+webhookCols+` FROM segment_webhooks w WHERE w.workspace_id = $1 AND w.segment_id = $2 ORDER BY w.created_at, w.id`,
		workspaceID, segmentID)
	if err != nil {
		return nil, fmt.Errorf("list segment webhooks: %w", err)
	}
	defer rows.Close()
	out := []Webhook{}
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// Get returns one webhook of a segment.
func (s *Webhooks) Get(ctx context.Context, workspaceID, segmentID, id string) (Webhook, error) {
	return scanWebhook(s.pool.QueryRow(ctx, `SELECT `+webhookCols+` FROM segment_webhooks w WHERE w.workspace_id = $1 AND w.segment_id = $2 AND w.id = $3`,
		workspaceID, segmentID, id))
}

// Delete removes a webhook and the events still queued for it.
func (s *Webhooks) Delete(ctx context.Context, workspaceID, segmentID, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM segment_webhooks WHERE workspace_id = $1 AND segment_id = $2 AND id = $3`, workspaceID, segmentID, id)
	if err != nil {
		return fmt.Errorf("delete segment webhook: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrWebhookNotFound
	}
	return nil
}

// Retry makes a webhook due now instead of at its next retry time, e.g.
// once its receiver is back. A batch being posted right now is left alone.
func (s *Webhooks) Retry(ctx context.Context, workspaceID, segmentID, id string) (Webhook, error) {
	if _, err := s.pool.Exec(ctx, `
		UPDATE segment_webhooks SET next_attempt_at = now()
		WHERE workspace_id = $1 AND segment_id = $2 AND id = $3 AND (claim IS NULL OR next_attempt_at <= now())`,
		workspaceID, segmentID, id); err != nil {
		return Webhook{}, fmt.Errorf("retry segment webhook: %w", err)
	}
	return s.Get(ctx, workspaceID, segmentID, id)
}

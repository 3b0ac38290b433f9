package segment

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// KindErased is the notice a segment's webhooks get when a person they may
// have been told about is erased: kind "erased" and the profile id, no
// identifier or trait. Every webhook of a segment the person is or was a
// member of gets it, whatever kinds it asked for (it is not a kind one
// subscribes to): a receiver that keeps what it was sent must hear that
// the person is gone (GDPR art. 17(2) and 19).
const KindErased = "erased"

// QueueErasure runs in an erasure's transaction, before the memberships
// of profileIDs are deleted: it drops their transitions (segment_events),
// and with them their entries and exits still waiting in the outbox, which
// would name the person; then it queues an erased notice for each segment
// they are or were a member of, for every webhook of that segment. The
// notice is a segment_events row of kind erased, kept until its last
// webhook took it (Dispatcher.delivered; the retention sweep removes those
// left behind, by a webhook deleted meanwhile or two webhooks delivering at
// once). It returns how many posts it queued.
func QueueErasure(ctx context.Context, tx pgx.Tx, workspaceID string, profileIDs []string, at time.Time) (int, error) {
	// Shared with the recorders of transitions, exclusive with a webhook
	// being created (Webhooks.Create): a webhook created meanwhile either
	// gets the notice or never had the person's membership.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1, hashtext($2))`, webhookLockClass, workspaceID); err != nil {
		return 0, fmt.Errorf("lock segment transitions: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM segment_events WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])`, workspaceID, profileIDs); err != nil {
		return 0, fmt.Errorf("delete segment transitions: %w", err)
	}
	tag, err := tx.Exec(ctx, `
		WITH ev AS (
			INSERT INTO segment_events (workspace_id, segment_id, profile_id, kind, at)
			SELECT $1, m.segment_id, m.profile_id, '`+KindErased+`', $3 FROM segment_memberships m
			WHERE m.workspace_id = $1 AND m.profile_id = ANY($2::uuid[])
			  AND EXISTS (SELECT 1 FROM segment_webhooks w WHERE w.workspace_id = $1 AND w.segment_id = m.segment_id)
			RETURNING id, segment_id)
		INSERT INTO segment_webhook_outbox (workspace_id, webhook_id, event_id)
		SELECT $1, w.id, ev.id FROM ev JOIN segment_webhooks w ON w.workspace_id = $1 AND w.segment_id = ev.segment_id`,
		workspaceID, profileIDs, at)
	if err != nil {
		return 0, fmt.Errorf("queue erasure notices: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

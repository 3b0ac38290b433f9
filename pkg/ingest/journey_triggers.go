package ingest

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// linkEvents attaches stored records to their profiles. With queueJourneys
// it also queues, in the same statement (no extra round trip) and so in the
// transaction that stores them, the records whose name triggers a live
// journey (journey_triggers): committed records never lose their journey
// start, even if the process dies before the API starts the run. Imports
// and replays do not queue: history starts no journeys.
func linkEvents(ctx context.Context, tx pgx.Tx, workspaceID string, ids []int64, profileIDs []string, queueJourneys bool) error {
	_, err := tx.Exec(ctx, `
		WITH linked AS (
			UPDATE events e SET profile_id = x.p::uuid, origin_profile_id = x.p::uuid
			FROM unnest($2::bigint[], $3::text[]) AS x(id, p)
			WHERE e.workspace_id = $1 AND e.id = x.id
			RETURNING e.id, e.name)
		INSERT INTO journey_triggers (workspace_id, event_id, kind)
		SELECT $1, linked.id, 'event' FROM linked
		WHERE $4 AND linked.name IN (SELECT t.event FROM live_journey_triggers t WHERE t.workspace_id = $1 AND t.type = 'event')`,
		workspaceID, ids, profileIDs, queueJourneys)
	if err != nil {
		return fmt.Errorf("link events to profiles: %w", err)
	}
	return nil
}

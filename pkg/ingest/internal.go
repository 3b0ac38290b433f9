package ingest

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/segment"
)

// internalKeyID is the key id of events Parcours records itself (no API key
// sent them), as on "Profile Merged" events.
const internalKeyID = "00000000-0000-0000-0000-000000000000"

// InternalEvent is an event Parcours records itself about a profile it
// already knows: an email delivered, opened, clicked, bounced, ...
type InternalEvent struct {
	ProfileID string
	Message   events.Message
}

// IngestInternal stores internal events (source "parcours") on known
// profiles, without identity resolution, in one transaction. Events are
// deduplicated by messageId like any record, so callers give them
// deterministic ids and may call again after a failure. An event for a
// profile merged since is recorded on the survivor; one for an erased
// profile is dropped (counted in Suppressed).
//
// Internal events do not count in computed traits, as "Profile Merged" does
// not (rebuild skips them too): the profile rows are locked, not rewritten.
func (s *Store) IngestInternal(ctx context.Context, workspaceID string, evs []InternalEvent) (Result, error) {
	var res Result
	if len(evs) == 0 {
		return res, nil
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		res, err = ingestInternalTx(ctx, tx, workspaceID, evs)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("record %d internal events: %w", len(evs), err)
	}
	return res, nil
}

func ingestInternalTx(ctx context.Context, tx pgx.Tx, workspaceID string, evs []InternalEvent) (Result, error) {
	var res Result
	ids := make([]string, 0, len(evs))
	for _, ev := range evs {
		ids = append(ids, ev.ProfileID)
	}
	live, err := liveProfiles(ctx, tx, workspaceID, ids)
	if err != nil {
		return res, err
	}
	var msgs []events.Message
	var profiles []string
	for _, ev := range evs {
		pid, ok := live[ev.ProfileID]
		if !ok {
			res.Suppressed++
			continue
		}
		msgs = append(msgs, ev.Message)
		profiles = append(profiles, pid)
	}
	if len(msgs) == 0 {
		return res, nil
	}
	stored, err := insertEvents(ctx, tx, Origin{WorkspaceID: workspaceID, KeyID: internalKeyID, Source: InternalSource}, msgs)
	if err != nil {
		return res, err
	}
	var evIDs []int64
	var evProfiles []string
	for i := range msgs {
		m := &msgs[i]
		id, ok := stored[m.MessageID]
		if !ok {
			res.Duplicates++
			continue
		}
		delete(stored, m.MessageID) // a messageId repeated in one call counts once
		evIDs, evProfiles = append(evIDs, id), append(evProfiles, profiles[i])
		res.Stored = append(res.Stored, StoredEvent{ID: id, ProfileID: profiles[i], Message: m})
	}
	res.Accepted = len(evIDs)
	if len(evIDs) == 0 {
		return res, nil
	}
	// Internal records (a reply, a consent change) start journeys like any.
	if err := linkEvents(ctx, tx, workspaceID, evIDs, evProfiles, true); err != nil {
		return res, fmt.Errorf("internal events: %w", err)
	}
	res.Changes = internalChanges(res.Stored)
	return res, nil
}

// liveProfiles maps each profile id to the live profile that holds it now
// (itself, or the survivor of merges), locking those rows against a
// concurrent merge or erasure. Erased profiles are missing from the map.
func liveProfiles(ctx context.Context, tx pgx.Tx, workspaceID string, ids []string) (map[string]string, error) {
	out := map[string]string{}
	// where[id] is the profile the original id has been followed to so far.
	where := map[string]string{}
	for _, id := range ids {
		where[id] = id
	}
	for hop := 0; hop < 10 && len(where) > 0; hop++ {
		var look []string
		for _, cur := range where {
			look = append(look, cur)
		}
		slices.Sort(look)
		look = slices.Compact(look)
		rows, err := tx.Query(ctx, `
			SELECT id::text, coalesce(merged_into::text, '') FROM profiles
			WHERE workspace_id = $1 AND id = ANY($2::uuid[]) ORDER BY id FOR SHARE`, workspaceID, look)
		if err != nil {
			return nil, fmt.Errorf("lock profiles: %w", err)
		}
		next := map[string]string{}
		for rows.Next() {
			var id, merged string
			if err := rows.Scan(&id, &merged); err != nil {
				rows.Close()
				return nil, fmt.Errorf("lock profiles: %w", err)
			}
			next[id] = merged
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("lock profiles: %w", err)
		}
		for orig, cur := range where {
			merged, found := next[cur]
			switch {
			case !found: // erased
				delete(where, orig)
			case merged == "":
				out[orig] = cur
				delete(where, orig)
			default:
				where[orig] = merged
			}
		}
	}
	return out, nil
}

// internalChanges summarises internal events per profile, for segment
// re-evaluation: events only, no traits.
func internalChanges(stored []StoredEvent) []segment.Change {
	byProfile := map[string]*segment.Change{}
	var order []string
	for _, ev := range stored {
		c, ok := byProfile[ev.ProfileID]
		if !ok {
			c = &segment.Change{ProfileID: ev.ProfileID}
			byProfile[ev.ProfileID] = c
			order = append(order, ev.ProfileID)
		}
		if name := ev.Message.NameOrEvent(); !slices.Contains(c.Events, name) {
			c.Events = append(c.Events, name)
		}
		if !slices.Contains(c.Types, ev.Message.Type) {
			c.Types = append(c.Types, ev.Message.Type)
		}
	}
	slices.Sort(order)
	out := make([]segment.Change, 0, len(order))
	for _, id := range order {
		out = append(out, *byProfile[id])
	}
	return out
}

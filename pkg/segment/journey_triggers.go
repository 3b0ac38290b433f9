package segment

// journeyTriggerInsert queues the timeline records of moves (the tl CTE)
// that trigger a live journey of the given trigger type (segment_entered,
// segment_exited) for the journey trigger dispatcher, when $5 (queue) is
// set. The API starts those runs at once and deletes the rows; a row left
// behind (the process died, Temporal was unreachable) is started later.
func journeyTriggerInsert(triggerType string) string {
	return `INSERT INTO journey_triggers (workspace_id, event_id, kind)
		SELECT $1, tl.id, 'segment' FROM tl
		WHERE $5::bool AND tl.slug IN (SELECT t.segment FROM live_journey_triggers t WHERE t.workspace_id = $1 AND t.type = '` + triggerType + `')`
}

// timelineIDs answers, when $5 (queue) is set, the timeline records of the
// moves (the tl CTE), as three arrays in the same order: ids, segment
// slugs, profile ids.
const timelineIDs = `ARRAY(SELECT tl.id FROM tl WHERE $5::bool ORDER BY tl.id),
	ARRAY(SELECT tl.slug FROM tl WHERE $5::bool ORDER BY tl.id),
	ARRAY(SELECT tl.profile_id::text FROM tl WHERE $5::bool ORDER BY tl.id)`

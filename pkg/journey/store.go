package journey

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors of the store.
var (
	ErrNotFound       = errors.New("journey not found")
	ErrNotLive        = errors.New("journey is not live")
	ErrNeverPublished = errors.New("journey was never published")
)

// Journey is a journey as listed.
type Journey struct {
	ID               string     `json:"id"`
	Name             string     `json:"name"`
	Status           string     `json:"status"`
	Draft            Definition `json:"draft"`
	PublishedVersion *int       `json:"published_version,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
}

// Live is a published version of a live journey, as triggering needs it.
type Live struct {
	ID         string
	Version    int
	Definition Definition
}

// Store keeps journeys, versions and runs.
type Store struct {
	pool *pgxpool.Pool
	ttl  time.Duration
	mu   sync.Mutex
	live map[string]cachedLive
}

type cachedLive struct {
	journeys []Live
	expires  time.Time
}

// NewStore returns a Store; live journeys are cached for ttl.
func NewStore(pool *pgxpool.Pool, ttl time.Duration) *Store {
	return &Store{pool: pool, ttl: ttl, live: map[string]cachedLive{}}
}

const cols = `id::text, name, status, draft, published_version, created_at, updated_at`

func scan(row pgx.Row) (Journey, error) {
	var j Journey
	var draft []byte
	err := row.Scan(&j.ID, &j.Name, &j.Status, &draft, &j.PublishedVersion, &j.CreatedAt, &j.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return j, ErrNotFound
	}
	if err != nil {
		return j, err
	}
	return j, json.Unmarshal(draft, &j.Draft)
}

// Create saves a draft after validating it.
func (s *Store) Create(ctx context.Context, workspaceID string, d Definition) (Journey, error) {
	if err := Validate(d); err != nil {
		return Journey{}, err
	}
	raw, _ := json.Marshal(d)
	return scan(s.pool.QueryRow(ctx, `INSERT INTO journeys (workspace_id, name, draft) VALUES ($1, $2, $3) RETURNING `+cols, workspaceID, d.Name, raw))
}

// UpdateDraft replaces the draft; published versions are immutable.
func (s *Store) UpdateDraft(ctx context.Context, workspaceID, id string, d Definition) (Journey, error) {
	if err := Validate(d); err != nil {
		return Journey{}, err
	}
	raw, _ := json.Marshal(d)
	return scan(s.pool.QueryRow(ctx, `UPDATE journeys SET draft = $3, name = $4, updated_at = now() WHERE workspace_id = $1 AND id = $2 RETURNING `+cols,
		workspaceID, id, raw, d.Name))
}

// Get loads a journey.
func (s *Store) Get(ctx context.Context, workspaceID, id string) (Journey, error) {
	return scan(s.pool.QueryRow(ctx, `SELECT `+cols+` FROM journeys WHERE workspace_id = $1 AND id = $2`, workspaceID, id))
}

// List returns the workspace's journeys, newest first.
func (s *Store) List(ctx context.Context, workspaceID string) ([]Journey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+cols+` FROM journeys WHERE workspace_id = $1 ORDER BY created_at DESC`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list journeys: %w", err)
	}
	defer rows.Close()
	out := []Journey{}
	for rows.Next() {
		j, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// Publish makes the draft the next immutable version and the journey live.
// Runs in flight keep the version they started on.
func (s *Store) Publish(ctx context.Context, workspaceID, id string) (Journey, error) {
	var out Journey
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		j, err := scan(tx.QueryRow(ctx, `SELECT `+cols+` FROM journeys WHERE workspace_id = $1 AND id = $2 FOR UPDATE`, workspaceID, id))
		if err != nil {
			return err
		}
		if err := Validate(j.Draft); err != nil {
			return err
		}
		next := 1
		if j.PublishedVersion != nil {
			next = *j.PublishedVersion + 1
		}
		raw, _ := json.Marshal(j.Draft)
		if _, err := tx.Exec(ctx, `INSERT INTO journey_versions (workspace_id, journey_id, version, definition) VALUES ($1, $2, $3, $4)`, workspaceID, id, next, raw); err != nil {
			return fmt.Errorf("publish journey %s: %w", id, err)
		}
		out, err = scan(tx.QueryRow(ctx, `UPDATE journeys SET status = 'live', published_version = $3, updated_at = now() WHERE workspace_id = $1 AND id = $2 RETURNING `+cols,
			workspaceID, id, next))
		return err
	})
	s.forget(workspaceID)
	return out, err
}

// SetStatus pauses (no new entries) or resumes a published journey.
func (s *Store) SetStatus(ctx context.Context, workspaceID, id, status string) (Journey, error) {
	j, err := s.Get(ctx, workspaceID, id)
	if err != nil {
		return j, err
	}
	if j.PublishedVersion == nil {
		return j, ErrNeverPublished
	}
	j, err = scan(s.pool.QueryRow(ctx, `UPDATE journeys SET status = $3, updated_at = now() WHERE workspace_id = $1 AND id = $2 RETURNING `+cols, workspaceID, id, status))
	s.forget(workspaceID)
	return j, err
}

// Version loads a published version's definition.
func (s *Store) Version(ctx context.Context, workspaceID, id string, version int) (Definition, error) {
	var raw []byte
	err := s.pool.QueryRow(ctx, `SELECT definition FROM journey_versions WHERE workspace_id = $1 AND journey_id = $2 AND version = $3`, workspaceID, id, version).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return Definition{}, ErrNotFound
	}
	if err != nil {
		return Definition{}, fmt.Errorf("load journey %s v%d: %w", id, version, err)
	}
	var d Definition
	return d, json.Unmarshal(raw, &d)
}

// LiveJourneys returns the workspace's live journeys at their published version.
func (s *Store) LiveJourneys(ctx context.Context, workspaceID string) ([]Live, error) {
	now := time.Now()
	s.mu.Lock()
	c, ok := s.live[workspaceID]
	s.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.journeys, nil
	}
	rows, err := s.pool.Query(ctx, `
		SELECT j.id::text, v.version, v.definition FROM journeys j
		JOIN journey_versions v ON v.workspace_id = j.workspace_id AND v.journey_id = j.id AND v.version = j.published_version
		WHERE j.workspace_id = $1 AND j.status = 'live' ORDER BY j.id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("load live journeys: %w", err)
	}
	defer rows.Close()
	var out []Live
	for rows.Next() {
		var l Live
		var raw []byte
		if err := rows.Scan(&l.ID, &l.Version, &raw); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &l.Definition); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.live[workspaceID] = cachedLive{journeys: out, expires: now.Add(s.ttl)}
	s.mu.Unlock()
	return out, nil
}

func (s *Store) forget(workspaceID string) {
	s.mu.Lock()
	delete(s.live, workspaceID)
	s.mu.Unlock()
}

// Run is one journey run as recorded.
type Run struct {
	WorkflowID string     `json:"workflow_id"`
	RunID      string     `json:"run_id"`
	JourneyID  string     `json:"journey_id"`
	Version    int        `json:"version"`
	ProfileID  string     `json:"profile_id"`
	EnteredAt  time.Time  `json:"entered_at"`
	Node       *string    `json:"node,omitempty"`
	EndedAt    *time.Time `json:"ended_at,omitempty"`
	EndReason  *string    `json:"end_reason,omitempty"`
	Path       []string   `json:"path"`
}

const runCols = `workflow_id, run_id, journey_id::text, version, profile_id::text, entered_at, node, ended_at, end_reason, path`

// RecordEntry notes a run's start; recording it again is harmless.
func (s *Store) RecordEntry(ctx context.Context, workspaceID, workflowID, runID, journeyID string, version int, profileID string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO journey_runs (workspace_id, workflow_id, run_id, journey_id, version, profile_id) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
		workspaceID, workflowID, runID, journeyID, version, profileID)
	if err != nil {
		return fmt.Errorf("record journey entry: %w", err)
	}
	return nil
}

// RecordStep notes the node a run is on.
func (s *Store) RecordStep(ctx context.Context, workspaceID, workflowID, runID, node string) error {
	_, err := s.pool.Exec(ctx, `UPDATE journey_runs SET node = $4, path = array_append(path, $4) WHERE workspace_id = $1 AND workflow_id = $2 AND run_id = $3 AND ended_at IS NULL AND (node IS DISTINCT FROM $4)`,
		workspaceID, workflowID, runID, node)
	if err != nil {
		return fmt.Errorf("record journey step: %w", err)
	}
	return nil
}

// RecordEnd notes how a run ended; only the first end counts.
func (s *Store) RecordEnd(ctx context.Context, workspaceID, workflowID, runID, reason string) error {
	_, err := s.pool.Exec(ctx, `UPDATE journey_runs SET ended_at = now(), end_reason = $4 WHERE workspace_id = $1 AND workflow_id = $2 AND (run_id = $3 OR $3 = '') AND ended_at IS NULL`,
		workspaceID, workflowID, runID, reason)
	if err != nil {
		return fmt.Errorf("record journey end: %w", err)
	}
	return nil
}

// OpenRuns returns a profile's running runs of the given journeys (all
// journeys when journeyIDs is nil).
func (s *Store) OpenRuns(ctx context.Context, workspaceID, profileID string, journeyIDs []string) ([]Run, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+runCols+` FROM journey_runs WHERE workspace_id = $1 AND profile_id = $2 AND ended_at IS NULL
		AND ($3::uuid[] IS NULL OR journey_id = ANY($3::uuid[]))`, workspaceID, profileID, journeyIDs)
	if err != nil {
		return nil, fmt.Errorf("load open runs: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Run])
}

// EverEntered reports whether a profile ever entered a journey, and when last.
func (s *Store) LastEntry(ctx context.Context, workspaceID, journeyID, profileID string) (*time.Time, error) {
	var at *time.Time
	err := s.pool.QueryRow(ctx, `SELECT max(entered_at) FROM journey_runs WHERE workspace_id = $1 AND journey_id = $2 AND profile_id = $3`, workspaceID, journeyID, profileID).Scan(&at)
	return at, err
}

// Runs lists a journey's runs, newest first.
func (s *Store) Runs(ctx context.Context, workspaceID, journeyID string, limit int) ([]Run, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+runCols+` FROM journey_runs WHERE workspace_id = $1 AND journey_id = $2 ORDER BY entered_at DESC LIMIT $3`, workspaceID, journeyID, limit)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Run])
}

// Rehome moves a run to the profile it was merged into.
func (s *Store) Rehome(ctx context.Context, workspaceID, workflowID, runID, profileID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE journey_runs SET profile_id = $4 WHERE workspace_id = $1 AND workflow_id = $2 AND run_id = $3`, workspaceID, workflowID, runID, profileID)
	if err != nil {
		return fmt.Errorf("re-home journey run: %w", err)
	}
	return nil
}

// Stats counts a journey's runs: entered, open by current node, ended by reason.
type Stats struct {
	Entered int            `json:"entered"`
	AtNode  map[string]int `json:"open_at_node"`
	Ended   map[string]int `json:"ended_by_reason"`
	Visited map[string]int `json:"visited_node"`
}

// Stats computes a journey's run counts.
func (s *Store) Stats(ctx context.Context, workspaceID, journeyID string) (Stats, error) {
	st := Stats{AtNode: map[string]int{}, Ended: map[string]int{}, Visited: map[string]int{}}
	rows, err := s.pool.Query(ctx, `
		SELECT 'at', coalesce(node, ''), count(*) FROM journey_runs WHERE workspace_id = $1 AND journey_id = $2 AND ended_at IS NULL GROUP BY node
		UNION ALL SELECT 'end', coalesce(end_reason, ''), count(*) FROM journey_runs WHERE workspace_id = $1 AND journey_id = $2 AND ended_at IS NOT NULL GROUP BY end_reason
		UNION ALL SELECT 'visit', n, count(*) FROM journey_runs, unnest(path) AS n WHERE workspace_id = $1 AND journey_id = $2 GROUP BY n`, workspaceID, journeyID)
	if err != nil {
		return st, fmt.Errorf("journey stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, key string
		var n int
		if err := rows.Scan(&kind, &key, &n); err != nil {
			return st, err
		}
		switch kind {
		case "at":
			st.AtNode[key] = n
			st.Entered += n
		case "end":
			st.Ended[key] = n
			st.Entered += n
		case "visit":
			st.Visited[key] = n
		}
	}
	return st, rows.Err()
}

// RunsAt lists the open runs of a journey at a node.
func (s *Store) RunsAt(ctx context.Context, workspaceID, journeyID, node string) ([]Run, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+runCols+` FROM journey_runs WHERE workspace_id = $1 AND journey_id = $2 AND ended_at IS NULL AND node = $3`, workspaceID, journeyID, node)
	if err != nil {
		return nil, fmt.Errorf("list runs at node: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Run])
}

// ProfileRun is one of a profile's runs, with its journey's name.
type ProfileRun struct {
	Run
	JourneyName string `json:"journey_name"`
}

// ProfileRuns lists a profile's runs of every journey, newest first: where
// each one is, the way it went and how it ended.
func (s *Store) ProfileRuns(ctx context.Context, workspaceID, profileID string, limit int) ([]ProfileRun, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT r.workflow_id, r.run_id, r.journey_id::text, r.version, r.profile_id::text, r.entered_at, r.node, r.ended_at, r.end_reason, r.path, j.name
		FROM journey_runs r JOIN journeys j ON j.workspace_id = r.workspace_id AND j.id = r.journey_id
		WHERE r.workspace_id = $1 AND r.profile_id = $2 ORDER BY r.entered_at DESC LIMIT $3`, workspaceID, profileID, limit)
	if err != nil {
		return nil, fmt.Errorf("list runs of profile %s: %w", profileID, err)
	}
	defer rows.Close()
	out := []ProfileRun{}
	for rows.Next() {
		var r ProfileRun
		if err := rows.Scan(&r.WorkflowID, &r.RunID, &r.JourneyID, &r.Version, &r.ProfileID, &r.EnteredAt, &r.Node, &r.EndedAt, &r.EndReason, &r.Path, &r.JourneyName); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ContinueRun moves a run's row to the run id of its continuation (a run
// continued as new keeps its workflow id and gets a new run id).
func (s *Store) ContinueRun(ctx context.Context, workspaceID, workflowID, prevRunID, runID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE journey_runs SET run_id = $4 WHERE workspace_id = $1 AND workflow_id = $2 AND run_id = $3`,
		workspaceID, workflowID, prevRunID, runID)
	if err != nil {
		return fmt.Errorf("continue journey run %s: %w", workflowID, err)
	}
	return nil
}

package segment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/rules"
)

// Errors of the store.
var (
	ErrNotFound  = errors.New("segment not found")
	ErrSlugTaken = errors.New("segment slug already in use")
)

// FieldError names a wrong input field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Segment is a saved segment.
type Segment struct {
	ID             string     `json:"id"`
	Slug           string     `json:"slug"`
	Name           string     `json:"name"`
	Rule           string     `json:"rule"`
	Deps           Deps       `json:"dependencies"`
	Size           int        `json:"size"`
	LastComputedAt *time.Time `json:"last_computed_at,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

var slugRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Store keeps segments and their memberships.
type Store struct {
	pool *pgxpool.Pool
	ttl  time.Duration
	mu   sync.Mutex
	sets map[string]cachedSet
}

type cachedSet struct {
	segs    []*compiled
	expires time.Time
}

// compiled is a segment with its compiled rule.
type compiled struct {
	Segment
	rule *Rule
}

// NewStore returns a Store; compiled segments are cached for ttl.
func NewStore(pool *pgxpool.Pool, ttl time.Duration) *Store {
	return &Store{pool: pool, ttl: ttl, sets: map[string]cachedSet{}}
}

const cols = `id::text, slug, name, rule, deps, size, last_computed_at, created_at, updated_at`

func scan(row pgx.Row) (Segment, error) {
	var s Segment
	var deps []byte
	err := row.Scan(&s.ID, &s.Slug, &s.Name, &s.Rule, &deps, &s.Size, &s.LastComputedAt, &s.CreatedAt, &s.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, ErrNotFound
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(deps, &s.Deps); err != nil {
		return s, fmt.Errorf("decode dependencies of segment %s: %w", s.Slug, err)
	}
	return s, nil
}

// check compiles a rule and checks the segments it refers to exist and do
// not refer back to it.
func (s *Store) check(ctx context.Context, workspaceID, slug, src string) (*Rule, error) {
	r, err := Compile(src)
	if err != nil {
		return nil, err
	}
	if len(r.Deps.Segments) == 0 {
		return r, nil
	}
	all, err := s.List(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	bySlug := map[string]Segment{}
	for _, sg := range all {
		bySlug[sg.Slug] = sg
	}
	for _, ref := range r.Deps.Segments {
		if ref == slug {
			return nil, &rules.Error{Line: 1, Column: 1, Message: fmt.Sprintf("in_segment(%q) refers to this segment itself", ref)}
		}
		if _, ok := bySlug[ref]; !ok {
			return nil, &rules.Error{Line: 1, Column: 1, Message: fmt.Sprintf("in_segment(%q): there is no segment %q in this workspace", ref, ref)}
		}
		// Refuse cycles: ref must not depend, directly or not, on slug.
		seen := map[string]bool{}
		var reaches func(from string) bool
		reaches = func(from string) bool {
			if from == slug {
				return true
			}
			if seen[from] {
				return false
			}
			seen[from] = true
			for _, next := range bySlug[from].Deps.Segments {
				if reaches(next) {
					return true
				}
			}
			return false
		}
		if reaches(ref) {
			return nil, &rules.Error{Line: 1, Column: 1, Message: fmt.Sprintf("in_segment(%q) makes a cycle: %q depends on this segment", ref, ref)}
		}
	}
	return r, nil
}

// Create saves a segment. Its members are filled by the next recompute (the
// API runs one at once).
func (s *Store) Create(ctx context.Context, workspaceID, slug, name, src string) (Segment, error) {
	if !slugRe.MatchString(slug) {
		return Segment{}, &FieldError{Field: "slug", Reason: "must be 1-63 lower-case letters, digits, _ or -, e.g. vip-customers"}
	}
	if strings.TrimSpace(name) == "" || len(name) > 200 {
		return Segment{}, &FieldError{Field: "name", Reason: "must be 1-200 characters"}
	}
	r, err := s.check(ctx, workspaceID, slug, src)
	if err != nil {
		return Segment{}, err
	}
	deps, _ := json.Marshal(r.Deps)
	sg, err := scan(s.pool.QueryRow(ctx, `INSERT INTO segments (workspace_id, slug, name, rule, deps) VALUES ($1, $2, $3, $4, $5) RETURNING `+cols,
		workspaceID, slug, strings.TrimSpace(name), src, deps))
	if isUnique(err) {
		return Segment{}, ErrSlugTaken
	}
	if err != nil {
		return Segment{}, fmt.Errorf("create segment %s: %w", slug, err)
	}
	s.forget(workspaceID)
	return sg, nil
}

// Update changes a segment's name and/or rule.
func (s *Store) Update(ctx context.Context, workspaceID, id string, name, src *string) (Segment, error) {
	cur, err := s.Get(ctx, workspaceID, id)
	if err != nil {
		return cur, err
	}
	if name != nil && (strings.TrimSpace(*name) == "" || len(*name) > 200) {
		return Segment{}, &FieldError{Field: "name", Reason: "must be 1-200 characters"}
	}
	var deps []byte
	if src != nil {
		r, err := s.check(ctx, workspaceID, cur.Slug, *src)
		if err != nil {
			return Segment{}, err
		}
		deps, _ = json.Marshal(r.Deps)
	}
	sg, err := scan(s.pool.QueryRow(ctx, `
		UPDATE segments SET name = coalesce($3, name), rule = coalesce($4, rule), deps = coalesce($5, deps), updated_at = now()
		WHERE workspace_id = $1 AND id = $2 RETURNING `+cols, workspaceID, id, name, src, deps))
	if err != nil {
		return sg, err
	}
	s.forget(workspaceID)
	return sg, nil
}

// Delete removes a segment, its memberships and history.
func (s *Store) Delete(ctx context.Context, workspaceID, id string) error {
	cur, err := s.Get(ctx, workspaceID, id)
	if err != nil {
		return err
	}
	all, err := s.List(ctx, workspaceID)
	if err != nil {
		return err
	}
	for _, sg := range all {
		if slices.Contains(sg.Deps.Segments, cur.Slug) {
			return &FieldError{Field: "id", Reason: fmt.Sprintf("segment %q uses in_segment(%q); change it first", sg.Slug, cur.Slug)}
		}
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM segments WHERE workspace_id = $1 AND id = $2`, workspaceID, id); err != nil {
		return fmt.Errorf("delete segment: %w", err)
	}
	s.forget(workspaceID)
	return nil
}

// Get loads a segment.
func (s *Store) Get(ctx context.Context, workspaceID, id string) (Segment, error) {
	return scan(s.pool.QueryRow(ctx, `SELECT `+cols+` FROM segments WHERE workspace_id = $1 AND id = $2`, workspaceID, id))
}

// List returns the workspace's segments by slug.
func (s *Store) List(ctx context.Context, workspaceID string) ([]Segment, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+cols+` FROM segments WHERE workspace_id = $1 ORDER BY slug`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	defer rows.Close()
	out := []Segment{}
	for rows.Next() {
		sg, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sg)
	}
	return out, rows.Err()
}

// compiledSet returns the workspace's segments compiled, ordered so that a
// segment comes after those it reads with in_segment.
func (s *Store) compiledSet(ctx context.Context, workspaceID string) ([]*compiled, error) {
	now := time.Now()
	s.mu.Lock()
	c, ok := s.sets[workspaceID]
	s.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.segs, nil
	}
	all, err := s.List(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	bySlug := map[string]*compiled{}
	for _, sg := range all {
		r, err := Compile(sg.Rule)
		if err != nil {
			continue // saved rules compile; never let one break the others
		}
		bySlug[sg.Slug] = &compiled{Segment: sg, rule: r}
	}
	var ordered []*compiled
	done := map[string]bool{}
	var visit func(c *compiled, depth int)
	visit = func(c *compiled, depth int) {
		if done[c.Slug] || depth > len(bySlug) {
			return
		}
		for _, ref := range c.rule.Deps.Segments {
			if d, ok := bySlug[ref]; ok {
				visit(d, depth+1)
			}
		}
		if !done[c.Slug] {
			done[c.Slug] = true
			ordered = append(ordered, c)
		}
	}
	for _, sg := range all {
		if c, ok := bySlug[sg.Slug]; ok {
			visit(c, 0)
		}
	}
	s.mu.Lock()
	s.sets[workspaceID] = cachedSet{segs: ordered, expires: now.Add(s.ttl)}
	s.mu.Unlock()
	return ordered, nil
}

func (s *Store) forget(workspaceID string) {
	s.mu.Lock()
	delete(s.sets, workspaceID)
	s.mu.Unlock()
}

// Member is one profile in a segment.
type Member struct {
	ProfileID string    `json:"profile_id"`
	EnteredAt time.Time `json:"entered_at"`
}

// Members pages through a segment's current members by profile id.
func (s *Store) Members(ctx context.Context, workspaceID, segmentID, after string, limit int) ([]Member, string, error) {
	if after == "" {
		after = "00000000-0000-0000-0000-000000000000"
	}
	rows, err := s.pool.Query(ctx, `
		SELECT m.profile_id::text, m.entered_at FROM segment_memberships m
		WHERE m.workspace_id = $1 AND m.segment_id = $2 AND m.exited_at IS NULL AND m.profile_id > $3::uuid
		ORDER BY m.profile_id LIMIT $4`, workspaceID, segmentID, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list members: %w", err)
	}
	ms, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Member])
	if err != nil {
		return nil, "", fmt.Errorf("list members: %w", err)
	}
	next := ""
	if len(ms) > limit {
		ms = ms[:limit]
		next = ms[len(ms)-1].ProfileID
	}
	return ms, next, nil
}

// SizePoint is a segment's size at a time.
type SizePoint struct {
	At   time.Time `json:"at"`
	Size int       `json:"size"`
}

// Sizes returns a segment's size history, oldest first (at most the last 1,000 points).
func (s *Store) Sizes(ctx context.Context, workspaceID, segmentID string) ([]SizePoint, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT at, size FROM (SELECT at, size FROM segment_sizes WHERE workspace_id = $1 AND segment_id = $2 ORDER BY at DESC LIMIT 1000) x ORDER BY at`,
		workspaceID, segmentID)
	if err != nil {
		return nil, fmt.Errorf("load size history: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[SizePoint])
}

// profileData converts a stored profile to what rules see.
func profileData(p *profile.Profile) Profile {
	c := p.Computed
	return Profile{
		ID: p.ID, State: p.State, Traits: p.Traits, Identities: map[string][]string{}, Consents: map[string]bool{},
		EventCount: c.EventCount, PageViews: c.PageViews, ScreenViews: c.ScreenViews, Sessions: c.Sessions,
		OrderCount: c.OrderCount, TotalRevenue: c.TotalRevenue, AvgOrderValue: c.AvgOrderValue, LastOrderAt: c.LastOrderAt,
		FirstSeenAt: p.FirstSeenAt, LastSeenAt: p.LastSeenAt, Sources: c.Sources, Channels: c.Channels,
	}
}

// querier is what a pool and a transaction offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// loadData loads what the rules with deps need for the given profiles; it
// returns the live ones only.
func loadData(ctx context.Context, q querier, workspaceID string, ids []string, names []string, maxWindow time.Duration, allTime bool, now time.Time) (map[string]*Data, error) {
	out := map[string]*Data{}
	// The columns rules read only (not trait_sources, say): a sweep loads
	// every profile of the workspace.
	rows, err := q.Query(ctx, `SELECT p.id::text, p.state, p.traits, p.computed, p.first_seen_at, p.last_seen_at FROM profiles p
		WHERE p.workspace_id = $1 AND p.id = ANY($2::uuid[]) AND p.merged_into IS NULL`, workspaceID, ids)
	if err != nil {
		return nil, fmt.Errorf("load profiles: %w", err)
	}
	for rows.Next() {
		var p profile.Profile
		var traits, computed []byte
		if err := rows.Scan(&p.ID, &p.State, &traits, &computed, &p.FirstSeenAt, &p.LastSeenAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("load profiles: %w", err)
		}
		if err := json.Unmarshal(traits, &p.Traits); err != nil {
			rows.Close()
			return nil, fmt.Errorf("decode traits of %s: %w", p.ID, err)
		}
		if err := json.Unmarshal(computed, &p.Computed); err != nil {
			rows.Close()
			return nil, fmt.Errorf("decode computed traits of %s: %w", p.ID, err)
		}
		out[p.ID] = &Data{Profile: profileData(&p), Segments: map[string]bool{}, changedAt: map[string]time.Time{}}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = q.Query(ctx, `SELECT profile_id::text, type, value FROM identities WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])`, workspaceID, ids)
	if err != nil {
		return nil, fmt.Errorf("load identities: %w", err)
	}
	for rows.Next() {
		var pid, typ, value string
		if err := rows.Scan(&pid, &typ, &value); err != nil {
			rows.Close()
			return nil, err
		}
		if d := out[pid]; d != nil {
			d.Profile.Identities[typ] = append(d.Profile.Identities[typ], value)
		}
	}
	rows.Close()
	// One index probe per profile, whatever the statistics say: while a
	// first recompute fills segment_memberships, its statistics describe an
	// empty table, and the planner would rather read every membership of
	// the workspace for each batch (OFFSET 0 keeps the lateral subquery from
	// being flattened into that plan).
	rows, err = q.Query(ctx, `
		SELECT x.pid::text, s.slug, m.exited_at IS NULL, greatest(m.entered_at, coalesce(m.exited_at, m.entered_at))
		FROM unnest($2::uuid[]) AS x(pid)
		JOIN LATERAL (SELECT m.segment_id, m.entered_at, m.exited_at FROM segment_memberships m
		              WHERE m.workspace_id = $1 AND m.profile_id = x.pid OFFSET 0) m ON true
		JOIN segments s ON s.workspace_id = $1 AND s.id = m.segment_id`, workspaceID, ids)
	if err != nil {
		return nil, fmt.Errorf("load memberships: %w", err)
	}
	for rows.Next() {
		var pid, slug string
		var in bool
		var changed time.Time
		if err := rows.Scan(&pid, &slug, &in, &changed); err != nil {
			rows.Close()
			return nil, err
		}
		if d := out[pid]; d != nil {
			d.Segments[slug] = in
			d.changedAt[slug] = changed
		}
	}
	rows.Close()
	if len(names) == 0 {
		return out, nil
	}
	since := time.Time{}
	if !allTime && maxWindow > 0 {
		since = now.Add(-maxWindow)
	}
	rows, err = q.Query(ctx, `
		SELECT profile_id::text, name, timestamp, properties FROM events
		WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[]) AND name = ANY($3::text[]) AND timestamp > $4`,
		workspaceID, ids, names, since)
	if err != nil {
		return nil, fmt.Errorf("load events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pid string
		var e Event
		var props []byte
		if err := rows.Scan(&pid, &e.Name, &e.At, &props); err != nil {
			return nil, err
		}
		if d := out[pid]; d != nil {
			e.raw = props
			d.Events = append(d.Events, e)
		}
	}
	return out, rows.Err()
}

// needs unions the data needs of segments.
func needs(segs []*compiled) (names []string, maxWindow time.Duration, allTime bool) {
	for _, c := range segs {
		names = append(names, c.rule.Deps.Events...)
		maxWindow = max(maxWindow, c.rule.Deps.MaxWindow)
		allTime = allTime || c.rule.Deps.AllTime
	}
	slices.Sort(names)
	return slices.Compact(names), maxWindow, allTime
}

func isUnique(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

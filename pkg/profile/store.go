package profile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned for a profile that does not exist in the workspace.
var ErrNotFound = errors.New("profile not found")

// Columns is the select list Scan reads, for a profiles table aliased p.
const Columns = `p.id::text, p.state, p.traits, p.trait_sources, p.computed, p.first_seen_at, p.last_seen_at, p.created_at, p.updated_at, coalesce(p.merged_into::text, '')`

// Scan reads a row selected with Columns, then any extra columns.
func Scan(row pgx.Row, extra ...any) (*Profile, error) {
	p := &Profile{}
	var traits, sources, computed []byte
	dest := append([]any{&p.ID, &p.State, &traits, &sources, &computed, &p.FirstSeenAt, &p.LastSeenAt, &p.CreatedAt, &p.UpdatedAt, &p.MergedInto}, extra...)
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	if err := json.Unmarshal(traits, &p.Traits); err != nil {
		return nil, fmt.Errorf("decode traits: %w", err)
	}
	if err := json.Unmarshal(sources, &p.TraitSource); err != nil {
		return nil, fmt.Errorf("decode trait sources: %w", err)
	}
	if err := json.Unmarshal(computed, &p.Computed); err != nil {
		return nil, fmt.Errorf("decode computed traits: %w", err)
	}
	if p.Computed.EventCounts == nil {
		p.Computed.EventCounts = map[string]int{}
	}
	return p, nil
}

// Store reads profiles.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a Store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Identity is one identifier of a profile, with where it was first seen.
type Identity struct {
	Type      string    `json:"type"`
	Value     string    `json:"value"`
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"first_seen_at"`
}

// View is the 360 view of a profile.
type View struct {
	*Profile
	Identities []Identity   `json:"identities"`
	Merges     []Merge      `json:"merges"`
	Segments   []Membership `json:"segments"`
}

// Membership is a segment the profile is in.
type Membership struct {
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	EnteredAt time.Time `json:"entered_at"`
}

// Merge is one entry of a profile's merge history.
type Merge struct {
	ID         string          `json:"id"`
	MergedID   string          `json:"merged_profile_id"`
	MessageID  string          `json:"message_id"`
	Identities json.RawMessage `json:"identities"`
	CreatedAt  time.Time       `json:"created_at"`
	UndoneAt   *time.Time      `json:"undone_at,omitempty"`
}

// Get loads the 360 view of a profile. A merged profile's id still resolves:
// the view returned is the surviving profile's.
func (s *Store) Get(ctx context.Context, workspaceID, id string) (*View, error) {
	for hops := 0; hops < 16; hops++ { // follow merges to the survivor
		p, err := Scan(s.pool.QueryRow(ctx, `SELECT `+Columns+` FROM profiles p WHERE p.workspace_id = $1 AND p.id = $2`, workspaceID, id))
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil, err
			}
			return nil, fmt.Errorf("load profile %s: %w", id, err)
		}
		if p.MergedInto != "" {
			id = p.MergedInto
			continue
		}
		v := &View{Profile: p, Identities: []Identity{}, Merges: []Merge{}, Segments: []Membership{}}
		rows, err := s.pool.Query(ctx, `SELECT type, value, source, created_at FROM identities WHERE workspace_id = $1 AND profile_id = $2 ORDER BY created_at, type, value`, workspaceID, id)
		if err != nil {
			return nil, fmt.Errorf("load identities of %s: %w", id, err)
		}
		if v.Identities, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Identity]); err != nil {
			return nil, fmt.Errorf("load identities of %s: %w", id, err)
		}
		rows, err = s.pool.Query(ctx, `SELECT id::text, merged_id::text, message_id, identities, created_at, undone_at FROM profile_merges WHERE workspace_id = $1 AND survivor_id = $2 ORDER BY created_at DESC`, workspaceID, id)
		if err != nil {
			return nil, fmt.Errorf("load merges of %s: %w", id, err)
		}
		if v.Merges, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Merge]); err != nil {
			return nil, fmt.Errorf("load merges of %s: %w", id, err)
		}
		rows, err = s.pool.Query(ctx, `
			SELECT s.slug, s.name, m.entered_at FROM segment_memberships m JOIN segments s ON s.workspace_id = m.workspace_id AND s.id = m.segment_id
			WHERE m.workspace_id = $1 AND m.profile_id = $2 AND m.exited_at IS NULL ORDER BY s.slug`, workspaceID, id)
		if err != nil {
			return nil, fmt.Errorf("load segments of %s: %w", id, err)
		}
		if v.Segments, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Membership]); err != nil {
			return nil, fmt.Errorf("load segments of %s: %w", id, err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("profile %s: merge chain too long", id)
}

// Lookup finds the profile holding an identifier (normalised by the caller).
func (s *Store) Lookup(ctx context.Context, workspaceID, typ, value string) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT profile_id::text FROM identities WHERE workspace_id = $1 AND type = $2 AND value = $3`, workspaceID, typ, value).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("look up %s: %w", typ, err)
	}
	return id, nil
}

// Event is one record on a profile's timeline.
type Event struct {
	ID         int64           `json:"-"`
	MessageID  string          `json:"message_id"`
	Type       string          `json:"type"`
	Name       string          `json:"name,omitempty"`
	Source     string          `json:"source"`
	Timestamp  time.Time       `json:"timestamp"`
	ReceivedAt time.Time       `json:"received_at"`
	Properties json.RawMessage `json:"properties"`
	Traits     json.RawMessage `json:"traits"`
	Context    json.RawMessage `json:"context"`
	Raw        json.RawMessage `json:"raw"`
}

// Timeline returns a page of a profile's events, newest first, and the
// cursor of the next page ("" at the end).
func (s *Store) Timeline(ctx context.Context, workspaceID, profileID, cursor string, limit int) ([]Event, string, error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	beforeTS, beforeID := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), int64(1<<62)
	if cursor != "" {
		ts, id, ok := decodeCursor(cursor)
		if !ok {
			return nil, "", ErrBadCursor
		}
		beforeTS, beforeID = ts, id
	}
	rows, err := s.pool.Query(ctx, `
		SELECT id, message_id, type, coalesce(name, ''), source, timestamp, received_at, properties, traits, context, raw
		FROM events WHERE workspace_id = $1 AND profile_id = $2 AND (timestamp, id) < ($3, $4)
		ORDER BY timestamp DESC, id DESC LIMIT $5`, workspaceID, profileID, beforeTS, beforeID, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("load timeline: %w", err)
	}
	evs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Event])
	if err != nil {
		return nil, "", fmt.Errorf("load timeline: %w", err)
	}
	next := ""
	if len(evs) > limit {
		evs = evs[:limit]
		last := evs[len(evs)-1]
		next = encodeCursor(last.Timestamp, last.ID)
	}
	return evs, next, nil
}

// ErrBadCursor is returned for a cursor this API did not issue.
var ErrBadCursor = errors.New("invalid cursor")

func encodeCursor(ts time.Time, id int64) string {
	return strconv.FormatInt(ts.UnixMicro(), 36) + "." + strconv.FormatInt(id, 36)
}

func decodeCursor(c string) (time.Time, int64, bool) {
	a, b, ok := strings.Cut(c, ".")
	if !ok {
		return time.Time{}, 0, false
	}
	us, err1 := strconv.ParseInt(a, 36, 64)
	id, err2 := strconv.ParseInt(b, 36, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, 0, false
	}
	return time.UnixMicro(us).UTC(), id, true
}

// EachEvent calls fn for every event of a profile, oldest first.
func (s *Store) EachEvent(ctx context.Context, workspaceID, profileID string, fn func(Event) error) error {
	rows, err := s.pool.Query(ctx, `
		SELECT id, message_id, type, coalesce(name, ''), source, timestamp, received_at, properties, traits, context, raw
		FROM events WHERE workspace_id = $1 AND profile_id = $2 ORDER BY timestamp, id`, workspaceID, profileID)
	if err != nil {
		return fmt.Errorf("load events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		ev, err := pgx.RowToStructByPos[Event](rows)
		if err != nil {
			return fmt.Errorf("load events: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	return rows.Err()
}

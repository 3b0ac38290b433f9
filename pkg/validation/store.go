package validation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors of the store.
var (
	ErrNotFound  = errors.New("validation rule not found")
	ErrNameTaken = errors.New("a validation rule with this name exists")
)

// Stored is a rule as saved.
type Stored struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Source    string    `json:"source,omitempty"`
	Rule      string    `json:"rule"`
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Store saves rules and serves compiled rule sets from a short-lived cache.
type Store struct {
	pool *pgxpool.Pool
	ttl  time.Duration
	mu   sync.Mutex
	sets map[string]cachedSet
}

type cachedSet struct {
	rules   []Rule
	expires time.Time
}

// NewStore returns a Store. Rule changes made through another process are
// seen within ttl; through this one, at once.
func NewStore(pool *pgxpool.Pool, ttl time.Duration) *Store {
	return &Store{pool: pool, ttl: ttl, sets: map[string]cachedSet{}}
}

const cols = `id::text, name, coalesce(source, ''), rule, enabled, created_at, updated_at`

// Create validates and saves a rule.
func (s *Store) Create(ctx context.Context, workspaceID string, r Stored) (Stored, error) {
	if _, err := Compile(r.Rule); err != nil {
		return Stored{}, err
	}
	rows, err := s.pool.Query(ctx, `INSERT INTO validation_rules (workspace_id, name, source, rule, enabled) VALUES ($1, $2, nullif($3, ''), $4, $5) RETURNING `+cols,
		workspaceID, strings.TrimSpace(r.Name), r.Source, r.Rule, r.Enabled)
	if err != nil {
		return Stored{}, fmt.Errorf("create validation rule: %w", err)
	}
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[Stored])
	if isUnique(err) {
		return Stored{}, ErrNameTaken
	}
	if err != nil {
		return Stored{}, fmt.Errorf("create validation rule: %w", err)
	}
	s.forget(workspaceID)
	return out, nil
}

// Update changes a rule's text and/or enabled flag.
func (s *Store) Update(ctx context.Context, workspaceID, id string, rule *string, enabled *bool) (Stored, error) {
	if rule != nil {
		if _, err := Compile(*rule); err != nil {
			return Stored{}, err
		}
	}
	rows, err := s.pool.Query(ctx, `
		UPDATE validation_rules SET rule = coalesce($3, rule), enabled = coalesce($4, enabled), updated_at = now()
		WHERE workspace_id = $1 AND id = $2 RETURNING `+cols, workspaceID, id, rule, enabled)
	if err != nil {
		return Stored{}, fmt.Errorf("update validation rule: %w", err)
	}
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[Stored])
	if errors.Is(err, pgx.ErrNoRows) {
		return Stored{}, ErrNotFound
	}
	if err != nil {
		return Stored{}, fmt.Errorf("update validation rule: %w", err)
	}
	s.forget(workspaceID)
	return out, nil
}

// Delete removes a rule.
func (s *Store) Delete(ctx context.Context, workspaceID, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM validation_rules WHERE workspace_id = $1 AND id = $2`, workspaceID, id)
	if err != nil {
		return fmt.Errorf("delete validation rule: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	s.forget(workspaceID)
	return nil
}

// List returns a workspace's rules by name.
func (s *Store) List(ctx context.Context, workspaceID string) ([]Stored, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+cols+` FROM validation_rules WHERE workspace_id = $1 ORDER BY name`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list validation rules: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Stored])
	if err != nil {
		return nil, fmt.Errorf("list validation rules: %w", err)
	}
	return out, nil
}

// Enabled returns the workspace's enabled rules, compiled, from the cache.
func (s *Store) Enabled(ctx context.Context, workspaceID string) ([]Rule, error) {
	now := time.Now()
	s.mu.Lock()
	c, ok := s.sets[workspaceID]
	s.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.rules, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+cols+` FROM validation_rules WHERE workspace_id = $1 AND enabled ORDER BY name`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("load validation rules: %w", err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Stored])
	if err != nil {
		return nil, fmt.Errorf("load validation rules: %w", err)
	}
	rules := make([]Rule, 0, len(stored))
	for _, st := range stored {
		prog, err := Compile(st.Rule)
		if err != nil { // saved rules compile; a broken one is skipped, not fatal
			continue
		}
		rules = append(rules, Rule{ID: st.ID, Name: st.Name, Source: st.Source, Text: st.Rule, program: prog})
	}
	s.mu.Lock()
	s.sets[workspaceID] = cachedSet{rules: rules, expires: now.Add(s.ttl)}
	s.mu.Unlock()
	return rules, nil
}

func (s *Store) forget(workspaceID string) {
	s.mu.Lock()
	delete(s.sets, workspaceID)
	s.mu.Unlock()
}

func isUnique(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

package workspace

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store reads and writes workspaces and keys in PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a Store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

const workspaceCols = `id::text, slug, name, unique_identifier, identity_traits, created_at`

func scanWorkspace(row pgx.Row) (Workspace, error) {
	var w Workspace
	err := row.Scan(&w.ID, &w.Slug, &w.Name, &w.UniqueIdentifier, &w.IdentityTraits, &w.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return w, ErrNotFound
	}
	return w, err
}

// Create adds a workspace.
func (s *Store) Create(ctx context.Context, slug, name string) (Workspace, error) {
	if err := ValidateSlug(slug); err != nil {
		return Workspace{}, err
	}
	return createWorkspace(ctx, s.pool, slug, name)
}

func createWorkspace(ctx context.Context, q querier, slug, name string) (Workspace, error) {
	w, err := scanWorkspace(q.QueryRow(ctx,
		`INSERT INTO workspaces (slug, name) VALUES ($1, $2) RETURNING `+workspaceCols, slug, name))
	if isUniqueViolation(err) {
		return w, ErrSlugTaken
	}
	if err != nil {
		return w, fmt.Errorf("create workspace %s: %w", slug, err)
	}
	return w, nil
}

// Get loads a workspace by id.
func (s *Store) Get(ctx context.Context, id string) (Workspace, error) {
	return scanWorkspace(s.pool.QueryRow(ctx, `SELECT `+workspaceCols+` FROM workspaces WHERE id = $1`, id))
}

// UpdateSettings changes a workspace's identity rules. They apply to records
// ingested from then on; profiles already resolved stay as they are.
func (s *Store) UpdateSettings(ctx context.Context, id string, set Settings) (Workspace, error) {
	var out Workspace
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		w, err := scanWorkspace(tx.QueryRow(ctx, `SELECT `+workspaceCols+` FROM workspaces WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		if w, err = set.apply(w); err != nil {
			return err
		}
		out, err = scanWorkspace(tx.QueryRow(ctx, `UPDATE workspaces SET unique_identifier = $2, identity_traits = $3 WHERE id = $1 RETURNING `+workspaceCols,
			id, w.UniqueIdentifier, w.IdentityTraits))
		return err
	})
	return out, err
}

// BySlug loads a workspace by slug.
func (s *Store) BySlug(ctx context.Context, slug string) (Workspace, error) {
	return scanWorkspace(s.pool.QueryRow(ctx, `SELECT `+workspaceCols+` FROM workspaces WHERE slug = $1`, slug))
}

const keyCols = `id::text, workspace_id::text, name, scope, coalesce(source, ''), prefix, created_at, last_used_at, revoked_at`

func scanKey(row pgx.Row) (Key, error) {
	var k Key
	err := row.Scan(&k.ID, &k.WorkspaceID, &k.Name, &k.Scope, &k.Source, &k.Prefix, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, ErrNotFound
	}
	return k, err
}

// querier is what both a pool and a transaction offer.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// CreateKey adds a key to a workspace and returns its secret, once.
func (s *Store) CreateKey(ctx context.Context, workspaceID string, spec KeySpec) (NewKey, error) {
	return createKey(ctx, s.pool, workspaceID, spec)
}

func createKey(ctx context.Context, q querier, workspaceID string, spec KeySpec) (NewKey, error) {
	if err := spec.Validate(); err != nil {
		return NewKey{}, err
	}
	secret, err := generateSecret(spec.Scope)
	if err != nil {
		return NewKey{}, fmt.Errorf("create key: %w", err)
	}
	var source *string
	if spec.Source != "" {
		source = &spec.Source
	}
	k, err := scanKey(q.QueryRow(ctx, `
		INSERT INTO api_keys (workspace_id, name, scope, source, prefix, secret_hash)
		VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING `+keyCols,
		workspaceID, spec.Name, spec.Scope, source, displayPrefix(secret), HashSecret(secret)))
	if err != nil {
		return NewKey{}, fmt.Errorf("create key in workspace %s: %w", workspaceID, err)
	}
	return NewKey{Key: k, Secret: secret}, nil
}

// ListKeys lists a workspace's keys, newest first, revoked ones included.
func (s *Store) ListKeys(ctx context.Context, workspaceID string) ([]Key, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+keyCols+` FROM api_keys WHERE workspace_id = $1 ORDER BY created_at DESC, id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list keys of workspace %s: %w", workspaceID, err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Key, error) { return scanKey(r) })
	if err != nil {
		return nil, fmt.Errorf("list keys of workspace %s: %w", workspaceID, err)
	}
	return keys, nil
}

// RevokeKey revokes a key of the workspace. Revoking twice is not an error.
func (s *Store) RevokeKey(ctx context.Context, workspaceID, keyID string) (Key, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `
		UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
		WHERE workspace_id = $1 AND id = $2
		RETURNING `+keyCols, workspaceID, keyID))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return k, fmt.Errorf("revoke key %s: %w", keyID, err)
	}
	return k, err
}

// Authenticate finds the key a secret belongs to. It fails with ErrInvalidKey
// for unknown secrets and ErrRevokedKey for revoked ones.
func (s *Store) Authenticate(ctx context.Context, secret string) (Key, error) {
	if len(secret) < len(secretPrefix) || secret[:len(secretPrefix)] != secretPrefix {
		return Key{}, ErrInvalidKey
	}
	// last_used_at is refreshed at most once a minute so that a busy
	// ingestion key does not turn every request into a row update.
	k, err := scanKey(s.pool.QueryRow(ctx, `
		WITH k AS (SELECT id FROM api_keys WHERE secret_hash = $1),
		touched AS (
			UPDATE api_keys SET last_used_at = now()
			WHERE id = (SELECT id FROM k) AND revoked_at IS NULL
			  AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
		)
		SELECT `+keyCols+` FROM api_keys WHERE id = (SELECT id FROM k)`, HashSecret(secret)))
	switch {
	case errors.Is(err, ErrNotFound):
		return k, ErrInvalidKey
	case err != nil:
		return k, fmt.Errorf("authenticate key: %w", err)
	case k.RevokedAt != nil:
		return k, ErrRevokedKey
	}
	return k, nil
}

// Bootstrap makes sure a workspace with slug exists. When it creates it, it
// also creates a first admin key and a first write key (source "web") and
// returns them with created=true; their secrets are never available again.
// Running it again, or from several processes at once, is safe.
func (s *Store) Bootstrap(ctx context.Context, slug, name string) (w Workspace, keys []NewKey, created bool, err error) {
	if err := ValidateSlug(slug); err != nil {
		return w, nil, false, err
	}
	if w, err = s.BySlug(ctx, slug); err == nil {
		return w, nil, false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return w, nil, false, fmt.Errorf("bootstrap workspace %s: %w", slug, err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if w, err = createWorkspace(ctx, tx, slug, name); err != nil {
			return err
		}
		for _, spec := range []KeySpec{
			{Name: "First admin key", Scope: ScopeAdmin},
			{Name: "Website tracking", Scope: ScopeWrite, Source: "web"},
		} {
			k, err := createKey(ctx, tx, w.ID, spec)
			if err != nil {
				return err
			}
			keys = append(keys, k)
		}
		return nil
	})
	if errors.Is(err, ErrSlugTaken) { // another process won the race
		w, err = s.BySlug(ctx, slug)
		return w, nil, false, err
	}
	if err != nil {
		return w, nil, false, fmt.Errorf("bootstrap workspace %s: %w", slug, err)
	}
	return w, keys, true, nil
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

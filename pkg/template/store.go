package template

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors of the store.
var (
	ErrNotFound  = errors.New("template not found")
	ErrSlugTaken = errors.New("template slug already in use")
)

// FieldError names a wrong input field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Channels a template can be written for.
var Channels = []string{"email", "webhook"}

// Template is a saved template.
type Template struct {
	ID        string    `json:"id"`
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	Channel   string    `json:"channel"`
	Subject   string    `json:"subject"`
	Preheader string    `json:"preheader"`
	HTML      string    `json:"html"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Source returns the template's Liquid parts.
func (t Template) Source() Source {
	return Source{Subject: t.Subject, Preheader: t.Preheader, HTML: t.HTML, Text: t.Text}
}

// Compile compiles the template's parts.
func (t Template) Compile() (*Compiled, error) { return Compile(t.Source()) }

var slugRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate checks the fields a database constraint would otherwise refuse,
// then compiles the template.
func (t Template) Validate(ctx context.Context) error {
	if !slugRe.MatchString(t.Slug) {
		return &FieldError{"slug", "must be 1-63 lower-case letters, digits, _ or -, starting with a letter or digit"}
	}
	if t.Name == "" || len(t.Name) > 200 {
		return &FieldError{"name", "must be 1-200 characters"}
	}
	switch t.Channel {
	case "email":
		if t.Subject == "" {
			return &FieldError{"subject", "is required for an email"}
		}
		if t.HTML == "" && t.Text == "" {
			return &FieldError{"html", "an email needs an html or a text body"}
		}
	case "webhook":
	default:
		return &FieldError{"channel", "must be email or webhook"}
	}
	_, err := Check(ctx, t.Source())
	return err
}

// Store keeps templates.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a Store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

const cols = `id::text, slug, name, channel, subject, preheader, html, text, created_at, updated_at`

func scan(row pgx.Row) (Template, error) {
	var t Template
	err := row.Scan(&t.ID, &t.Slug, &t.Name, &t.Channel, &t.Subject, &t.Preheader, &t.HTML, &t.Text, &t.CreatedAt, &t.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, ErrNotFound
	}
	return t, err
}

// Create validates and saves a template.
func (s *Store) Create(ctx context.Context, workspaceID string, t Template) (Template, error) {
	if err := t.Validate(ctx); err != nil {
		return Template{}, err
	}
	out, err := scan(s.pool.QueryRow(ctx, `
		INSERT INTO templates (workspace_id, slug, name, channel, subject, preheader, html, text)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+cols,
		workspaceID, t.Slug, t.Name, t.Channel, t.Subject, t.Preheader, t.HTML, t.Text))
	if err != nil {
		return Template{}, translate("create template "+t.Slug, err)
	}
	return out, nil
}

// Update validates and saves new content for a template; the slug and
// channel stay.
func (s *Store) Update(ctx context.Context, workspaceID, id string, change func(*Template)) (Template, error) {
	var out Template
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		t, err := scan(tx.QueryRow(ctx, `SELECT `+cols+` FROM templates WHERE workspace_id = $1 AND id = $2 FOR UPDATE`, workspaceID, id))
		if err != nil {
			return err
		}
		slug, channel := t.Slug, t.Channel
		change(&t)
		if t.Slug != slug {
			return &FieldError{"slug", "cannot change; create a new template"}
		}
		if t.Channel != channel {
			return &FieldError{"channel", "cannot change; create a new template"}
		}
		if err := t.Validate(ctx); err != nil {
			return err
		}
		out, err = scan(tx.QueryRow(ctx, `
			UPDATE templates SET name = $3, subject = $4, preheader = $5, html = $6, text = $7, updated_at = now()
			WHERE workspace_id = $1 AND id = $2 RETURNING `+cols,
			workspaceID, id, t.Name, t.Subject, t.Preheader, t.HTML, t.Text))
		return err
	})
	if err != nil {
		return Template{}, translate("update template "+id, err)
	}
	return out, nil
}

// Get loads a template by id.
func (s *Store) Get(ctx context.Context, workspaceID, id string) (Template, error) {
	t, err := scan(s.pool.QueryRow(ctx, `SELECT `+cols+` FROM templates WHERE workspace_id = $1 AND id = $2`, workspaceID, id))
	if err != nil {
		return t, translate("load template "+id, err)
	}
	return t, nil
}

// BySlug loads a template by slug.
func (s *Store) BySlug(ctx context.Context, workspaceID, slug string) (Template, error) {
	t, err := scan(s.pool.QueryRow(ctx, `SELECT `+cols+` FROM templates WHERE workspace_id = $1 AND slug = $2`, workspaceID, slug))
	if err != nil {
		return t, translate("load template "+slug, err)
	}
	return t, nil
}

// List returns the workspace's templates by slug.
func (s *Store) List(ctx context.Context, workspaceID string) ([]Template, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+cols+` FROM templates WHERE workspace_id = $1 ORDER BY slug`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Template, error) { return scan(r) })
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	if out == nil {
		out = []Template{}
	}
	return out, nil
}

// Delete removes a template. Deliveries keep its id.
func (s *Store) Delete(ctx context.Context, workspaceID, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM templates WHERE workspace_id = $1 AND id = $2`, workspaceID, id)
	if err != nil {
		return fmt.Errorf("delete template %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

func translate(what string, err error) error {
	var pgErr *pgconn.PgError
	var fe *FieldError
	var ce *CompileError
	switch {
	case errors.Is(err, ErrNotFound), errors.As(err, &fe), errors.As(err, &ce):
		return err
	case errors.As(err, &pgErr) && pgErr.Code == "23505":
		return ErrSlugTaken
	}
	return fmt.Errorf("%s: %w", what, err)
}

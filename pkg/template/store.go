package template

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

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
var Channels = []string{"email", "sms", "webhook"}

// Template is a saved template.
type Template struct {
	ID      string `json:"id"`
	Slug    string `json:"slug"`
	Name    string `json:"name"`
	Channel string `json:"channel"`
	// Kind is message (sent by journeys and broadcasts), partial (a block
	// messages render with {% render 'slug' %}) or layout (a frame whose
	// {{ content }} receives a message's body).
	Kind string `json:"kind"`
	// Layout is the slug of the layout a message is framed in ("" for none).
	Layout    string    `json:"layout,omitempty"`
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
	if err := t.validateKind(); err != nil {
		return err
	}
	if t.Kind == KindPartial || t.Kind == KindLayout {
		_, err := Check(ctx, stripPartials(t.Source()))
		return err
	}
	switch t.Channel {
	case "email":
		if t.Subject == "" {
			return &FieldError{"subject", "is required for an email"}
		}
		if t.HTML == "" && t.Text == "" {
			return &FieldError{"html", "an email needs an html or a text body"}
		}
	case "sms":
		switch {
		case strings.TrimSpace(t.Text) == "":
			return &FieldError{"text", "is required for an SMS: the message body"}
		case t.HTML != "":
			return &FieldError{"html", "an SMS has no HTML: write the body in text"}
		case t.Subject != "" || t.Preheader != "":
			return &FieldError{"subject", "an SMS has no subject or preheader: write the body in text"}
		}
	case "webhook":
	default:
		return &FieldError{"channel", "must be email, sms or webhook"}
	}
	// Partials are checked once rendered in (Store.checkParts); here the
	// rest of the source must parse.
	c, err := Check(ctx, stripPartials(t.Source()))
	if err != nil || t.Channel != "sms" {
		return err
	}
	// What the body says whatever the profile: already too long to send?
	out, err := c.Render(ctx, Data{})
	if err != nil {
		return err
	}
	if n := utf8.RuneCountInString(out.Text); n > MaxSMSChars {
		return &FieldError{"text", fmt.Sprintf("renders %d characters before any profile data; an SMS takes at most %d", n, MaxSMSChars)}
	}
	return nil
}

// MaxSMSChars is the longest SMS body Twilio accepts, in characters.
const MaxSMSChars = 1600

// Store keeps templates.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a Store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

const cols = `id::text, slug, name, channel, kind, layout, subject, preheader, html, text, created_at, updated_at`

func scan(row pgx.Row) (Template, error) {
	var t Template
	err := row.Scan(&t.ID, &t.Slug, &t.Name, &t.Channel, &t.Kind, &t.Layout, &t.Subject, &t.Preheader, &t.HTML, &t.Text, &t.CreatedAt, &t.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, ErrNotFound
	}
	return t, err
}

// Create validates and saves a template.
func (s *Store) Create(ctx context.Context, workspaceID string, t Template) (Template, error) {
	if t.Kind == "" {
		t.Kind = KindMessage
	}
	if err := t.Validate(ctx); err != nil {
		return Template{}, err
	}
	if err := s.checkParts(ctx, s.pool, workspaceID, t); err != nil {
		return Template{}, err
	}
	out, err := scan(s.pool.QueryRow(ctx, `
		INSERT INTO templates (workspace_id, slug, name, channel, kind, layout, subject, preheader, html, text)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING `+cols,
		workspaceID, t.Slug, t.Name, t.Channel, t.Kind, t.Layout, t.Subject, t.Preheader, t.HTML, t.Text))
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
		slug, channel, kind := t.Slug, t.Channel, t.Kind
		change(&t)
		if t.Slug != slug {
			return &FieldError{"slug", "cannot change; create a new template"}
		}
		if t.Channel != channel {
			return &FieldError{"channel", "cannot change; create a new template"}
		}
		if t.Kind != kind {
			return &FieldError{"kind", "cannot change; create a new template"}
		}
		if err := t.Validate(ctx); err != nil {
			return err
		}
		if err := s.checkParts(ctx, tx, workspaceID, t); err != nil {
			return err
		}
		out, err = scan(tx.QueryRow(ctx, `
			UPDATE templates SET name = $3, subject = $4, preheader = $5, html = $6, text = $7, layout = $8, updated_at = now()
			WHERE workspace_id = $1 AND id = $2 RETURNING `+cols,
			workspaceID, id, t.Name, t.Subject, t.Preheader, t.HTML, t.Text, t.Layout))
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

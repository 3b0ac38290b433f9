package template

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Kinds of template.
const (
	KindMessage = "message"
	KindPartial = "partial"
	KindLayout  = "layout"
)

// partialRe finds {% render 'footer' %} (or include): a partial rendered
// in place, with the same data as the template around it.
var partialRe = regexp.MustCompile(`\{%-?\s*(?:render|include)\s+['"]([a-z0-9][a-z0-9_-]{0,62})['"]\s*-?%\}`)

// contentRe finds {{ content }}: where a layout receives the message.
var contentRe = regexp.MustCompile(`\{\{-?\s*content\s*-?\}\}`)

// maxPartialDepth bounds partials within partials.
const maxPartialDepth = 3

func (t Template) validateKind() error {
	switch t.Kind {
	case KindMessage, "": // the zero value is a message
		if t.Layout != "" && !slugRe.MatchString(t.Layout) {
			return &FieldError{"layout", "must be the slug of a layout template"}
		}
	case KindPartial:
		if !slices.Contains(Channels, t.Channel) {
			return &FieldError{"channel", "must be email, sms or webhook"}
		}
		if t.Layout != "" {
			return &FieldError{"layout", "a partial has no layout: the message around it has"}
		}
		if t.Subject+t.Preheader+t.HTML+t.Text == "" {
			return &FieldError{"html", "a partial needs some content in html, text, subject or preheader"}
		}
	case KindLayout:
		if t.Channel != "email" {
			return &FieldError{"channel", "layouts frame emails: channel must be email"}
		}
		if t.Layout != "" {
			return &FieldError{"layout", "a layout cannot have a layout"}
		}
		if t.Subject != "" || t.Preheader != "" {
			return &FieldError{"subject", "a layout frames the body: the subject and preheader are the message's"}
		}
		if !contentRe.MatchString(t.HTML) {
			return &FieldError{"html", "a layout's html must say where the message goes with {{ content }}"}
		}
	default:
		return &FieldError{"kind", "must be message, partial or layout"}
	}
	return nil
}

// stripPartials removes partial tags, for checking the rest of a source.
func stripPartials(src Source) Source {
	strip := func(s string) string { return partialRe.ReplaceAllLiteralString(s, "") }
	return Source{Subject: strip(src.Subject), Preheader: strip(src.Preheader), HTML: strip(src.HTML), Text: strip(src.Text)}
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Resolve returns t as it is sent: its partials rendered in (each part
// takes the partial's same part), then, for a message with a layout, the
// layout around its html (and its text, when the layout's text has
// {{ content }} too). Subject and preheader stay the message's.
func (s *Store) Resolve(ctx context.Context, workspaceID string, t Template) (Template, error) {
	return s.resolve(ctx, s.pool, workspaceID, t)
}

// Compile resolves t and compiles it.
func (s *Store) Compile(ctx context.Context, workspaceID string, t Template) (*Compiled, error) {
	r, err := s.Resolve(ctx, workspaceID, t)
	if err != nil {
		return nil, err
	}
	return r.Compile()
}

// checkParts checks, at save time, that what t renders and its layout
// exist and that the whole compiles.
func (s *Store) checkParts(ctx context.Context, q querier, workspaceID string, t Template) error {
	r, err := s.resolve(ctx, q, workspaceID, t)
	if err != nil {
		return err
	}
	_, err = Check(ctx, r.Source())
	return err
}

func (s *Store) resolve(ctx context.Context, q querier, workspaceID string, t Template) (Template, error) {
	cache := map[string]Template{}
	load := func(slug string) (Template, bool, error) {
		if p, ok := cache[slug]; ok {
			return p, true, nil
		}
		p, err := scan(q.QueryRow(ctx, `SELECT `+cols+` FROM templates WHERE workspace_id = $1 AND slug = $2`, workspaceID, slug))
		if errors.Is(err, ErrNotFound) {
			return p, false, nil
		}
		if err != nil {
			return p, false, fmt.Errorf("load template %s: %w", slug, err)
		}
		cache[slug] = p
		return p, true, nil
	}
	// expand writes src into sb with its partials rendered in, counting
	// the bytes as it goes: partials within partials multiply (20 × 20 ×
	// 100 KB is 40 MB), so the part stops as soon as it passes MaxSource,
	// before anything larger is built.
	var expand func(sb *strings.Builder, field, src string, part func(Template) string, path []string) error
	write := func(sb *strings.Builder, field, s string, path []string) error {
		if sb.Len()+len(s) <= MaxSource {
			sb.WriteString(s)
			return nil
		}
		if len(path) < 2 {
			return &FieldError{field, fmt.Sprintf("is longer than %d KB", MaxSource>>10)}
		}
		return &FieldError{field, fmt.Sprintf("is longer than %d KB with its partials rendered in: partial %q passes it (%s); render fewer or shorter partials",
			MaxSource>>10, path[len(path)-1], strings.Join(path, " → "))}
	}
	expand = func(sb *strings.Builder, field, src string, part func(Template) string, path []string) error {
		last := 0
		for _, m := range partialRe.FindAllStringSubmatchIndex(src, -1) {
			if err := write(sb, field, src[last:m[0]], path); err != nil {
				return err
			}
			last = m[1]
			slug := src[m[2]:m[3]]
			inner := slices.Concat(path, []string{slug})
			switch {
			case slices.Contains(path, slug):
				return &FieldError{field, fmt.Sprintf("partial %q renders itself (%s)", slug, strings.Join(inner, " → "))}
			case len(path) > maxPartialDepth:
				return &FieldError{field, fmt.Sprintf("partials nest deeper than %d (%s)", maxPartialDepth, strings.Join(inner, " → "))}
			}
			p, ok, err := load(slug)
			switch {
			case err != nil:
				return err
			case !ok || p.Kind != KindPartial:
				return &FieldError{field, fmt.Sprintf("renders %q, which is not a partial of this workspace (create it with kind partial)", slug)}
			case p.Channel != t.Channel:
				return &FieldError{field, fmt.Sprintf("renders %q, a partial for %s, not %s", slug, p.Channel, t.Channel)}
			}
			if err := expand(sb, field, part(p), part, inner); err != nil {
				return err
			}
		}
		return write(sb, field, src[last:], path)
	}
	expanded := func(field, src string, part func(Template) string, path []string) (string, error) {
		var sb strings.Builder
		if err := expand(&sb, field, src, part, path); err != nil {
			return "", err
		}
		return sb.String(), nil
	}
	parts := []struct {
		field string
		dst   *string
		get   func(Template) string
	}{
		{"subject", &t.Subject, func(p Template) string { return p.Subject }},
		{"preheader", &t.Preheader, func(p Template) string { return p.Preheader }},
		{"html", &t.HTML, func(p Template) string { return p.HTML }},
		{"text", &t.Text, func(p Template) string { return p.Text }},
	}
	self := []string{t.Slug}
	for _, p := range parts {
		v, err := expanded(p.field, *p.dst, p.get, self)
		if err != nil {
			return t, err
		}
		*p.dst = v
	}
	if (t.Kind != KindMessage && t.Kind != "") || t.Layout == "" {
		return t, nil
	}
	l, ok, err := load(t.Layout)
	switch {
	case err != nil:
		return t, err
	case !ok || l.Kind != KindLayout:
		return t, &FieldError{"layout", fmt.Sprintf("%q is not a layout of this workspace (create it with kind layout)", t.Layout)}
	case l.Channel != t.Channel:
		return t, &FieldError{"layout", fmt.Sprintf("%q frames %s, not %s", t.Layout, l.Channel, t.Channel)}
	}
	for _, p := range parts[2:] {
		v, err := expanded("layout", p.get(l), p.get, []string{l.Slug})
		if err != nil {
			return t, err
		}
		if contentRe.MatchString(v) {
			// Literal: the message's source goes in as it is, once.
			first := true
			*p.dst = contentRe.ReplaceAllStringFunc(v, func(string) string {
				if first {
					first = false
					return *p.dst
				}
				return ""
			})
			if len(*p.dst) > MaxSource {
				return t, &FieldError{p.field, fmt.Sprintf("is longer than %d KB framed in layout %q", MaxSource>>10, l.Slug)}
			}
		}
	}
	return t, nil
}

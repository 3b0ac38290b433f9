// Package template compiles and renders message templates written in Liquid
// (the language marketers know from Shopify and Braze), with
// github.com/osteele/liquid.
//
// A template has a subject, a preheader, an HTML body and a text alternative.
// It is compiled when saved (a syntax error names the part and the line) and
// rendered against a data model of ids and values:
//
//	{profile: {id, state, traits, ...}, event: {...}, journey: {...}}
//
// Values are data: they are handed to the renderer as values and never parsed
// as templates, so a trait holding "{{ ... }}" prints as written. Rendering is
// bounded (budget.go): in time (Timeout), output (MaxOutput), text built by
// filters and captures (MaxBuilt), loop iterations (MaxIterations) and
// ranges (MaxRange), and the bounds stop the rendering itself.
package template

import (
	"context"
	"errors"
	"fmt"
	"html"
	"strings"

	"github.com/osteele/liquid/expressions"
	"github.com/osteele/liquid/parser"
	"github.com/osteele/liquid/render"
)

// CompileError says which part of a template does not compile, and where.
type CompileError struct {
	Field   string // subject, preheader, html or text
	Line    int    // 1-based; 0 when the library does not say
	Message string
	// Err is the limit the template passed while rendering (ErrTooLarge,
	// ErrTooMuchText, ErrTooManyIterations, ErrListTooLong, ErrTimeout),
	// or nil.
	Err error
}

// Unwrap returns the limit passed, so that errors.Is finds it.
func (e *CompileError) Unwrap() error { return e.Err }

func (e *CompileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: line %d: %s", e.Field, e.Line, e.Message)
	}
	return e.Field + ": " + e.Message
}

// Source is the Liquid source of a template's parts.
type Source struct {
	Subject   string
	Preheader string
	HTML      string
	Text      string
}

// Output is a rendered message.
type Output struct {
	Subject   string `json:"subject"`
	Preheader string `json:"preheader"`
	HTML      string `json:"html"`
	Text      string `json:"text"`
}

// Data is what a template can read. Each map holds plain JSON values
// (strings, numbers, booleans, lists, maps).
type Data struct {
	Profile map[string]any
	Event   map[string]any
	Journey map[string]any
	// UnsubscribeURL and PreferencesURL are the message's signed links
	// (one-click unsubscribe, the hosted preference page), read as
	// {{ unsubscribe_url }} and {{ preferences_url }}; "" when the
	// server has no public URL or secret key.
	UnsubscribeURL string
	PreferencesURL string
}

// Compiled is a template ready to render; safe for concurrent use.
type Compiled struct {
	subject, preheader, html, text render.Node
}

// Compile parses every part of src. The error is a *CompileError naming the
// first part at fault: a syntax error, a part longer than MaxSource, a range
// literal of more than MaxRange numbers.
func Compile(src Source) (*Compiled, error) {
	var c Compiled
	parts := []struct {
		field string
		src   string
		dst   *render.Node
	}{
		{"subject", src.Subject, &c.subject},
		{"preheader", src.Preheader, &c.preheader},
		{"html", src.HTML, &c.html},
		{"text", src.Text, &c.text},
	}
	for _, p := range parts {
		if len(p.src) > MaxSource {
			return nil, &CompileError{Field: p.field, Message: fmt.Sprintf("is longer than %d KB", MaxSource>>10)}
		}
		root, err := compilePart(p.field, p.src)
		if err != nil {
			return nil, err
		}
		if err := checkRanges(p.field, root); err != nil {
			return nil, err
		}
		*p.dst = root
	}
	return &c, nil
}

// compilePart parses one part. The library's expression scanner panics
// on some input (a number too large for an int): that is a compile error
// too, not a crash of the request.
func compilePart(field, src string) (root render.Node, err error) {
	defer func() {
		if p := recover(); p != nil {
			root, err = nil, &CompileError{Field: field, Message: fmt.Sprintf("cannot be parsed: %v", p)}
		}
	}()
	// The part's name as the path keeps the line of the innermost node in
	// render errors (the library relocates errors that have no path to
	// each enclosing block).
	root, serr := grammar.Compile(src, parser.SourceLoc{Pathname: field, LineNo: 1})
	if serr != nil {
		return nil, &CompileError{Field: field, Line: serr.LineNumber(), Message: sourceMessage(serr)}
	}
	return root, nil
}

// Check compiles src and renders it once against an empty model, so that
// errors only rendering finds (an unsupported tag, a filter given the wrong
// arguments, a limit passed whatever the data) are reported on save.
func Check(ctx context.Context, src Source) (*Compiled, error) {
	c, err := Compile(src)
	if err != nil {
		return nil, err
	}
	if _, err := c.Render(ctx, Data{}); err != nil {
		return nil, err
	}
	return c, nil
}

// sourceMessage strips the library's "Liquid error (line n): ... in <source>"
// decoration, keeping the reason.
func sourceMessage(err parser.Error) string {
	if cause := err.Cause(); cause != nil {
		return cause.Error()
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "Liquid error")
	if i := strings.Index(msg, "): "); i >= 0 && strings.HasPrefix(msg, " (line") {
		msg = msg[i+3:]
	}
	msg = strings.TrimPrefix(msg, ": ")
	if i := strings.LastIndex(msg, " in "); i > 0 {
		msg = msg[:i]
	}
	return msg
}

// Render renders every part within the limits (MaxOutput, MaxBuilt,
// MaxIterations, MaxRange, Timeout), in the calling goroutine: a limit
// passed stops the rendering, and nothing keeps running once Render has
// returned. The HTML part sees every string of the model HTML-escaped
// beforehand (escapeValues): the library has no auto-escaping, and escaping
// the values rather than relying on `| escape` in each template means a
// marketer cannot forget it. Subject, preheader and text are plain text and
// see the values as they are. A render error, a limit passed included, is a
// *CompileError naming the part and the line; when ctx itself is cancelled
// the error is ctx's.
func (c *Compiled) Render(ctx context.Context, d Data) (Output, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	b := &budget{ctx: ctx}
	r := renderers.Get().(*renderer)
	r.b = b
	defer func() {
		r.b = nil
		renderers.Put(r)
	}()
	plain := bindings(d)
	escaped := escapeValues(plain).(map[string]any)
	plain[budgetKey], escaped[budgetKey] = b, b

	var out Output
	parts := []struct {
		field string
		root  render.Node
		vars  map[string]any
		dst   *string
	}{
		{"subject", c.subject, plain, &out.Subject},
		{"preheader", c.preheader, plain, &out.Preheader},
		{"html", c.html, escaped, &out.HTML},
		{"text", c.text, plain, &out.Text},
	}
	for _, p := range parts {
		if p.root == nil {
			continue
		}
		s, err := r.renderOne(p.root, p.vars)
		if err != nil {
			if errors.Is(b.err, context.Canceled) {
				return Output{}, fmt.Errorf("render %s: %w", p.field, b.err)
			}
			ce := &CompileError{Field: p.field, Line: lineOf(err), Message: renderMessage(err), Err: b.err}
			if b.err != nil {
				ce.Message = b.err.Error()
			}
			return Output{}, ce
		}
		*p.dst = strings.TrimSpace(s)
	}
	return out, nil
}

func lineOf(err error) int {
	var se parser.Error
	if errors.As(err, &se) {
		return se.LineNumber()
	}
	return 0
}

func renderMessage(err error) string {
	// The library's errors chain with Cause, not Unwrap.
	for e := err; e != nil; {
		if fe, ok := e.(expressions.FilterError); ok {
			return fmt.Sprintf("filter %s: %v", fe.FilterName, fe.Err)
		}
		c, ok := e.(interface{ Cause() error })
		if !ok {
			break
		}
		e = c.Cause()
	}
	var se parser.Error
	if errors.As(err, &se) {
		return sourceMessage(se)
	}
	return err.Error()
}

// renderOne renders one part. A limit passed is in r.b.err whatever the
// error the library returned (or panicked with) on its way out.
func (r *renderer) renderOne(root render.Node, vars map[string]any) (out string, err error) {
	w := &outputWriter{b: r.b}
	// The library panics when a write fails at the end of a block (and may
	// on other bad input): turn that back into the error.
	defer func() {
		if p := recover(); p != nil {
			out = ""
			if e, ok := p.(error); ok {
				err = e
				return
			}
			err = fmt.Errorf("template failed: %v", p)
		}
	}()
	if err := render.Render(root, w, vars, r.cfg); err != nil {
		return "", err
	}
	if r.b.err != nil {
		return "", r.b.err
	}
	return w.buf.String(), nil
}

func bindings(d Data) map[string]any {
	orEmpty := func(m map[string]any) map[string]any {
		if m == nil {
			return map[string]any{}
		}
		return m
	}
	return map[string]any{"profile": orEmpty(d.Profile), "event": orEmpty(d.Event), "journey": orEmpty(d.Journey),
		"unsubscribe_url": d.UnsubscribeURL, "preferences_url": d.PreferencesURL}
}

// escapeValues returns a copy of v with every string, and every map key,
// HTML-escaped.
func escapeValues(v any) any {
	switch x := v.(type) {
	case string:
		return html.EscapeString(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[html.EscapeString(k)] = escapeValues(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = escapeValues(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = html.EscapeString(e)
		}
		return out
	default:
		return v
	}
}

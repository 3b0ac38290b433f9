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
// bounded in time (Timeout) and in output size (MaxOutput).
package template

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"strings"
	"time"

	"github.com/osteele/liquid"
	"github.com/osteele/liquid/render"
)

// Limits of one rendering.
const (
	// MaxOutput caps each rendered part. Email providers and clients reject or
	// clip far smaller messages (Gmail clips HTML above 102 KB); anything
	// larger is a runaway loop, not an email.
	MaxOutput = 512 << 10
	// Timeout bounds one rendering of all parts. A template loops only over
	// data the profile holds, so a second is generous; the cap stops
	// `{% for i in (1..100000000) %}` from holding an activity slot.
	Timeout = 2 * time.Second
	// MaxSource caps each part's source.
	MaxSource = 256 << 10
)

// Errors of rendering.
var (
	ErrTooLarge = fmt.Errorf("rendered output exceeds %d KB", MaxOutput>>10)
	ErrTimeout  = fmt.Errorf("rendering took longer than %s", Timeout)
)

// CompileError says which part of a template does not compile, and where.
type CompileError struct {
	Field   string // subject, preheader, html or text
	Line    int    // 1-based; 0 when the library does not say
	Message string
}

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
	subject, preheader, html, text *liquid.Template
}

// engine is shared: parsing and rendering do not mutate it.
var engine = newEngine()

func newEngine() *liquid.Engine {
	e := liquid.NewEngine()
	// {% include %} reads files from the server's disk: never from a
	// marketer's template. Partials come later, from the database.
	e.RegisterTag("include", func(render.Context) (string, error) {
		return "", errors.New("{% include %} is not supported")
	})
	return e
}

// Compile parses every part of src. The error is a *CompileError naming the
// first part at fault.
func Compile(src Source) (*Compiled, error) {
	var c Compiled
	parts := []struct {
		field string
		src   string
		dst   **liquid.Template
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
		t, err := engine.ParseTemplateLocation([]byte(p.src), "", 1)
		if err != nil {
			return nil, &CompileError{Field: p.field, Line: err.LineNumber(), Message: sourceMessage(err)}
		}
		*p.dst = t
	}
	return &c, nil
}

// Check compiles src and renders it once against an empty model, so that
// errors only rendering finds (an unsupported tag, a filter given the wrong
// arguments) are reported on save.
func Check(ctx context.Context, src Source) (*Compiled, error) {
	c, err := Compile(src)
	if err != nil {
		return nil, err
	}
	if _, err := c.Render(ctx, Data{}); err != nil {
		var ce *CompileError
		if errors.As(err, &ce) {
			return nil, ce
		}
		return nil, err
	}
	return c, nil
}

// sourceMessage strips the library's "Liquid error (line n): ... in <source>"
// decoration, keeping the reason.
func sourceMessage(err liquid.SourceError) string {
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

// Render renders every part within Timeout and MaxOutput. The HTML part sees
// every string of the model HTML-escaped beforehand (escapeValues): the
// library has no auto-escaping, and escaping the values rather than relying
// on `| escape` in each template means a marketer cannot forget it. Subject,
// preheader and text are plain text and see the values as they are. A render
// error is a *CompileError naming the part.
func (c *Compiled) Render(ctx context.Context, d Data) (Output, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	plain := bindings(d)
	escaped := escapeValues(plain).(map[string]any)

	type result struct {
		out Output
		err error
	}
	done := make(chan result, 1)
	// Rendering cannot be interrupted from outside; the goroutine stops at
	// its next write once ctx is done (limitWriter), or when the template
	// ends. Either way this call returns at the deadline.
	go func() {
		var r result
		parts := []struct {
			field string
			t     *liquid.Template
			b     map[string]any
			dst   *string
		}{
			{"subject", c.subject, plain, &r.out.Subject},
			{"preheader", c.preheader, plain, &r.out.Preheader},
			{"html", c.html, escaped, &r.out.HTML},
			{"text", c.text, plain, &r.out.Text},
		}
		for _, p := range parts {
			s, err := renderOne(ctx, p.t, p.b)
			if err != nil {
				r.err = fmt.Errorf("render %s: %w", p.field, err)
				if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrTimeout) {
					var se liquid.SourceError
					line := 0
					if errors.As(err, &se) {
						line = se.LineNumber()
					}
					r.err = &CompileError{Field: p.field, Line: line, Message: renderMessage(err)}
				}
				break
			}
			*p.dst = strings.TrimSpace(s)
		}
		done <- r
	}()
	select {
	case r := <-done:
		return r.out, r.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Output{}, ErrTimeout
		}
		return Output{}, ctx.Err()
	}
}

func renderMessage(err error) string {
	var se liquid.SourceError
	if errors.As(err, &se) {
		return sourceMessage(se)
	}
	return err.Error()
}

func renderOne(ctx context.Context, t *liquid.Template, b map[string]any) (out string, err error) {
	if t == nil {
		return "", nil
	}
	w := &limitWriter{ctx: ctx, max: MaxOutput}
	// The library panics when a write inside a loop fails (and may on other
	// bad input): turn that back into the error.
	defer func() {
		if p := recover(); p != nil {
			out = ""
			if w.err != nil {
				err = w.err
				return
			}
			err = fmt.Errorf("template failed: %v", p)
		}
	}()
	if err := t.FRender(w, b); err != nil {
		if w.err != nil {
			return "", w.err
		}
		return "", err
	}
	return w.buf.String(), nil
}

// limitWriter fails once the output passes max bytes or ctx is done, which
// stops the renderer at its next write.
type limitWriter struct {
	ctx context.Context
	buf bytes.Buffer
	max int
	err error
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.ctx.Err() != nil {
		w.err = ErrTimeout
		return 0, w.err
	}
	if w.buf.Len()+len(p) > w.max {
		w.err = ErrTooLarge
		return 0, w.err
	}
	return w.buf.Write(p)
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

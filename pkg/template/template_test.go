package template

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCompileErrorsNameThePartAndLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		src   Source
		field string
		line  int
	}{
		{"unclosed tag in subject", Source{Subject: "Hi {% if profile.traits.vip %}"}, "subject", 1},
		{"unknown filter in html", Source{Subject: "ok", HTML: "<p>\n\n{{ profile.id | nope }}</p>"}, "html", 3},
		{"bad tag in text", Source{Subject: "ok", Text: "line one\n{% frobnicate %}"}, "text", 2},
		{"include is refused", Source{Subject: "ok", HTML: `{% include "/etc/passwd" %}`}, "html", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Check(context.Background(), tt.src)
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *CompileError", err)
			}
			if ce.Field != tt.field || (tt.line > 0 && ce.Line != tt.line) || ce.Message == "" {
				t.Fatalf("got %+v, want field %s line %d", ce, tt.field, tt.line)
			}
		})
	}
}

func TestRenderEscapesHTMLAndNeverParsesValues(t *testing.T) {
	t.Parallel()
	c, err := Compile(Source{
		Subject: "Hello {{ profile.traits.first_name }}",
		HTML:    "<p>Hi {{ profile.traits.first_name }}, you bought {{ event.product }}</p>",
		Text:    "Hi {{ profile.traits.first_name }}",
	})
	if err != nil {
		t.Fatal(err)
	}
	name := `<script>alert(1)</script>{{ profile.id }}{% if true %}x{% endif %}`
	out, err := c.Render(context.Background(), Data{
		Profile: map[string]any{"id": "p-1", "traits": map[string]any{"first_name": name}},
		Event:   map[string]any{"product": "Tea & Co"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.HTML, "<script>") || !strings.Contains(out.HTML, "&lt;script&gt;") || !strings.Contains(out.HTML, "Tea &amp; Co") {
		t.Fatalf("html not escaped: %s", out.HTML)
	}
	if !strings.Contains(out.HTML, "{{ profile.id }}{% if true %}x{% endif %}") || strings.Contains(out.HTML, "p-1") {
		t.Fatalf("a trait value was interpreted as Liquid: %s", out.HTML)
	}
	if out.Text != "Hi "+name || out.Subject != "Hello "+name {
		t.Fatalf("text parts changed the value: %q / %q", out.Subject, out.Text)
	}
}

func TestRenderLimits(t *testing.T) {
	t.Parallel()
	big, err := Compile(Source{HTML: `{% for i in (1..10000) %}{{ profile.traits.pad }}{% endfor %}`})
	if err != nil {
		t.Fatal(err)
	}
	_, err = big.Render(context.Background(), Data{Profile: map[string]any{"traits": map[string]any{"pad": strings.Repeat("x", 100)}}})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	// (1..100000000) written out is refused when compiled; a range built
	// from a variable is stopped while rendering.
	slow, err := Compile(Source{Text: `{% assign n = 100000000 %}{% for i in (1..n) %}{% endfor %}`})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := slow.Render(ctx, Data{}); err == nil {
		t.Fatal("a runaway loop rendered")
	}
}

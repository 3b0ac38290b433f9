package template_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/template"
	"github.com/parcours/parcours/pkg/workspace"
)

func TestPartialsAndLayouts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	ws, _, _, err := workspace.NewStore(pool).Bootstrap(ctx, "shop", "Shop")
	if err != nil {
		t.Fatal(err)
	}
	s := template.NewStore(pool)
	create := func(tpl template.Template) (template.Template, error) {
		if tpl.Channel == "" {
			tpl.Channel = "email"
		}
		tpl.Name = tpl.Slug
		return s.Create(ctx, ws.ID, tpl)
	}
	must := func(tpl template.Template) template.Template {
		t.Helper()
		out, err := create(tpl)
		if err != nil {
			t.Fatalf("create %s: %v", tpl.Slug, err)
		}
		return out
	}
	field := func(err error) string {
		var fe *template.FieldError
		if errors.As(err, &fe) {
			return fe.Field + ": " + fe.Reason
		}
		return "not a field error: " + err.Error()
	}

	must(template.Template{Slug: "brand", Kind: template.KindPartial, HTML: "<h1>The Shop</h1>", Text: "THE SHOP"})
	footer := must(template.Template{Slug: "footer", Kind: template.KindPartial, HTML: `<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>`, Text: "Unsubscribe: {{ unsubscribe_url }}"})
	must(template.Template{Slug: "frame", Kind: template.KindLayout, HTML: "<html><body>{% render 'brand' %}{{ content }}</body></html>", Text: "{% render 'brand' %}\n{{ content }}"})
	welcome := must(template.Template{Slug: "welcome", Layout: "frame", Subject: "Welcome {{ profile.traits.first_name }}",
		HTML: "<p>Hi {{ profile.traits.first_name }}</p>{% render 'footer' %}", Text: "Hi {{ profile.traits.first_name }}\n{% render \"footer\" %}"})
	if welcome.Kind != template.KindMessage || welcome.Layout != "frame" {
		t.Fatalf("saved %+v", welcome)
	}

	render := func() template.Output {
		t.Helper()
		c, err := s.Compile(ctx, ws.ID, welcome)
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.Render(ctx, template.Data{Profile: map[string]any{"traits": map[string]any{"first_name": "Ana <3"}}, UnsubscribeURL: "https://u.example/x"})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := render()
	if out.HTML != `<html><body><h1>The Shop</h1><p>Hi Ana &lt;3</p><p><a href="https://u.example/x">Unsubscribe</a></p></body></html>` ||
		out.Text != "THE SHOP\nHi Ana <3\nUnsubscribe: https://u.example/x" || out.Subject != "Welcome Ana <3" {
		t.Fatalf("rendered %+v", out)
	}
	// A partial changed is in the next render of every message using it.
	if _, err := s.Update(ctx, ws.ID, footer.ID, func(tp *template.Template) { tp.Text = "Stop these emails: {{ unsubscribe_url }}" }); err != nil {
		t.Fatal(err)
	}
	if out := render(); !strings.HasSuffix(out.Text, "Stop these emails: https://u.example/x") {
		t.Fatalf("after the partial changed: %q", out.Text)
	}

	// Mistakes are named at save time.
	for _, tt := range []struct {
		tpl  template.Template
		want string
	}{
		{template.Template{Slug: "m1", Subject: "s", HTML: "{% render 'nope' %}"}, `html: renders "nope", which is not a partial`},
		{template.Template{Slug: "m2", Subject: "s", HTML: "{% render 'welcome' %}"}, `html: renders "welcome", which is not a partial`},
		{template.Template{Slug: "m3", Subject: "s", HTML: "x", Layout: "nope"}, `layout: "nope" is not a layout`},
		{template.Template{Slug: "m4", Subject: "s", HTML: "x", Layout: "brand"}, `layout: "brand" is not a layout`},
		{template.Template{Slug: "l1", Kind: template.KindLayout, HTML: "<body></body>"}, "html: a layout's html must say where the message goes with {{ content }}"},
		{template.Template{Slug: "l2", Kind: template.KindLayout, HTML: "{{ content }}", Subject: "s"}, "subject:"},
		{template.Template{Slug: "p1", Kind: template.KindPartial, Channel: "sms", Text: "{% render 'brand' %}"}, `text: renders "brand", a partial for email, not sms`},
		{template.Template{Slug: "k1", Kind: "block", HTML: "x"}, "kind: must be message, partial or layout"},
	} {
		_, err := create(tt.tpl)
		if err == nil || !strings.HasPrefix(field(err), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.tpl.Slug, err, tt.want)
		}
	}
	// A loop of partials is refused when it would close.
	a := must(template.Template{Slug: "a", Kind: template.KindPartial, HTML: "A"})
	must(template.Template{Slug: "b", Kind: template.KindPartial, HTML: "B{% render 'a' %}"})
	if _, err := s.Update(ctx, ws.ID, a.ID, func(tp *template.Template) { tp.HTML = "A{% render 'b' %}" }); err == nil || !strings.Contains(field(err), "renders itself (a → b → a)") {
		t.Fatalf("loop: %v", err)
	}
}

// Partials nested in partials multiply: each level below was saved while
// the one under it was short, then the innermost grew. Rendering them in
// stops as soon as the part passes MaxSource, naming the partial, instead of
// building 40 MB first (before the fix the save built it all and was then
// refused by the size check of the compiled part).
func TestNestedPartialsStopAtMaxSource(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	ws, _, _, err := workspace.NewStore(pool).Bootstrap(ctx, "shop", "Shop")
	if err != nil {
		t.Fatal(err)
	}
	s := template.NewStore(pool)
	create := func(slug, kind, html string) (template.Template, error) {
		return s.Create(ctx, ws.ID, template.Template{Slug: slug, Name: slug, Channel: "email", Kind: kind, Subject: map[bool]string{true: "", false: "Hi"}[kind == template.KindPartial], HTML: html})
	}
	p0, err := create("p0", template.KindPartial, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := create("p1", template.KindPartial, strings.Repeat("{% render 'p0' %}", 20)); err != nil {
		t.Fatal(err)
	}
	if _, err := create("p2", template.KindPartial, strings.Repeat("{% render 'p1' %}", 20)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, ws.ID, p0.ID, func(tp *template.Template) { tp.HTML = strings.Repeat("y", 100<<10) }); err != nil {
		t.Fatal(err)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = create("big", template.KindMessage, "<p>Hello</p>{% render 'p2' %}")
	runtime.ReadMemStats(&after)

	var fe *template.FieldError
	if !errors.As(err, &fe) || fe.Field != "html" || !strings.Contains(fe.Reason, "256 KB") || !strings.Contains(fe.Reason, `"p0"`) || !strings.Contains(fe.Reason, "big → p2 → p1 → p0") {
		t.Fatalf("err = %v, want a field error on html naming the partial that passed 256 KB", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Fatalf("saving allocated %d MiB", n>>20)
	}
}

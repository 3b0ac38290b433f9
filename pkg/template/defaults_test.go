package template

import (
	"context"
	"strings"
	"testing"
)

// Every starter template saves (Validate is what Create checks) and
// renders for a person with and without a first name.
func TestDefaultsSaveAndRender(t *testing.T) {
	t.Parallel()
	for _, slug := range []string{"welcome", "welcome-tips", "cart-rescue-1", "cart-rescue-coupon", "newsletter", "newsletter-resend", "thank-you"} {
		tpl, ok := Default(slug)
		if !ok {
			t.Fatalf("no default for %s", slug)
		}
		if err := tpl.Validate(context.Background()); err != nil {
			t.Fatalf("%s: %v", slug, err)
		}
		c, err := tpl.Compile()
		if err != nil {
			t.Fatal(err)
		}
		for _, traits := range []map[string]any{{"first_name": "Ana"}, {}} {
			out, err := c.Render(context.Background(), Data{Profile: map[string]any{"traits": traits}})
			if err != nil {
				t.Fatalf("%s: %v", slug, err)
			}
			if out.Subject == "" || out.HTML == "" || out.Text == "" || strings.Contains(out.Subject, "{{") {
				t.Fatalf("%s rendered %+v", slug, out)
			}
			if _, named := traits["first_name"]; named && strings.Contains(tpl.Subject, "first_name") && !strings.Contains(out.Subject, "Ana") {
				t.Fatalf("%s: subject %q lacks the first name", slug, out.Subject)
			}
		}
	}
	if _, ok := Default("nope"); ok {
		t.Fatal("a default for an unknown slug")
	}
}

package template_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/template"
)

func TestSMSTemplateValidation(t *testing.T) {
	t.Parallel()
	sms := func(change func(*template.Template)) template.Template {
		tpl := template.Template{Slug: "shipped", Name: "Shipped", Channel: "sms", Text: "Hi {{ profile.traits.first_name }}, your order shipped."}
		change(&tpl)
		return tpl
	}
	tests := []struct {
		name  string
		tpl   template.Template
		field string // "" when valid
	}{
		{"valid", sms(func(*template.Template) {}), ""},
		{"no body", sms(func(t *template.Template) { t.Text = "  " }), "text"},
		{"html", sms(func(t *template.Template) { t.HTML = "<p>Hi</p>" }), "html"},
		{"subject", sms(func(t *template.Template) { t.Subject = "Shipped" }), "subject"},
		{"preheader", sms(func(t *template.Template) { t.Preheader = "Shipped" }), "subject"},
		{"longer than Twilio takes before any data", sms(func(t *template.Template) { t.Text = strings.Repeat("ab", 801) }), "text"},
		{"long only with data is checked at send", sms(func(t *template.Template) { t.Text = strings.Repeat("a", 1590) + "{{ profile.traits.bio }}" }), ""},
		{"syntax error", sms(func(t *template.Template) { t.Text = "{% if profile.traits.vip %}Hi" }), "text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.tpl.Validate(context.Background())
			var fe *template.FieldError
			var ce *template.CompileError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("valid template refused: %v", err)
			case tt.field == "":
			case errors.As(err, &fe) && fe.Field == tt.field, errors.As(err, &ce) && ce.Field == tt.field:
			default:
				t.Fatalf("error %v, want one naming %s", err, tt.field)
			}
		})
	}
}

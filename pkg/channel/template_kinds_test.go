package channel_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
	"github.com/parcours/parcours/pkg/template"
)

// A message framed in a layout goes out whole; a partial is not a message
// and is refused, recorded, without calling the provider.
func TestSendsResolveLayoutsAndRefusePartials(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	ana := e.Profile(t, "ana@example.com", map[string]any{"first_name": "Ana"})
	for _, tpl := range []template.Template{
		{Slug: "frame", Name: "Frame", Channel: "email", Kind: template.KindLayout, HTML: "<main>{{ content }}</main>"},
		{Slug: "news", Name: "News", Channel: "email", Layout: "frame", Subject: "News", HTML: "<p>Hi {{ profile.traits.first_name }}</p>"},
		{Slug: "footer", Name: "Footer", Channel: "email", Kind: template.KindPartial, HTML: "<p>Bye</p>"},
	} {
		if _, err := e.Ledger.Templates.Create(ctx, e.WorkspaceID, tpl); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Ledger.Send(ctx, channel.SendRequest{BusinessKey: "k1", WorkspaceID: e.WorkspaceID, ProfileID: ana, TemplateSlug: "news", Channel: "email", Class: "marketing"}); err != nil {
		t.Fatal(err)
	}
	if mails := e.SendGrid.Accepted(); len(mails) != 1 || !strings.Contains(mails[0].Body("text/html"), "<main><p>Hi Ana</p></main>") {
		t.Fatalf("mails %+v", mails)
	}
	d, err := e.Ledger.Send(ctx, channel.SendRequest{BusinessKey: "k2", WorkspaceID: e.WorkspaceID, ProfileID: ana, TemplateSlug: "footer", Channel: "email", Class: "marketing"})
	var se *channel.SendError
	if !errors.As(err, &se) || !se.Permanent || d.Status != channel.StatusFailed || !strings.Contains(d.Reason, "is a partial, not a message") || e.SendGrid.Calls() != 1 {
		t.Fatalf("sending a partial: %+v %v (%d calls)", d, err, e.SendGrid.Calls())
	}
}

package segment_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/segment"
)

// Members' identifiers and traits go to a segment webhook: in clear over
// plain http only to this machine or a private address, never across the
// internet.
func TestSegmentWebhookNeedsHTTPS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newHookEnv(t)
	sg, err := e.segments.Create(ctx, e.ws, "pro", "Pro plan", `profile.traits.plan == "pro"`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.hooks.Create(ctx, e.ws, sg.ID, segment.WebhookInput{URL: "http://tools.example.com/hooks/parcours"})
	var fe *segment.FieldError
	if !errors.As(err, &fe) || fe.Field != "url" || !strings.Contains(fe.Reason, "https") {
		t.Fatalf("plain http to a public host: %v", err)
	}
	if _, err := e.hooks.Create(ctx, e.ws, sg.ID, segment.WebhookInput{URL: "http://127.0.0.1:9/hooks"}); err != nil {
		t.Fatalf("plain http to this machine: %v", err)
	}
}

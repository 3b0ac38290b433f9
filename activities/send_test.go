package activities_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/pkg/channel/channeltest"
)

func TestSendMessageActivity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	e.Template(t, "welcome", "Hello {{ profile.traits.first_name }}", "<p>Hello</p>", "")
	ana := e.Profile(t, "ana@example.com", map[string]any{"first_name": "Ana"})
	a := &activities.Activities{Pool: e.Pool, Ledger: e.Ledger}
	in := func(key string) activities.SendMessageInput {
		return activities.SendMessageInput{BusinessKey: key, WorkspaceID: e.WorkspaceID, ProfileID: ana, TemplateSlug: "welcome", Channel: "email", Class: "marketing", JourneyID: "j-1", NodeID: "send-1"}
	}

	// A duplicate attempt sends one email.
	first, err := a.SendMessage(ctx, in("journey/j-1/v1/ana/1/send-1"))
	if err != nil || first.Status != "sent" {
		t.Fatalf("send: %+v %v", first, err)
	}
	second, err := a.SendMessage(ctx, in("journey/j-1/v1/ana/1/send-1"))
	if err != nil || second != first || len(e.SendGrid.Accepted()) != 1 {
		t.Fatalf("duplicate attempt: %+v %v (%d mails)", second, err, len(e.SendGrid.Accepted()))
	}

	// A 400 is a non-retryable application error, recorded as failed.
	e.SendGrid.Then(channeltest.Answer{Status: 400})
	out, err := a.SendMessage(ctx, in("bad"))
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.NonRetryable() || appErr.Type() != activities.ErrTypeSendFailed || out.Status != "failed" {
		t.Fatalf("400: %+v %v", out, err)
	}

	// A 429 is retryable after the provider's reset time.
	e.SendGrid.Then(channeltest.Answer{Status: 429, Reset: time.Now().Add(20 * time.Second)})
	_, err = a.SendMessage(ctx, in("busy"))
	if !errors.As(err, &appErr) || appErr.NonRetryable() || appErr.Type() != activities.ErrTypeRateLimited ||
		appErr.NextRetryDelay() < 15*time.Second || appErr.NextRetryDelay() > 21*time.Second {
		t.Fatalf("429: %v (delay %v)", err, appErr.NextRetryDelay())
	}
}

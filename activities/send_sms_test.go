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

func TestSendMessageActivitySMS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := channeltest.NewEnv(t)
	fake := e.SMS(t, "")
	e.SMSTemplate(t, "shipped", "Your order shipped.")
	ana := e.PhoneProfile(t, "+33612345678", nil)
	a := &activities.Activities{Pool: e.Pool, Ledger: e.Ledger}
	in := func(key string) activities.SendMessageInput {
		return activities.SendMessageInput{BusinessKey: key, WorkspaceID: e.WorkspaceID, ProfileID: ana, TemplateSlug: "shipped", Channel: "sms", Class: "marketing", JourneyID: "j-1", NodeID: "sms-1"}
	}
	var appErr *temporal.ApplicationError

	// 429 with Retry-After: Temporal retries after Twilio's wait.
	fake.Then(channeltest.TwilioAnswer{Status: 429, RetryAfter: 3 * time.Second})
	_, err := a.SendMessage(ctx, in("k"))
	if !errors.As(err, &appErr) || appErr.NonRetryable() || appErr.Type() != activities.ErrTypeRateLimited || appErr.NextRetryDelay() != 3*time.Second {
		t.Fatalf("429: %v", err)
	}
	// 5xx without Retry-After: the activity's own backoff.
	fake.Then(channeltest.TwilioAnswer{Status: 500})
	if _, err = a.SendMessage(ctx, in("k")); !errors.As(err, &appErr) || appErr.NonRetryable() || appErr.Type() != activities.ErrTypeSendRetryable {
		t.Fatalf("500: %v", err)
	}
	// Then it goes, once, however often the activity runs again.
	for range 2 {
		out, err := a.SendMessage(ctx, in("k"))
		if err != nil || out.Status != "sent" || out.ProviderMessageID != fake.Accepted()[0].SID {
			t.Fatalf("send: %+v %v", out, err)
		}
	}
	if n := len(fake.Accepted()); n != 1 {
		t.Fatalf("%d SMS sent, want 1", n)
	}
	// A permanent refusal is a non-retryable SendFailed, recorded as failed.
	fake.Then(channeltest.TwilioAnswer{Status: 400, Code: 21211, Message: "The 'To' number is not a valid phone number."})
	out, err := a.SendMessage(ctx, in("bad"))
	if !errors.As(err, &appErr) || !appErr.NonRetryable() || appErr.Type() != activities.ErrTypeSendFailed || out.Status != "failed" {
		t.Fatalf("400: %+v %v", out, err)
	}
}

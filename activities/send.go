package activities

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/parcours/parcours/pkg/channel"
)

// Error types of SendMessage, for workflows' retry policies.
const (
	// ErrTypeSendFailed: the provider refused the message for good (a 4xx
	// other than 429, a template that does not render); recorded on the
	// delivery, not retried.
	ErrTypeSendFailed = "SendFailed"
	// ErrTypeRateLimited: the provider asked to wait; the error carries
	// the wait as its next retry delay.
	ErrTypeRateLimited = "RateLimited"
	// ErrTypeSendRetryable: the provider or the network failed; retry with
	// the activity's backoff.
	ErrTypeSendRetryable = "SendRetryable"
)

// SendMessageInput names one message. Ids only: activity inputs stay in
// Temporal history, which cannot be erased.
type SendMessageInput struct {
	// BusinessKey makes the send happen once, e.g.
	// journey/<journey>/v<version>/<profile>/<entry>/<node>.
	BusinessKey  string
	WorkspaceID  string
	ProfileID    string
	TemplateSlug string
	Channel      string // email, sms or webhook
	Class        string // marketing or transactional
	JourneyID    string
	NodeID       string
	// URL is a journey webhook node's target (marketer content, not
	// personal data); TemplateSlug is then empty.
	URL string
	// EventID is the record that started the run (its id only): templates
	// read it as `event`.
	EventID int64
	// OnPolicy is the send node's answer to a frequency cap or quiet hours
	// (marketing only): "defer" (default) or "drop".
	OnPolicy string
	// Now is the workflow's time: quiet hours and caps are checked at the
	// later of it and the wall clock.
	Now time.Time
	// Withdraw, when set, gives up a deferred send instead of sending: the
	// run ended (Withdraw says how) while the message waited.
	Withdraw string
}

// SendMessageResult is the delivery's outcome: sent, skipped (with the
// reason) or unknown (a previous attempt stopped midway; marketing only).
type SendMessageResult struct {
	DeliveryID        string
	Status            string
	Reason            string
	ProviderMessageID string
	// DeferredUntil is set with Status "deferred": a delivery policy held
	// the message back (Reason frequency_cap or quiet_hours); send again
	// with the same business key at that time.
	DeferredUntil time.Time
}

// StatusDeferred is SendMessage's status for a send a frequency cap or
// quiet hours held back until DeferredUntil.
const StatusDeferred = "deferred"

// SendMessage sends one message through the delivery ledger: running it
// again with the same business key never sends twice.
func (a *Activities) SendMessage(ctx context.Context, in SendMessageInput) (SendMessageResult, error) {
	if in.Withdraw != "" {
		d, err := a.Ledger.Withdraw(ctx, in.WorkspaceID, in.BusinessKey, in.Withdraw)
		return SendMessageResult{DeliveryID: d.ID, Status: d.Status, Reason: d.Reason, ProviderMessageID: d.ProviderMessageID}, err
	}
	d, err := a.Ledger.Send(ctx, channel.SendRequest{
		BusinessKey: in.BusinessKey, WorkspaceID: in.WorkspaceID, ProfileID: in.ProfileID,
		TemplateSlug: in.TemplateSlug, Channel: in.Channel, Class: in.Class, JourneyID: in.JourneyID, NodeID: in.NodeID, URL: in.URL, EventID: in.EventID,
		OnPolicy: cmp.Or(in.OnPolicy, channel.PolicyDefer), Now: in.Now,
	})
	out := SendMessageResult{DeliveryID: d.ID, Status: d.Status, Reason: d.Reason, ProviderMessageID: d.ProviderMessageID}
	if err == nil {
		if d.Status == channel.StatusClaimed && d.DeferredUntil != nil {
			out.Status, out.DeferredUntil = StatusDeferred, *d.DeferredUntil
		}
		return out, nil
	}
	var se *channel.SendError
	var fe *channel.FieldError
	switch {
	case errors.As(err, &fe):
		return out, temporal.NewNonRetryableApplicationError("send "+in.BusinessKey+": "+fe.Error(), ErrTypeSendFailed, err)
	case errors.As(err, &se) && se.Permanent:
		return out, temporal.NewNonRetryableApplicationError("send "+in.BusinessKey+": "+se.Reason, ErrTypeSendFailed, err, out)
	case errors.As(err, &se) && se.RetryAfter > 0:
		return out, temporal.NewApplicationErrorWithOptions("send "+in.BusinessKey+": "+se.Reason, ErrTypeRateLimited,
			temporal.ApplicationErrorOptions{NextRetryDelay: se.RetryAfter, Cause: err})
	case errors.As(err, &se):
		return out, temporal.NewApplicationError("send "+in.BusinessKey+": "+se.Reason, ErrTypeSendRetryable, err)
	}
	return out, fmt.Errorf("send %s: %w", in.BusinessKey, err)
}

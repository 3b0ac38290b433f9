package channel

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// sendLockClass is the first key of the advisory lock that queues the
// policy checks of one profile and channel: "Send". Two-key advisory locks
// do not overlap the one-key locks of identity resolution.
const sendLockClass = 0x53656e64

// policyNow is the time a policy check uses: the later of the caller's
// clock (a workflow's time, which a time-skipping test moves ahead) and the
// wall clock (an activity retried late still checks at the real time).
func policyNow(callerNow time.Time) time.Time {
	now := time.Now()
	if callerNow.After(now) {
		return callerNow
	}
	return now
}

// admit applies the workspace's delivery policy to a marketing send to a
// profile and, if it may go now, marks the delivery in flight with a
// compare-and-set on the attempt (only the attempt that owns the claim
// calls the provider). Both happen in one transaction under an advisory
// lock per workspace, profile and channel, so two concurrent sends cannot
// both pass a cap of one: the first is in flight, and counted, before the
// second counts.
//
// held reports a send the policy held back: deferred (still claimed,
// DeferredUntil set, Reason frequency_cap or quiet_hours) when the request
// says PolicyDefer, else skipped with the reason.
func (l *Ledger) admit(ctx context.Context, req SendRequest, d Delivery, addr string) (Delivery, bool, error) {
	held := false
	var lost *SendError
	err := pgx.BeginFunc(ctx, l.Pool, func(tx pgx.Tx) error {
		if req.Class == Marketing && req.ProfileID != "" {
			dec, err := checkPolicy(ctx, tx, req, d.ID)
			if err != nil {
				return err
			}
			if dec.Reason != "" {
				held = true
				var out Delivery
				if req.OnPolicy == PolicyDefer {
					out, err = scanDelivery(tx.QueryRow(ctx, `
						UPDATE deliveries SET deferred_until = $4, reason = $5, template_id = coalesce($6::uuid, template_id), updated_at = now()
						WHERE workspace_id = $1 AND id = $2 AND attempts = $3 AND status = 'claimed' AND NOT in_flight RETURNING `+deliveryCols,
						req.WorkspaceID, d.ID, d.Attempts, dec.Until, dec.Reason, nullIfEmpty(d.TemplateID)))
				} else {
					out, err = scanDelivery(tx.QueryRow(ctx, `
						UPDATE deliveries SET status = 'skipped', reason = $4, deferred_until = NULL, address_hash = $5,
							template_id = coalesce($6::uuid, template_id), updated_at = now()
						WHERE workspace_id = $1 AND id = $2 AND attempts = $3 AND status = 'claimed' AND NOT in_flight RETURNING `+deliveryCols,
						req.WorkspaceID, d.ID, d.Attempts, dec.Reason, l.Settings.AddressHash(req.WorkspaceID, addr), nullIfEmpty(d.TemplateID)))
				}
				if errors.Is(err, ErrNotFound) {
					lost = &SendError{NotSent: true, Reason: "another attempt took over this delivery"}
					return nil
				}
				d = out
				return err
			}
		}
		tag, err := tx.Exec(ctx, `
			UPDATE deliveries SET in_flight = true, address_hash = $4, template_id = $5, deferred_until = NULL, updated_at = now()
			WHERE workspace_id = $1 AND id = $2 AND attempts = $3 AND status = 'claimed' AND NOT in_flight`,
			req.WorkspaceID, d.ID, d.Attempts, l.Settings.AddressHash(req.WorkspaceID, addr), nullIfEmpty(d.TemplateID))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			lost = &SendError{NotSent: true, Reason: "another attempt took over this delivery"}
		}
		return nil
	})
	if err != nil {
		return d, false, fmt.Errorf("admit delivery %s: %w", d.ID, err)
	}
	if lost != nil {
		return d, false, lost
	}
	return d, held, nil
}

// checkPolicy decides a marketing send to a profile: the caps count the
// profile's marketing deliveries on the channel that were sent, may have
// been sent (unknown), or are being sent (claimed in flight), by the time
// they were sent (or last touched).
func checkPolicy(ctx context.Context, tx pgx.Tx, req SendRequest, deliveryID string) (policyDecision, error) {
	pol, err := loadPolicy(ctx, tx, req.WorkspaceID)
	if err != nil {
		return policyDecision{}, err
	}
	caps, quiet := pol.rulesFor(req.Channel)
	if len(caps) == 0 && quiet == nil {
		return policyDecision{}, nil
	}
	now := policyNow(req.Now)
	var tz string
	if quiet != nil {
		err := tx.QueryRow(ctx, `SELECT coalesce(traits->>'timezone', '') FROM profiles WHERE workspace_id = $1 AND id = $2`,
			req.WorkspaceID, req.ProfileID).Scan(&tz)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return policyDecision{}, fmt.Errorf("load time zone of %s: %w", req.ProfileID, err)
		}
	}
	var sent []time.Time
	if len(caps) > 0 {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`,
			sendLockClass, req.WorkspaceID+"/"+req.ProfileID+"/"+req.Channel); err != nil {
			return policyDecision{}, fmt.Errorf("lock sends to %s: %w", req.ProfileID, err)
		}
		longest := time.Duration(0)
		for _, c := range caps {
			longest = max(longest, c.per)
		}
		rows, err := tx.Query(ctx, `
			SELECT coalesce(sent_at, updated_at) AS at FROM deliveries
			WHERE workspace_id = $1 AND profile_id = $2 AND channel = $3 AND class = 'marketing' AND id <> $4
			  AND (status IN ('sent', 'unknown') OR (status = 'claimed' AND in_flight))
			  AND coalesce(sent_at, updated_at) > $5
			ORDER BY at`, req.WorkspaceID, req.ProfileID, req.Channel, deliveryID, now.Add(-longest))
		if err != nil {
			return policyDecision{}, fmt.Errorf("count deliveries to %s: %w", req.ProfileID, err)
		}
		if sent, err = pgx.CollectRows(rows, pgx.RowTo[time.Time]); err != nil {
			return policyDecision{}, fmt.Errorf("count deliveries to %s: %w", req.ProfileID, err)
		}
	}
	return decide(now, pol.zone(tz), caps, quiet, sent), nil
}

// links are the signed links a message offers: one-click unsubscribe and
// the preference page. Empty without a public URL or a secret key.
type links struct {
	unsubscribe, preferences string
}

func (l *Ledger) linksFor(req SendRequest, deliveryID string) links {
	var out links
	if l.PublicURL == "" || l.Settings == nil || l.Settings.box == nil {
		return out
	}
	base := strings.TrimRight(l.PublicURL, "/")
	tok := l.Settings.box.SignUnsubscribe(UnsubscribeToken{WorkspaceID: req.WorkspaceID, ProfileID: req.ProfileID, DeliveryID: deliveryID, Channel: req.Channel})
	out.unsubscribe = base + "/v1/unsubscribe?token=" + url.QueryEscape(tok)
	if req.ProfileID != "" {
		tok := l.Settings.box.SignPreferences(PreferencesToken{WorkspaceID: req.WorkspaceID, ProfileID: req.ProfileID, Channel: req.Channel})
		out.preferences = base + "/v1/preferences?token=" + url.QueryEscape(tok)
	}
	return out
}

// Withdraw gives up a send that a policy deferred, when the journey run
// that waited for it ended first (an exit, the goal): the delivery, still
// claimed and not in flight, is recorded skipped with why. A delivery
// already decided is returned as it is.
func (l *Ledger) Withdraw(ctx context.Context, workspaceID, businessKey, why string) (Delivery, error) {
	d, err := scanDelivery(l.Pool.QueryRow(ctx, `
		UPDATE deliveries SET status = 'skipped', reason = $3, deferred_until = NULL, updated_at = now()
		WHERE workspace_id = $1 AND business_key = $2 AND status = 'claimed' AND NOT in_flight RETURNING `+deliveryCols,
		workspaceID, businessKey, "withdrawn: the journey run ended ("+why+") before the deferred send"))
	if errors.Is(err, ErrNotFound) {
		d, err = scanDelivery(l.Pool.QueryRow(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE workspace_id = $1 AND business_key = $2`,
			workspaceID, businessKey))
		if errors.Is(err, ErrNotFound) {
			return d, nil // nothing was claimed: nothing to withdraw
		}
	}
	if err != nil {
		return d, fmt.Errorf("withdraw delivery %s: %w", businessKey, err)
	}
	return d, nil
}

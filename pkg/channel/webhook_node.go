package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parcours/parcours/pkg/profile"
)

// prepareNodeWebhook builds a journey webhook node's call: the profile
// (identifiers and traits) posted to the node's URL, signed with the
// workspace's webhook secret when one is set. It is a data sync to a tool
// the workspace chose, not a message to the person, so consent does not
// apply; an erased profile is skipped.
func (l *Ledger) prepareNodeWebhook(ctx context.Context, req SendRequest, d *Delivery) (func(context.Context) (Result, error), string, error) {
	if err := CheckWebhookURL(req.URL); err != nil {
		return nil, "", permanent("webhook node URL: %v", err)
	}
	view, err := l.Profiles.Get(ctx, req.WorkspaceID, req.ProfileID)
	if errors.Is(err, profile.ErrNotFound) {
		return nil, "", &skipError{"profile not found (erased?)"}
	}
	if err != nil {
		return nil, "", err
	}
	_, secret, err := l.Settings.webhookWithSecret(ctx, req.WorkspaceID)
	if err != nil && !errors.Is(err, ErrNotConfigured) {
		return nil, "", err
	}
	identities := map[string][]string{}
	for _, id := range view.Identities {
		identities[id.Type] = append(identities[id.Type], id.Value)
	}
	body, err := json.Marshal(map[string]any{
		"type": "journey_webhook", "delivery_id": d.ID, "workspace_id": req.WorkspaceID,
		"journey_id": req.JourneyID, "node_id": req.NodeID,
		"profile": map[string]any{"id": view.ID, "identities": identities, "traits": view.Traits},
	})
	if err != nil {
		return nil, "", fmt.Errorf("encode webhook body: %w", err)
	}
	return func(ctx context.Context) (Result, error) {
		return l.Webhook.Post(ctx, req.URL, secret, d.ID, body)
	}, req.URL, nil
}

package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parcours/parcours/pkg/addrhash"
)

// Errors of the store.
var (
	ErrNotConfigured = errors.New("channel not configured")
	ErrNotFound      = errors.New("not found")
)

// FieldError names a wrong input field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Message classes and subscription purposes.
const (
	Marketing     = "marketing"
	Transactional = "transactional"
)

// Channels.
const (
	ChannelEmail   = "email"
	ChannelWebhook = "webhook"
)

// EmailSettings is a workspace's email channel, without its API key.
type EmailSettings struct {
	FromEmail string `json:"from_email"`
	FromName  string `json:"from_name"`
	BaseURL   string `json:"base_url,omitempty"`
	APIKeySet bool   `json:"api_key_set"`
	// EventWebhookConfigured says whether a public key to verify SendGrid's
	// signed Event Webhook is stored.
	EventWebhookConfigured bool      `json:"event_webhook_configured"`
	UpdatedAt              time.Time `json:"updated_at"`
}

// WebhookSettings is a workspace's webhook channel, without its secret.
type WebhookSettings struct {
	URL              string    `json:"url"`
	SigningSecretSet bool      `json:"signing_secret_set"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// Store keeps channel settings (secrets sealed by Box) and consent.
type Store struct {
	pool *pgxpool.Pool
	box  *Box
	// hashes keys the address hashes of suppressions, deliveries, delivery
	// events and the consent log: the box's, else the unkeyed fallback.
	hashes *addrhash.Hasher
	// providerHosts are the hosts provider base URLs may name
	// (AllowProviderHosts, provider.go).
	providerHosts []string
}

// NewStore returns a Store; box seals and opens secrets and keys address
// hashes (nil: no secrets, and hashes keyed by the workspace id alone, see
// pkg/addrhash). Provider base URLs may name DefaultProviderHosts until
// AllowProviderHosts says otherwise.
func NewStore(pool *pgxpool.Pool, box *Box) *Store {
	hashes := addrhash.New(nil)
	if box != nil {
		hashes = box.Hashes()
	}
	return &Store{pool: pool, box: box, hashes: hashes, providerHosts: DefaultProviderHosts()}
}

// Box returns the store's secret box (it also signs unsubscribe links).
func (s *Store) Box() *Box { return s.box }

// Hashes returns the hasher of the store's address hashes.
func (s *Store) Hashes() *addrhash.Hasher { return s.hashes }

// AddressHash is how an address is kept in suppressions, on deliveries and
// delivery events, in broadcasts and the consent log: its keyed hash in the
// workspace (addrhash.Hasher.Address).
func (s *Store) AddressHash(workspaceID, address string) []byte {
	return s.hashes.Address(workspaceID, address)
}

func aad(workspaceID, channel string) string { return workspaceID + "/" + channel }

// put saves config and, when secret is not empty, a new sealed secret. The
// stored config's keep keys survive unless config sets them.
func (s *Store) put(ctx context.Context, workspaceID, channel string, config any, secret string, keep ...string) (time.Time, bool, error) {
	cfg, err := json.Marshal(config)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("encode %s settings: %w", channel, err)
	}
	var sealed []byte
	if secret != "" {
		if s.box == nil {
			return time.Time{}, false, errors.New("no secret key configured (PARCOURS_SECRET_KEY)")
		}
		if sealed, err = s.box.Seal(secret, aad(workspaceID, channel)); err != nil {
			return time.Time{}, false, err
		}
	}
	var at time.Time
	var set bool
	err = s.pool.QueryRow(ctx, `
		INSERT INTO channel_settings (workspace_id, channel, config, secret_ciphertext) VALUES ($1, $2, $3, $4)
		ON CONFLICT (workspace_id, channel) DO UPDATE
		SET config = coalesce((SELECT jsonb_object_agg(k, v) FROM jsonb_each(channel_settings.config) AS x(k, v) WHERE k = ANY($5::text[])), '{}'::jsonb) || EXCLUDED.config,
			secret_ciphertext = coalesce(EXCLUDED.secret_ciphertext, channel_settings.secret_ciphertext), updated_at = now()
		RETURNING updated_at, secret_ciphertext IS NOT NULL`, workspaceID, channel, cfg, sealed, keep).Scan(&at, &set)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("save %s settings: %w", channel, err)
	}
	return at, set, nil
}

// load reads config into dst and opens the secret ("" when none is set).
func (s *Store) load(ctx context.Context, workspaceID, channel string, dst any) (string, time.Time, bool, error) {
	var cfg, sealed []byte
	var at time.Time
	err := s.pool.QueryRow(ctx, `SELECT config, secret_ciphertext, updated_at FROM channel_settings WHERE workspace_id = $1 AND channel = $2`,
		workspaceID, channel).Scan(&cfg, &sealed, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", at, false, ErrNotConfigured
	}
	if err != nil {
		return "", at, false, fmt.Errorf("load %s settings: %w", channel, err)
	}
	if err := json.Unmarshal(cfg, dst); err != nil {
		return "", at, false, fmt.Errorf("decode %s settings: %w", channel, err)
	}
	return string(sealed), at, sealed != nil, nil
}

func (s *Store) open(workspaceID, channel, sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	if s.box == nil {
		return "", errors.New("no secret key configured (PARCOURS_SECRET_KEY)")
	}
	return s.box.Open([]byte(sealed), aad(workspaceID, channel))
}

type emailConfig struct {
	FromEmail string `json:"from_email"`
	FromName  string `json:"from_name"`
	BaseURL   string `json:"base_url,omitempty"`
	// EventWebhookPublicKey verifies SendGrid's signed Event Webhook: base64
	// DER of an ECDSA public key, as SendGrid shows it. Not a secret.
	EventWebhookPublicKey string `json:"event_webhook_public_key,omitempty"`
}

func (c emailConfig) settings(set bool, at time.Time) EmailSettings {
	return EmailSettings{FromEmail: c.FromEmail, FromName: c.FromName, BaseURL: c.BaseURL, APIKeySet: set,
		EventWebhookConfigured: c.EventWebhookPublicKey != "", UpdatedAt: at}
}

// EmailInput is a new configuration of the email channel.
type EmailInput struct {
	// APIKey "" keeps the key already stored; the first configuration needs one.
	APIKey, FromEmail, FromName, BaseURL string
	// EventWebhookPublicKey nil keeps the stored key, "" removes it.
	EventWebhookPublicKey *string
}

// PutEmail validates and saves the email channel. apiKey "" keeps the key
// already stored; the first configuration needs one. The event webhook's
// public key is kept.
func (s *Store) PutEmail(ctx context.Context, workspaceID, apiKey, fromEmail, fromName, baseURL string) (EmailSettings, error) {
	return s.PutEmailSettings(ctx, workspaceID, EmailInput{APIKey: apiKey, FromEmail: fromEmail, FromName: fromName, BaseURL: baseURL})
}

// PutEmailSettings validates and saves the email channel.
func (s *Store) PutEmailSettings(ctx context.Context, workspaceID string, in EmailInput) (EmailSettings, error) {
	apiKey, fromEmail, fromName, baseURL := in.APIKey, in.FromEmail, in.FromName, in.BaseURL
	if a, err := mail.ParseAddress(fromEmail); err != nil || a.Address != fromEmail {
		return EmailSettings{}, &FieldError{"from_email", "must be a bare email address such as news@example.com"}
	}
	if len(fromName) > 100 {
		return EmailSettings{}, &FieldError{"from_name", "must be at most 100 characters"}
	}
	if err := s.checkProviderURL(baseURL); err != nil {
		return EmailSettings{}, &FieldError{"base_url", err.Error()}
	}
	// What is wrong with the input itself is said before what the stored
	// settings require (the key again, below).
	if k := in.EventWebhookPublicKey; k != nil && *k != "" {
		if _, err := ParseEventWebhookKey(*k); err != nil {
			return EmailSettings{}, &FieldError{"event_webhook_public_key", err.Error()}
		}
	}
	if apiKey == "" {
		var cur emailConfig
		if _, _, set, err := s.load(ctx, workspaceID, ChannelEmail, &cur); errors.Is(err, ErrNotConfigured) || (err == nil && !set) {
			return EmailSettings{}, &FieldError{"api_key", "is required to configure the channel (it is kept encrypted and never shown again)"}
		} else if err != nil {
			return EmailSettings{}, err
		} else if normalURL(cur.BaseURL, DefaultSendGridURL) != normalURL(baseURL, DefaultSendGridURL) {
			// The key was entered for the stored host: whoever changes
			// the URL proves they know it by typing it again.
			return EmailSettings{}, &FieldError{"api_key", "enter the API key again: the provider URL changed, and a stored key is never sent to a new host"}
		}
	}
	cfg := emailConfig{FromEmail: fromEmail, FromName: fromName, BaseURL: baseURL}
	var keep []string
	if in.EventWebhookPublicKey == nil {
		keep = []string{"event_webhook_public_key"}
	} else if *in.EventWebhookPublicKey != "" {
		cfg.EventWebhookPublicKey = strings.TrimSpace(*in.EventWebhookPublicKey)
	}
	at, set, err := s.put(ctx, workspaceID, ChannelEmail, cfg, apiKey, keep...)
	if err != nil {
		return EmailSettings{}, err
	}
	if in.EventWebhookPublicKey == nil {
		// Report the key the database kept.
		return s.Email(ctx, workspaceID)
	}
	return cfg.settings(set, at), nil
}

// Email returns the email channel's settings, without the key.
func (s *Store) Email(ctx context.Context, workspaceID string) (EmailSettings, error) {
	var c emailConfig
	_, at, set, err := s.load(ctx, workspaceID, ChannelEmail, &c)
	if err != nil {
		return EmailSettings{}, err
	}
	return c.settings(set, at), nil
}

// emailWithKey returns the settings and the decrypted API key, for sending:
// a permanent *SendError when the stored base URL's host is no longer
// allowed, so that the key is not sent there.
func (s *Store) emailWithKey(ctx context.Context, workspaceID string) (EmailSettings, string, error) {
	var c emailConfig
	sealed, at, set, err := s.load(ctx, workspaceID, ChannelEmail, &c)
	if err != nil {
		return EmailSettings{}, "", err
	}
	if err := s.providerURLRefused(ChannelEmail, c.BaseURL); err != nil {
		return EmailSettings{}, "", err
	}
	key, err := s.open(workspaceID, ChannelEmail, sealed)
	if err != nil {
		return EmailSettings{}, "", err
	}
	return c.settings(set, at), key, nil
}

type webhookConfig struct {
	URL string `json:"url"`
}

// PutWebhook validates and saves the webhook channel. secret "" keeps the
// secret already stored; the first configuration needs one.
func (s *Store) PutWebhook(ctx context.Context, workspaceID, rawURL, secret string) (WebhookSettings, error) {
	if err := CheckWebhookURL(rawURL); err != nil {
		return WebhookSettings{}, &FieldError{"url", err.Error()}
	}
	if secret != "" && len(secret) < 16 {
		return WebhookSettings{}, &FieldError{"signing_secret", "must be at least 16 characters"}
	}
	if secret == "" {
		var cur webhookConfig
		if _, _, set, err := s.load(ctx, workspaceID, ChannelWebhook, &cur); errors.Is(err, ErrNotConfigured) || (err == nil && !set) {
			return WebhookSettings{}, &FieldError{"signing_secret", "is required to configure the channel (at least 16 characters; kept encrypted and never shown again)"}
		} else if err != nil {
			return WebhookSettings{}, err
		}
	}
	at, set, err := s.put(ctx, workspaceID, ChannelWebhook, webhookConfig{rawURL}, secret)
	if err != nil {
		return WebhookSettings{}, err
	}
	return WebhookSettings{URL: rawURL, SigningSecretSet: set, UpdatedAt: at}, nil
}

// Webhook returns the webhook channel's settings, without the secret.
func (s *Store) Webhook(ctx context.Context, workspaceID string) (WebhookSettings, error) {
	var c webhookConfig
	_, at, set, err := s.load(ctx, workspaceID, ChannelWebhook, &c)
	if err != nil {
		return WebhookSettings{}, err
	}
	return WebhookSettings{URL: c.URL, SigningSecretSet: set, UpdatedAt: at}, nil
}

func (s *Store) webhookWithSecret(ctx context.Context, workspaceID string) (WebhookSettings, string, error) {
	var c webhookConfig
	sealed, at, set, err := s.load(ctx, workspaceID, ChannelWebhook, &c)
	if err != nil {
		return WebhookSettings{}, "", err
	}
	secret, err := s.open(workspaceID, ChannelWebhook, sealed)
	if err != nil {
		return WebhookSettings{}, "", err
	}
	return WebhookSettings{URL: c.URL, SigningSecretSet: set, UpdatedAt: at}, secret, nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return errors.New("must be an http or https URL without credentials")
	}
	return nil
}

// Subscription is a profile's consent for one channel and purpose.
type Subscription struct {
	ProfileID string    `json:"profile_id"`
	Channel   string    `json:"channel"`
	Purpose   string    `json:"purpose"`
	Status    string    `json:"status"`
	Source    string    `json:"source"`
	UpdatedAt time.Time `json:"updated_at,omitzero"` // absent for the default (no record)
}

// SetSubscription records consent. source says who changed it (api,
// unsubscribe link, ...).
func (s *Store) SetSubscription(ctx context.Context, workspaceID string, sub Subscription) (Subscription, error) {
	switch {
	case sub.Channel != ChannelEmail && sub.Channel != ChannelWebhook && sub.Channel != ChannelSMS:
		return sub, &FieldError{"channel", "must be email, sms or webhook"}
	case sub.Purpose != Marketing && sub.Purpose != Transactional:
		return sub, &FieldError{"purpose", "must be marketing or transactional"}
	case sub.Status != "subscribed" && sub.Status != "unsubscribed":
		return sub, &FieldError{"status", "must be subscribed or unsubscribed"}
	}
	err := s.pool.QueryRow(ctx, `
		INSERT INTO subscriptions (workspace_id, profile_id, channel, purpose, status, source) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (workspace_id, profile_id, channel, purpose) DO UPDATE
		SET status = EXCLUDED.status, source = EXCLUDED.source, updated_at = now()
		RETURNING updated_at`, workspaceID, sub.ProfileID, sub.Channel, sub.Purpose, sub.Status, sub.Source).Scan(&sub.UpdatedAt)
	if err != nil {
		return sub, fmt.Errorf("save subscription of %s: %w", sub.ProfileID, err)
	}
	return sub, nil
}

// Suppress records that an address must not be sent to. Its source, for
// the consent log, follows from the reason: an unsubscribe link, or an SMS
// recipient's STOP reported by Twilio.
func (s *Store) Suppress(ctx context.Context, workspaceID, channel string, addressHash []byte, reason string) error {
	source := map[string]string{"unsubscribe": SourceUnsubscribeLink, "opt_out": "twilio"}[reason]
	_, err := s.pool.Exec(ctx, `INSERT INTO suppressions (workspace_id, channel, address_hash, reason, source) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
		workspaceID, channel, addressHash, reason, source)
	if err != nil {
		return fmt.Errorf("suppress address: %w", err)
	}
	return nil
}

// Unsubscribe applies a verified one-click unsubscribe: the profile is
// unsubscribed from marketing on the channel, and the address the message
// went to is suppressed for marketing.
func (s *Store) Unsubscribe(ctx context.Context, t UnsubscribeToken) error {
	if t.ProfileID != "" {
		if _, err := s.SetSubscription(ctx, t.WorkspaceID, Subscription{ProfileID: t.ProfileID, Channel: t.Channel, Purpose: Marketing, Status: "unsubscribed", Source: "unsubscribe_link"}); err != nil {
			return err
		}
	}
	var hash []byte
	err := s.pool.QueryRow(ctx, `SELECT address_hash FROM deliveries WHERE workspace_id = $1 AND id = $2`, t.WorkspaceID, t.DeliveryID).Scan(&hash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("load delivery %s: %w", t.DeliveryID, err)
	}
	if hash != nil {
		return s.Suppress(ctx, t.WorkspaceID, t.Channel, hash, "unsubscribe")
	}
	return nil
}

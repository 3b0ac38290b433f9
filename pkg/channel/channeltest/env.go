package channeltest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/template"
	"github.com/parcours/parcours/pkg/workspace"
)

// APIKey is the SendGrid key Env configures.
const APIKey = "SG.test-key"

// Env is a migrated database with a workspace whose email channel points at
// a fake SendGrid, and a ledger over it.
type Env struct {
	Pool        *pgxpool.Pool
	WorkspaceID string
	SendGrid    *SendGrid
	Ledger      *channel.Ledger
}

// FakeHosts are the provider hosts a test's store allows: the providers'
// public hosts and 127.0.0.1, where the fakes listen
// (PARCOURS_PROVIDER_URL_ALLOW of a test).
func FakeHosts() []string { return append(channel.DefaultProviderHosts(), "127.0.0.1") }

// NewEnv builds an Env. Outbound calls may reach 127.0.0.1 only.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	ws, _, _, err := workspace.NewStore(pool).Bootstrap(ctx, "default", "Default workspace")
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, channel.KeySize)
	rand.Read(key)
	box, err := channel.NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	fake := NewSendGrid(t, APIKey)
	allow := []string{"127.0.0.1"}
	l := &channel.Ledger{
		Pool: pool, Settings: channel.NewStore(pool, box).AllowProviderHosts(FakeHosts()...), Templates: template.NewStore(pool), Profiles: profile.NewStore(pool),
		SendGrid: channel.NewSendGrid(allow), Webhook: channel.NewWebhook(allow), PublicURL: "https://parcours.example.com",
		Twilio: channel.NewTwilio(allow),
	}
	if _, err := l.Settings.PutEmail(ctx, ws.ID, APIKey, "news@shop.example", "The Shop", fake.URL); err != nil {
		t.Fatal(err)
	}
	return &Env{Pool: pool, WorkspaceID: ws.ID, SendGrid: fake, Ledger: l}
}

// Profile inserts a profile with traits and, if email is set, its email identity.
func (e *Env) Profile(t testing.TB, email string, traits map[string]any) string {
	t.Helper()
	ctx := context.Background()
	id := uuid.NewString()
	raw, _ := json.Marshal(traits)
	if _, err := e.Pool.Exec(ctx, `INSERT INTO profiles (workspace_id, id, traits, state) VALUES ($1, $2, $3, 'known')`, e.WorkspaceID, id, raw); err != nil {
		t.Fatal(err)
	}
	if email != "" {
		if _, err := e.Pool.Exec(ctx, `INSERT INTO identities (workspace_id, type, value, profile_id, origin_profile_id, source) VALUES ($1, 'email', $2, $3, $3, 'test')`, e.WorkspaceID, email, id); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// Template saves an email template.
func (e *Env) Template(t testing.TB, slug, subject, html, text string) template.Template {
	t.Helper()
	tpl, err := e.Ledger.Templates.Create(context.Background(), e.WorkspaceID, template.Template{Slug: slug, Name: slug, Channel: "email", Subject: subject, HTML: html, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

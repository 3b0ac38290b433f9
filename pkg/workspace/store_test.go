package workspace_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/workspace"
)

func TestBootstrapCreatesWorkspaceAndKeysOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := workspace.NewStore(pgtest.NewPool(t))

	// Several processes starting at once must end with one workspace and one set of keys.
	var wg sync.WaitGroup
	results := make([]struct {
		ws      workspace.Workspace
		keys    []workspace.NewKey
		created bool
		err     error
	}, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			r.ws, r.keys, r.created, r.err = s.Bootstrap(ctx, "default", "Default workspace")
		}()
	}
	wg.Wait()
	createdCount := 0
	var keys []workspace.NewKey
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("bootstrap: %v", r.err)
		}
		if r.ws.ID != results[0].ws.ID {
			t.Fatalf("bootstrap returned two workspaces: %s and %s", r.ws.ID, results[0].ws.ID)
		}
		if r.created {
			createdCount++
			keys = r.keys
		}
	}
	if createdCount != 1 {
		t.Fatalf("workspace created %d times, want 1", createdCount)
	}
	if len(keys) != 2 || keys[0].Scope != workspace.ScopeAdmin || keys[1].Scope != workspace.ScopeWrite || keys[1].Source != "web" {
		t.Fatalf("first keys = %+v, want one admin key and one write key for source web", keys)
	}
	stored, err := s.ListKeys(ctx, results[0].ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 {
		t.Fatalf("stored %d keys, want 2", len(stored))
	}
	for _, k := range keys {
		got, err := s.Authenticate(ctx, k.Secret)
		if err != nil {
			t.Fatalf("authenticate %s key: %v", k.Scope, err)
		}
		if got.WorkspaceID != results[0].ws.ID || got.Scope != k.Scope {
			t.Fatalf("authenticated as %+v, want workspace %s scope %s", got, results[0].ws.ID, k.Scope)
		}
	}
}

func TestSecretsAreStoredHashedOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	s := workspace.NewStore(pool)
	ws, err := s.Create(ctx, "acme", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.CreateKey(ctx, ws.ID, workspace.KeySpec{Name: "shop", Scope: workspace.ScopeWrite, Source: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.Secret, "pcs_write_") || len(k.Secret) != len("pcs_write_")+32 {
		t.Fatalf("secret %q has not the documented shape pcs_write_<32 chars>", k.Secret)
	}
	var row string
	if err := pool.QueryRow(ctx, `SELECT row_to_json(k)::text FROM api_keys k WHERE id = $1`, k.ID).Scan(&row); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(row, k.Secret) || strings.Contains(row, k.Secret[10:]) {
		t.Fatalf("the secret is stored in clear: %s", row)
	}
}

func TestAuthenticateRejectsUnknownAndRevokedKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := workspace.NewStore(pgtest.NewPool(t))
	ws, err := s.Create(ctx, "acme", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.CreateKey(ctx, ws.ID, workspace.KeySpec{Name: "ops", Scope: workspace.ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "nope", "pcs_admin_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", k.Secret + "x"} {
		if _, err := s.Authenticate(ctx, bad); !errors.Is(err, workspace.ErrInvalidKey) {
			t.Errorf("Authenticate(%q) = %v, want ErrInvalidKey", bad, err)
		}
	}
	if _, err := s.RevokeKey(ctx, ws.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, k.Secret); !errors.Is(err, workspace.ErrRevokedKey) {
		t.Fatalf("revoked key authenticated: %v", err)
	}
}

func TestKeysAreScopedToTheirWorkspace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := workspace.NewStore(pgtest.NewPool(t))
	a, err := s.Create(ctx, "a", "A")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Create(ctx, "b", "B")
	if err != nil {
		t.Fatal(err)
	}
	ka, err := s.CreateKey(ctx, a.ID, workspace.KeySpec{Name: "a admin", Scope: workspace.ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	// Workspace b cannot revoke or list workspace a's key.
	if _, err := s.RevokeKey(ctx, b.ID, ka.ID); !errors.Is(err, workspace.ErrNotFound) {
		t.Fatalf("revoking another workspace's key: %v, want ErrNotFound", err)
	}
	keys, err := s.ListKeys(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("workspace b sees %d keys of workspace a", len(keys))
	}
	if _, err := s.Authenticate(ctx, ka.Secret); err != nil {
		t.Fatalf("key still works after a foreign revoke attempt: %v", err)
	}
}

func TestKeySpecValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		spec  workspace.KeySpec
		field string
	}{
		{"ok write", workspace.KeySpec{Name: "web", Scope: workspace.ScopeWrite, Source: "web"}, ""},
		{"ok admin", workspace.KeySpec{Name: "ops", Scope: workspace.ScopeAdmin}, ""},
		{"no name", workspace.KeySpec{Scope: workspace.ScopeAdmin}, "name"},
		{"bad scope", workspace.KeySpec{Name: "x", Scope: "root"}, "scope"},
		{"write without source", workspace.KeySpec{Name: "x", Scope: workspace.ScopeWrite}, "source"},
		{"write with bad source", workspace.KeySpec{Name: "x", Scope: workspace.ScopeWrite, Source: "Call Centre"}, "source"},
		{"admin with source", workspace.KeySpec{Name: "x", Scope: workspace.ScopeAdmin, Source: "web"}, "source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.spec.Validate()
			var fe *workspace.FieldError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field):
				t.Fatalf("error %v, want a field error on %q", err, tt.field)
			}
		})
	}
}

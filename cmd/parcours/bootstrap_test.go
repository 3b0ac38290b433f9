package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/workspace"
)

// TestBootstrapPrintsFirstKeysOnce: `parcours bootstrap` gives an api/worker
// deployment its first workspace and keys, printed once as lines a shell can
// source; the keys authenticate with their scopes; a second run creates
// nothing and prints no secret.
func TestBootstrapPrintsFirstKeysOnce(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	getenv := func(k string) string {
		if k == "DATABASE_URL" {
			return dbURL
		}
		return ""
	}
	ctx := context.Background()
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"bootstrap", "--workspace", "acme", "--name", "Acme"}, &out, &errOut, getenv); err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, errOut.String())
	}
	vals := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			vals[k] = v
		}
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := workspace.NewStore(pool)
	ws, err := store.BySlug(ctx, "acme")
	if err != nil || ws.ID != vals["PARCOURS_WORKSPACE_ID"] || ws.Name != "Acme" {
		t.Fatalf("workspace %+v (%v); printed:\n%s", ws, err, out.String())
	}
	for name, scope := range map[string]workspace.Scope{"PARCOURS_ADMIN_KEY": workspace.ScopeAdmin, "PARCOURS_WRITE_KEY": workspace.ScopeWrite} {
		k, err := store.Authenticate(ctx, vals[name])
		if err != nil || k.Scope != scope || k.WorkspaceID != ws.ID {
			t.Errorf("%s does not authenticate as a %s key of acme: %+v %v", name, scope, k, err)
		}
	}

	out.Reset()
	if err := run(ctx, []string{"bootstrap", "--workspace", "acme"}, &out, &errOut, getenv); err != nil {
		t.Fatalf("second bootstrap: %v", err)
	}
	if strings.Contains(out.String(), "pcs_") || !strings.Contains(out.String(), "already exists") ||
		!strings.Contains(out.String(), "PARCOURS_WORKSPACE_ID="+ws.ID) {
		t.Errorf("second bootstrap printed:\n%s", out.String())
	}
}

package migrations_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/parcours/parcours/migrations"
	"github.com/parcours/parcours/pkg/pgtest"
)

// Every migration must roll back cleanly and re-apply: that is what makes
// `parcours migrate down` safe during a bad deploy.
func TestMigrationsGoDownAndUpAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t) // already migrated up
	m, err := migrations.Open(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	st, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) == 0 {
		t.Fatal("no migrations found")
	}
	for _, s := range st {
		if s.AppliedAt.IsZero() {
			t.Fatalf("%s not applied after Up", s.Source.Path)
		}
	}
	for range st {
		if _, err := m.Down(ctx); err != nil {
			t.Fatalf("down: %v", err)
		}
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var tables int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'goose_db_version'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("%d tables left after rolling everything back", tables)
	}
	res, err := m.Up(ctx)
	if err != nil {
		t.Fatalf("up again: %v", err)
	}
	if len(res) != len(st) {
		t.Fatalf("re-applied %d migrations, want %d", len(res), len(st))
	}
	// Up when up to date is a no-op.
	if res, err := m.Up(ctx); err != nil || len(res) != 0 {
		t.Fatalf("second Up applied %d, err %v", len(res), err)
	}
}

// Every table with customer data carries workspace_id (tenancy rule).
func TestEveryTableIsScopedByWorkspace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `
		SELECT t.tablename FROM pg_tables t
		WHERE t.schemaname = 'public'
		  AND t.tablename NOT IN ('goose_db_version', 'workspaces')
		  AND NOT EXISTS (SELECT 1 FROM information_schema.columns c
		                  WHERE c.table_schema = 'public' AND c.table_name = t.tablename AND c.column_name = 'workspace_id')`)
	if err != nil {
		t.Fatal(err)
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Fatalf("tables without workspace_id: %v", missing)
	}
}

// docs/operations.md tells operators to size the pool with pool_max_conns in
// DATABASE_URL; `parcours migrate up` reads the same URL and must not send
// that parameter to PostgreSQL, which refuses unknown settings.
func TestOpenAcceptsPoolParameters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	sep := "?"
	if strings.Contains(dbURL, "?") {
		sep = "&"
	}
	m, err := migrations.Open(dbURL + sep + "pool_max_conns=3&pool_min_conns=1")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Up(ctx); err != nil {
		t.Fatalf("migrate with pool parameters in the URL: %v", err)
	}
}

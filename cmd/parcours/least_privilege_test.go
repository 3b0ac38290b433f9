package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/server/temporaltest"

	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/workspace"
)

// ownerGrantsSQL returns the block of docs/operations.md that the schema
// owner runs, so that the test runs what the guide tells operators to run.
func ownerGrantsSQL(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "-- in the parcours database, as parcours_owner"
	_, rest, ok := strings.Cut(string(doc), "```sql\n"+marker)
	rest = marker + rest
	if !ok {
		t.Fatalf("docs/operations.md lacks the block starting %q", marker)
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("docs/operations.md: the owner's SQL block is not closed")
	}
	return block
}

// The least-privilege setup of docs/operations.md works: migrations run as
// the owner after the documented grants, `parcours api` then serves
// ingestion (identity resolution and a merge) as a role that owns nothing,
// and that role can write every table and alter none.
func TestLeastPrivilegeRoles(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: runs the api process")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	admin, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var canCreate bool
	if err := admin.QueryRow(ctx, `SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user`).Scan(&canCreate); err != nil || !canCreate {
		t.Skipf("the test role may not create roles (%v): least-privilege setup not checked", err)
	}
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	suffix := hex.EncodeToString(b)
	owner, app, db := "parcours_test_owner_"+suffix, "parcours_test_app_"+suffix, "parcours_test_lp_"+suffix
	for _, q := range []string{
		"CREATE ROLE " + owner + " LOGIN",
		"CREATE ROLE " + app + " LOGIN",
		"CREATE DATABASE " + db + " OWNER " + owner,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, pgtest.AdminURL())
		if err != nil {
			t.Logf("drop %s, %s, %s: %v", db, owner, app, err)
			return
		}
		defer c.Close(ctx)
		// The database first: it holds the grants that name the roles.
		for _, q := range []string{"DROP DATABASE IF EXISTS " + db + " WITH (FORCE)", "DROP ROLE IF EXISTS " + app, "DROP ROLE IF EXISTS " + owner} {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Logf("%s: %v", q, err)
			}
		}
	})
	as := func(role string) string {
		u := mustParseURL(t, pgtest.AdminURL())
		u.User = url.User(role)
		u.Path = "/" + db
		return u.String()
	}
	ownerConn, err := pgx.Connect(ctx, as(owner))
	if err != nil {
		t.Skipf("cannot log in as a new role without a password on this server (%v): least-privilege setup not checked", err)
	}
	grants := strings.NewReplacer("parcours_owner", owner, "parcours_app", app).Replace(ownerGrantsSQL(t))
	if _, err := ownerConn.Exec(ctx, grants); err != nil {
		t.Fatalf("the owner's grants from docs/operations.md fail: %v\n%s", err, grants)
	}
	ownerConn.Close(ctx)

	// `parcours migrate up` as the owner.
	var out strings.Builder
	if err := run(ctx, []string{"migrate", "up"}, &out, io.Discard, func(k string) string {
		return map[string]string{"DATABASE_URL": as(owner)}[k]
	}); err != nil {
		t.Fatalf("migrate up as the owner: %v\n%s", err, out.String())
	}

	// Every table of the new database is readable and writable by the app
	// role, which owns none.
	adminURL := mustParseURL(t, pgtest.AdminURL())
	adminURL.Path = "/" + db
	inDB, err := pgx.Connect(ctx, adminURL.String())
	if err != nil {
		t.Fatal(err)
	}
	defer inDB.Close(context.Background())
	var tables int
	if err := inDB.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil || tables < 10 {
		t.Fatalf("the migrated database has %d tables (%v)", tables, err)
	}
	var missing []string
	rows, err := inDB.Query(ctx, fmt.Sprintf(`SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'goose_db_version'
		AND NOT (has_table_privilege('%[1]s', c.oid, 'SELECT') AND has_table_privilege('%[1]s', c.oid, 'INSERT')
		     AND has_table_privilege('%[1]s', c.oid, 'UPDATE') AND has_table_privilege('%[1]s', c.oid, 'DELETE'))`, app))
	if err == nil {
		missing, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || len(missing) > 0 {
		t.Fatalf("the app role lacks SELECT, INSERT, UPDATE or DELETE on %v (%v)", missing, err)
	}

	appPool, err := openPool(ctx, as(app))
	if err != nil {
		t.Fatal(err)
	}
	defer appPool.Close()
	_, keys, _, err := workspace.NewStore(appPool).Bootstrap(ctx, "least-privilege", "Least privilege")
	if err != nil || len(keys) != 2 {
		t.Fatalf("bootstrap a workspace as the app role: %v", err)
	}
	adminKey, writeKey := keys[0].Secret, keys[1].Secret

	// `parcours api` as the app role.
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	port := freePort(t)
	env := map[string]string{
		"DATABASE_URL":       as(app),
		"TEMPORAL_ADDRESS":   ts.GetFrontendHostPort(),
		"TEMPORAL_NAMESPACE": ts.GetDefaultNamespace(),
		"PARCOURS_HTTP_ADDR": fmt.Sprintf("127.0.0.1:%d", port),
	}
	procCtx, stop := context.WithCancel(ctx)
	defer stop()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(procCtx, []string{"api"}, logs, logs, func(k string) string { return env[k] }) }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("parcours api exited: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("parcours api not ready\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Two anonymous visitors turn out to be one person: identity
	// resolution merges their profiles.
	batch := `{"batch":[
		{"type":"page","anonymousId":"lp-a1","name":"Home","messageId":"lp-1"},
		{"type":"identify","anonymousId":"lp-a2","userId":"lp-u1","traits":{"email":"lp@example.com"},"messageId":"lp-2"},
		{"type":"track","anonymousId":"lp-a1","userId":"lp-u1","event":"Order Completed","messageId":"lp-3"}]}`
	req, _ := http.NewRequest("POST", base+"/v1/batch", strings.NewReader(batch))
	req.SetBasicAuth(writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	var ingested struct {
		Accepted int `json:"accepted"`
	}
	if code, body := doJSON(t, req, &ingested); code != 200 || ingested.Accepted != 3 {
		t.Fatalf("/v1/batch as the app role answered %d: %s\n%s", code, body, logs)
	}
	req, _ = http.NewRequest("GET", base+"/v1/profiles/lookup?email=lp@example.com", nil)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	var profile struct {
		Merges []json.RawMessage `json:"merges"`
	}
	if code, body := doJSON(t, req, &profile); code != 200 || len(profile.Merges) != 1 {
		t.Fatalf("profile lookup answered %d with %d merges: %s", code, len(profile.Merges), body)
	}

	// The app role cannot change the schema.
	for _, q := range []string{"ALTER TABLE events ADD COLUMN intruder int", "CREATE TABLE intruder (x int)", "DROP TABLE profiles"} {
		if _, err := appPool.Exec(ctx, q); err == nil || !(strings.Contains(err.Error(), "must be owner") || strings.Contains(err.Error(), "permission denied")) {
			t.Errorf("%s as the app role: %v; want a refusal", q, err)
		}
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("parcours api stopped with %v\n%s", err, logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("parcours api did not stop")
	}
}

// doJSON sends req and decodes a JSON answer into v.
func doJSON(t *testing.T, req *http.Request, v any) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(body, v)
	return resp.StatusCode, string(body)
}

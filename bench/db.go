package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parcours/parcours/migrations"
)

// database is a throwaway, migrated database for one run, on the server
// named by the admin URL, as pkg/pgtest makes them for tests.
type database struct {
	adminURL string
	name     string
	url      string
}

// newDatabase creates and migrates a database named parcours_bench_<random>.
// Call drop when done, whatever happened.
func newDatabase(ctx context.Context, adminURL string) (*database, error) {
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL at %s (set TEST_DATABASE_URL): %w", redact(adminURL), err)
	}
	defer admin.Close(context.Background())
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	db := &database{adminURL: adminURL, name: "parcours_bench_" + hex.EncodeToString(b)}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db.name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create database %s: %w", db.name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		_ = db.drop()
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	u.Path = "/" + db.name
	db.url = u.String()
	if err := migrations.Up(ctx, db.url); err != nil {
		_ = db.drop()
		return nil, fmt.Errorf("migrate %s: %w", db.name, err)
	}
	return db, nil
}

// drop removes the database, closing any connection still open on it. It
// uses its own context so that it still runs after the run was interrupted.
func (db *database) drop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, db.adminURL)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", db.name, err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db.name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", db.name, err)
	}
	return nil
}

// redact hides a password in a database URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// eventColumns are the columns of the events table that a record fills, in
// the order the baselines write them.
var eventColumns = []string{
	"workspace_id", "key_id", "source", "message_id", "type", "name", "anonymous_id", "user_id",
	"timestamp", "original_timestamp", "sent_at", "received_at", "properties", "traits", "context", "raw",
}

// Baseline tables. bench_plain_events is a plain heap with the event
// columns, no key, no index: the most PostgreSQL can write. The naive
// handler writes to a copy of events with its keys and indexes, so that its
// dedupe costs what Parcours' does.
const baselineSchema = `
CREATE TABLE bench_plain_events (
    workspace_id       uuid NOT NULL,
    key_id             uuid NOT NULL,
    source             text NOT NULL,
    message_id         text NOT NULL,
    type               text NOT NULL,
    name               text,
    anonymous_id       text,
    user_id            text,
    timestamp          timestamptz NOT NULL,
    original_timestamp timestamptz,
    sent_at            timestamptz,
    received_at        timestamptz NOT NULL,
    properties         jsonb NOT NULL,
    traits             jsonb NOT NULL,
    context            jsonb NOT NULL,
    raw                jsonb NOT NULL
);
CREATE TABLE bench_naive_events (LIKE events INCLUDING ALL);
`

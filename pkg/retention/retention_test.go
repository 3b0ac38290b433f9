package retention_test

import (
	"context"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/retention"
	"github.com/parcours/parcours/pkg/workspace"
)

// Old quarantined records, bad-row reasons and provider events go; young
// ones stay; an erased notice stays while a webhook waits for it.
func TestSweepDeletesOldRowsAndKeepsYoungOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	ws, keys, _, err := workspace.NewStore(pool).Bootstrap(ctx, "default", "Default")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	day := 24 * time.Hour
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	for _, r := range []struct {
		raw string
		age time.Duration
	}{{"old", 31 * day}, {"old too", 40 * day}, {"young", 29 * day}} {
		exec(`INSERT INTO rejected_records (workspace_id, source, key_id, received_at, field, reason, raw) VALUES ($1, 'web', $2, $3, 'timestamp', 'is not a time', $4)`,
			ws.ID, keys[1].ID, now.Add(-r.age), r.raw)
	}
	for _, im := range []struct {
		name string
		age  time.Duration
	}{{"old.csv", 31 * day}, {"young.csv", 29 * day}} {
		exec(`INSERT INTO imports (workspace_id, name, format, source, key_id, file_sha256, file_bytes, mapping, status, finished_at, bad_rows)
			VALUES ($1, $2, 'csv', 'crm', $3, 'x', 1, '{}', 'done', $4, '[{"line": 2, "field": "Phone", "reason": "\"ana@example.com\" is not a phone number"}]')`,
			ws.ID, im.name, keys[1].ID, now.Add(-im.age))
	}
	for i, age := range []time.Duration{91 * day, 89 * day, time.Hour} {
		exec(`INSERT INTO delivery_events (workspace_id, dedupe_key, event, at, received_at, raw) VALUES ($1, $2, 'delivered', $3, $3, '{}')`,
			ws.ID, "k"+string(rune('a'+i)), now.Add(-age))
	}
	exec(`INSERT INTO segments (workspace_id, id, slug, name, rule, deps) VALUES ($1, '00000000-0000-0000-0000-00000000005e', 'vip', 'VIP', 'true', '{}')`, ws.ID)
	exec(`INSERT INTO segment_webhooks (workspace_id, id, segment_id, url, kinds, secret_ciphertext) VALUES ($1, '00000000-0000-0000-0000-0000000000aa', '00000000-0000-0000-0000-00000000005e', 'https://hooks.example/x', '{entered}', '\x00')`, ws.ID)
	var queued int64
	if err := pool.QueryRow(ctx, `INSERT INTO segment_events (workspace_id, segment_id, profile_id, kind, at) VALUES ($1, '00000000-0000-0000-0000-00000000005e', gen_random_uuid(), 'erased', now()) RETURNING id`, ws.ID).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	exec(`INSERT INTO segment_webhook_outbox (workspace_id, webhook_id, event_id) VALUES ($1, '00000000-0000-0000-0000-0000000000aa', $2)`, ws.ID, queued)
	exec(`INSERT INTO segment_events (workspace_id, segment_id, profile_id, kind, at) VALUES ($1, '00000000-0000-0000-0000-00000000005e', gen_random_uuid(), 'erased', now())`, ws.ID)
	exec(`INSERT INTO segment_events (workspace_id, segment_id, profile_id, kind, at) VALUES ($1, '00000000-0000-0000-0000-00000000005e', gen_random_uuid(), 'entered', now())`, ws.ID)

	s := &retention.Sweeper{Pool: pool, Policy: retention.Policy{Quarantine: 30 * day, ProviderEvents: 90 * day}, BatchSize: 1}
	got, err := s.SweepOnce(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := (retention.Swept{Quarantined: 2, BadRows: 1, ProviderEvents: 1, Notices: 1}); got != want {
		t.Errorf("swept %+v, want %+v", got, want)
	}
	count := func(sql string) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, sql, ws.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	checks := []struct {
		what string
		sql  string
		want int
	}{
		{"the young quarantined record", `SELECT count(*) FROM rejected_records WHERE workspace_id = $1 AND raw = 'young'`, 1},
		{"quarantined records", `SELECT count(*) FROM rejected_records WHERE workspace_id = $1`, 1},
		{"the old import's bad row, without its reason", `SELECT count(*) FROM imports WHERE workspace_id = $1 AND name = 'old.csv' AND bad_rows = '[{"line": 2, "field": "Phone", "reason": "` + retention.ExpiredBadRow + `"}]'`, 1},
		{"the young import's bad row as it was", `SELECT count(*) FROM imports WHERE workspace_id = $1 AND name = 'young.csv' AND bad_rows::text LIKE '%ana@example.com%'`, 1},
		{"provider events", `SELECT count(*) FROM delivery_events WHERE workspace_id = $1`, 2},
		{"the notice a webhook waits for, and the entry", `SELECT count(*) FROM segment_events WHERE workspace_id = $1`, 2},
	}
	for _, c := range checks {
		if n := count(c.sql); n != c.want {
			t.Errorf("%s: %d rows, want %d", c.what, n, c.want)
		}
	}
	// Again: nothing more to do.
	if got, err := s.SweepOnce(ctx, now); err != nil || got != (retention.Swept{}) {
		t.Errorf("second sweep %+v %v, want nothing", got, err)
	}
	// 0 keeps everything.
	keep := &retention.Sweeper{Pool: pool}
	if got, err := keep.SweepOnce(ctx, now.Add(1000*day)); err != nil || got != (retention.Swept{}) {
		t.Errorf("sweep without a policy %+v %v, want nothing", got, err)
	}
}

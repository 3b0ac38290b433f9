package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parcours/parcours/api"
	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/template"
	"github.com/parcours/parcours/pkg/validation"
	"github.com/parcours/parcours/pkg/workspace"
)

// R14, pooled connections: two workspaces hammer the API at once through a
// pool of two PostgreSQL connections, so that every connection serves both
// in turn. No request relies on per-connection state for its workspace
// (no SET, no search_path, no row-level security: every query names its
// workspace_id); the one setting written on a connection, the consent
// audit's actor, is set_config(..., true), local to its transaction. This
// proves what that design promises: every answer belongs to the caller,
// even for the same userIds in both workspaces, and the audit names the
// caller's key.
func TestR14PooledConnectionsNeverMixWorkspaces(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	secret := make([]byte, channel.KeySize)
	rand.Read(secret)
	box, err := channel.NewBox(secret)
	if err != nil {
		t.Fatal(err)
	}
	ledger := &channel.Ledger{Pool: pool, Settings: channel.NewStore(pool, box).AllowProviderHosts(channeltest.FakeHosts()...), Templates: template.NewStore(pool), Profiles: profile.NewStore(pool)}
	store := workspace.NewStore(pool)
	s := api.New(api.Deps{
		Pool: pool, Workspaces: store, Ingest: ingest.NewStore(pool).WithHashes(box.Hashes()), Profiles: profile.NewStore(pool),
		GroupCommit: ingest.NewGroupCommitter(ctx, ingest.NewStore(pool).WithHashes(box.Hashes())), Validation: validation.NewStore(pool, time.Second),
		Segments: segment.NewStore(pool, 0), Journeys: journey.NewStore(pool, 0),
		Channels: ledger.Settings, Templates: ledger.Templates, Ledger: ledger,
	})
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)

	type tenant struct {
		slug, id, admin, write, actor string
		e                             *env
		mu                            sync.Mutex
		profiles                      []string // profile ids it looked up
	}
	var tenants []*tenant
	for _, slug := range []string{"north", "south"} {
		ws, keys, _, err := store.Bootstrap(ctx, slug, slug)
		if err != nil {
			t.Fatal(err)
		}
		tn := &tenant{slug: slug, id: ws.ID, e: &env{url: hs.URL}}
		for _, k := range keys {
			switch k.Scope {
			case workspace.ScopeAdmin:
				tn.admin, tn.actor = k.Secret, "key:"+k.ID
			case workspace.ScopeWrite:
				tn.write = k.Secret
			}
		}
		tenants = append(tenants, tn)
	}
	// The other's profile ids, to ask for them under load.
	other := func(tn *tenant) *tenant {
		if tn == tenants[0] {
			return tenants[1]
		}
		return tenants[0]
	}

	const workers, rounds = 4, 24
	errs := make(chan error, 2*workers*rounds)
	var wg sync.WaitGroup
	for _, tn := range tenants {
		for g := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range rounds {
					if err := r14Step(tn.e, tn.slug, other(tn).slug, tn.id, tn.admin, tn.write, tn.actor, g, n, &tn.mu, &tn.profiles, &other(tn).mu, &other(tn).profiles); err != nil {
						errs <- fmt.Errorf("%s worker %d round %d: %w", tn.slug, g, n, err)
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := pool.Stat(); st.MaxConns() != 2 || st.EmptyAcquireCount() == 0 {
		t.Fatalf("pool of %d connections, %d acquires that had to wait: the workspaces did not contend for connections", st.MaxConns(), st.EmptyAcquireCount())
	}
	// What was stored carries its own workspace's mark.
	for _, tn := range tenants {
		var wrong int
		err := pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM profiles WHERE workspace_id = $1 AND traits ? 'ws' AND traits->>'ws' <> $2) +
			(SELECT count(*) FROM events WHERE workspace_id = $1 AND properties ? 'ws' AND properties->>'ws' <> $2) +
			(SELECT count(*) FROM templates WHERE workspace_id = $1 AND slug NOT LIKE $2 || '-%')`, tn.id, tn.slug).Scan(&wrong)
		if err != nil || wrong != 0 {
			t.Fatalf("%s: %d rows marked with the other workspace (%v)", tn.slug, wrong, err)
		}
	}
}

// r14Step makes one request of a rotation and checks that its answer
// belongs to the caller's workspace.
func r14Step(e *env, slug, otherSlug, wsID, admin, write, actor string, g, n int, mu *sync.Mutex, mine *[]string, otherMu *sync.Mutex, theirs *[]string) error {
	user := fmt.Sprintf("u%d", (g+n)%6) // the same userIds in both workspaces
	pick := func(m *sync.Mutex, ids *[]string) string {
		m.Lock()
		defer m.Unlock()
		if len(*ids) == 0 {
			return ""
		}
		return (*ids)[(g*7+n)%len(*ids)]
	}
	switch n % 8 {
	case 0:
		status, body, err := e.try("POST", "/v1/identify", write, map[string]any{"userId": user, "traits": map[string]any{"ws": slug, "email": user + "@" + slug + ".example"}})
		if err != nil || status != 200 {
			return fmt.Errorf("identify: %d %v %v", status, body, err)
		}
	case 1:
		status, body, err := e.try("GET", "/v1/profiles/lookup?userId="+user, admin, nil)
		if err != nil || (status != 200 && status != 404) {
			return fmt.Errorf("lookup: %d %v %v", status, body, err)
		}
		if status == 200 {
			// A track may have made the profile before any identify: no
			// trait yet, but never the other workspace's.
			traits, _ := body["traits"].(map[string]any)
			ids := fmt.Sprint(body["identities"])
			if (traits["ws"] != nil && traits["ws"] != slug) || strings.Contains(ids, "@"+otherSlug+".example") {
				return fmt.Errorf("lookup of %s answered another workspace's profile: %v", user, body)
			}
			mu.Lock()
			*mine = append(*mine, body["id"].(string))
			mu.Unlock()
		}
	case 2:
		status, body, err := e.try("POST", "/v1/track", write, map[string]any{"userId": user, "event": "Viewed", "properties": map[string]any{"ws": slug}})
		if err != nil || status != 200 {
			return fmt.Errorf("track: %d %v %v", status, body, err)
		}
	case 3:
		id := pick(mu, mine)
		if id == "" {
			return nil
		}
		status, body, err := e.try("GET", "/v1/profiles/"+id+"/events", admin, nil)
		if err != nil || status != 200 {
			return fmt.Errorf("events: %d %v %v", status, body, err)
		}
		for _, ev := range body["data"].([]any) {
			if p, _ := ev.(map[string]any)["properties"].(map[string]any); p["ws"] != nil && p["ws"] != slug {
				return fmt.Errorf("events of %s include another workspace's: %v", id, ev)
			}
		}
	case 4:
		status, body, err := e.try("POST", "/v1/templates", admin, map[string]any{"slug": fmt.Sprintf("%s-%d-%d", slug, g, n), "name": "T", "subject": "S", "html": "<p>x</p>"})
		if err != nil || status != 201 {
			return fmt.Errorf("create template: %d %v %v", status, body, err)
		}
		status, body, err = e.try("GET", "/v1/templates", admin, nil)
		if err != nil || status != 200 {
			return fmt.Errorf("templates: %d %v %v", status, body, err)
		}
		for _, tp := range body["data"].([]any) {
			if s := str(tp.(map[string]any)["slug"]); !strings.HasPrefix(s, slug+"-") {
				return fmt.Errorf("templates list another workspace's %q", s)
			}
		}
	case 5:
		id := pick(mu, mine)
		if id == "" {
			return nil
		}
		st := map[bool]string{true: "unsubscribed", false: "subscribed"}[(g+n)%2 == 0]
		status, body, err := e.try("PUT", "/v1/profiles/"+id+"/subscriptions/email", admin, map[string]any{"purpose": "marketing", "status": st})
		if err != nil || status != 200 {
			return fmt.Errorf("subscription: %d %v %v", status, body, err)
		}
		status, body, err = e.try("GET", "/v1/profiles/"+id+"/subscriptions", admin, nil)
		if err != nil || status != 200 {
			return fmt.Errorf("subscriptions: %d %v %v", status, body, err)
		}
		for _, h := range body["history"].([]any) {
			if a := str(h.(map[string]any)["actor"]); a != actor {
				return fmt.Errorf("consent audit of %s names actor %q, want %q", id, a, actor)
			}
		}
	case 6:
		status, body, err := e.try("GET", "/v1/workspace", admin, nil)
		if err != nil || status != 200 || body["id"] != wsID {
			return fmt.Errorf("workspace: %d %v %v", status, body, err)
		}
	case 7:
		id := pick(otherMu, theirs)
		if id == "" {
			return nil
		}
		status, body, err := e.try("GET", "/v1/profiles/"+id, admin, nil)
		if err != nil || status != 404 {
			return fmt.Errorf("the other workspace's profile %s: %d %v %v", id, status, body, err)
		}
	}
	return nil
}

// try is e.call for goroutines: errors are returned, not reported.
func (e *env) try(method, path, key string, body any) (int, map[string]any, error) {
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		return 0, nil, err
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil && err != io.EOF {
		return resp.StatusCode, nil, fmt.Errorf("answer is not JSON: %w", err)
	}
	return resp.StatusCode, out, nil
}

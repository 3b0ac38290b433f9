package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/ingest"
)

// benchLookup measures GET /v1/profiles/lookup?email=... through the real
// API over a workspace of LookupProfiles profiles, each made by an identify
// call (userId, anonymousId, email): requests start at a steady
// LookupRate per second (open loop) and each latency counts from when its
// request was due.
func benchLookup(ctx context.Context, s Sizes, a *parcoursAPI) (Result, error) {
	t, err := a.newTenant(ctx, "bench-lookup")
	if err != nil {
		return Result{}, err
	}
	if err := seedProfiles(ctx, a.ingest, t, s.LookupProfiles); err != nil {
		return Result{}, err
	}
	var profiles int
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM profiles WHERE workspace_id = $1`, t.id).Scan(&profiles); err != nil {
		return Result{}, err
	}
	if profiles != s.LookupProfiles {
		return Result{}, fmt.Errorf("seeded %d profiles, want %d", profiles, s.LookupProfiles)
	}
	const maxInFlight = 64 // as benchEchoNoopLatency
	hc := newHTTPClient(maxInFlight)
	defer hc.CloseIdleConnections()
	g := newGenerator("lookup", s.LookupProfiles, time.Now())
	op := func(ctx context.Context, seq int64) (int, error) {
		user := strconv.Itoa(g.userOf(seq))
		raw, err := do(ctx, hc, http.MethodGet, a.url+"/v1/profiles/lookup?email="+url.QueryEscape("user"+user+"@example.com"), nil, t.adminHeader, http.StatusOK)
		if err != nil {
			return 0, err
		}
		var p struct {
			Traits map[string]any `json:"traits"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return 0, fmt.Errorf("lookup answer: %w", err)
		}
		if p.Traits["email"] != "user"+user+"@example.com" {
			return 0, fmt.Errorf("lookup of user%s@example.com answered the profile of %v", user, p.Traits["email"])
		}
		return 1, nil
	}
	if s.Warmup > 0 {
		if warm := Open(ctx, s.LookupRate, s.Warmup, maxInFlight, op); warm.Errors > 0 {
			return warm, fmt.Errorf("during warm-up: %w", warm.Err)
		}
	}
	res := Open(ctx, s.LookupRate, s.LookupDuration, maxInFlight, op)
	return res, res.check("profile lookup")
}

// seedProfiles makes n profiles with one identify each, through the ingest
// store (not timed), in transactions of 500 records.
func seedProfiles(ctx context.Context, st *ingest.Store, t tenant, n int) error {
	g := newGenerator("seed", n, time.Now())
	origin := ingest.Origin{WorkspaceID: t.id, KeyID: t.writeKeyID, Source: "web"}
	const chunk = 500
	for first := 0; first < n; first += chunk {
		body := []byte(`{"batch":[`)
		for u := first; u < min(first+chunk, n); u++ {
			if u > first {
				body = append(body, ',')
			}
			body = g.appendRecord(body, int64(u), u, "identify")
		}
		body = append(body, "]}"...)
		msgs, rejected, _, err := events.ParseBatch(body, time.Now())
		if err != nil {
			return fmt.Errorf("seed profiles: %w", err)
		}
		if len(rejected) > 0 {
			return fmt.Errorf("seed profiles: record rejected: %v", rejected[0].Err)
		}
		if _, err := st.Ingest(ctx, origin, msgs, nil); err != nil {
			return fmt.Errorf("seed profiles: %w", err)
		}
	}
	return nil
}

package bench

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/api"
	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/validation"
	"github.com/parcours/parcours/pkg/workspace"
)

// parcoursAPI is the real API built as `parcours api` builds it (real
// stores, its middleware, a pool configured from the database URL), served
// on a loopback listener.
type parcoursAPI struct {
	url        string
	pool       *pgxpool.Pool
	workspaces *workspace.Store
	ingest     *ingest.Store
	hs         *httptest.Server
}

// startAPI starts the API over databaseURL. maxConns caps its pool; 0 keeps
// pgxpool's default, which is what `parcours api` runs with.
func startAPI(ctx context.Context, databaseURL string, maxConns int32) (*parcoursAPI, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open API pool: %w", err)
	}
	a := &parcoursAPI{pool: pool, workspaces: workspace.NewStore(pool), ingest: ingest.NewStore(pool)}
	// Keep in step with startAPI in cmd/parcours/serve.go: the stores that
	// take part in ingestion (validation rules, real-time segment
	// membership) cost what they cost in production.
	s := api.New(api.Deps{
		Pool:        pool,
		Workspaces:  a.workspaces,
		Ingest:      a.ingest,
		GroupCommit: ingest.NewGroupCommitter(ctx, a.ingest),
		Profiles:    profile.NewStore(pool),
		Journeys:    journey.NewStore(pool, 5*time.Second),
		Validation:  validation.NewStore(pool, 5*time.Second),
		Segments:    segment.NewStore(pool, 5*time.Second),
		BodyLimit:   "1M",
	})
	a.hs = httptest.NewServer(s.Handler())
	a.url = a.hs.URL
	return a, nil
}

func (a *parcoursAPI) close() {
	a.hs.Close()
	a.pool.Close()
}

// tenant is a workspace with its first keys.
type tenant struct {
	id          string
	writeKeyID  string
	writeHeader http.Header // Segment-style Basic auth with the write key
	adminHeader http.Header // Bearer admin key
}

// newTenant creates a workspace, one per workload, so that counts and
// profiles of one workload never mix with another's.
func (a *parcoursAPI) newTenant(ctx context.Context, slug string) (tenant, error) {
	ws, keys, created, err := a.workspaces.Bootstrap(ctx, slug, slug)
	if err != nil {
		return tenant{}, err
	}
	if !created || len(keys) != 2 {
		return tenant{}, fmt.Errorf("workspace %s: expected a fresh workspace with an admin and a write key", slug)
	}
	admin, write := keys[0], keys[1]
	if admin.Scope != workspace.ScopeAdmin || write.Scope != workspace.ScopeWrite {
		admin, write = write, admin
	}
	return tenant{
		id:         ws.ID,
		writeKeyID: write.ID,
		writeHeader: http.Header{
			"Content-Type":  {"application/json"},
			"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(write.Secret+":"))},
		},
		adminHeader: http.Header{"Authorization": {"Bearer " + admin.Secret}},
	}, nil
}

// ingestAnswer is the part of the API's answer the harness checks.
type ingestAnswer struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
}

// post sends Segment records and checks every one was stored.
func post(ctx context.Context, hc *http.Client, url string, header http.Header, body []byte, want int) error {
	raw, err := do(ctx, hc, http.MethodPost, url, body, header, http.StatusOK)
	if err != nil {
		return err
	}
	var a ingestAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return fmt.Errorf("POST %s: answer is not JSON: %w", url, err)
	}
	if a.Accepted != want {
		return fmt.Errorf("POST %s: %d records accepted, %d duplicates, %d rejected; want %d accepted", url, a.Accepted, a.Duplicates, a.Rejected, want)
	}
	return nil
}

// countEvents checks that the records a workload reported stored are in
// the table: the harness trusts no figure it cannot count.
func countEvents(ctx context.Context, pool *pgxpool.Pool, table, workspaceID string, want int64) error {
	var n int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()+` WHERE workspace_id = $1`, workspaceID).Scan(&n); err != nil {
		return fmt.Errorf("count %s: %w", table, err)
	}
	if n != want {
		return fmt.Errorf("%s holds %d rows for the workload, but %d were reported stored", table, n, want)
	}
	return nil
}

// benchBatch measures POST /v1/batch of BatchSize records from BatchClients
// concurrent clients through the real API: parse, authenticate, validate,
// one transaction with dedupe, identity resolution and profile update,
// committed before the answer.
func benchBatch(ctx context.Context, s Sizes, a *parcoursAPI) (Result, error) {
	t, err := a.newTenant(ctx, "bench-batch")
	if err != nil {
		return Result{}, err
	}
	g := newGenerator("batch", s.Users, time.Now())
	hc := newHTTPClient(s.BatchClients)
	defer hc.CloseIdleConnections()
	res := throughput(ctx, s, s.BatchClients, s.BatchSize, func(ctx context.Context, seq int64) (int, error) {
		return s.BatchSize, post(ctx, hc, a.url+"/v1/batch", t.writeHeader, g.batch(seq*int64(s.BatchSize), s.BatchSize), s.BatchSize)
	})
	if err := res.check("Parcours /v1/batch"); err != nil {
		return res, err
	}
	if err := countEvents(ctx, a.pool, "events", t.id, res.Units+res.WarmupUnits); err != nil {
		return res, err
	}
	var profiles int
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM profiles WHERE workspace_id = $1 AND merged_into IS NULL`, t.id).Scan(&profiles); err != nil || profiles == 0 || profiles > s.Users {
		return res, fmt.Errorf("after /v1/batch: %d live profiles for %d people (%v)", profiles, s.Users, err)
	}
	return res, nil
}

// benchNaiveBatch measures the same /v1/batch bodies, parsed the same way,
// stored by the naive handler: one transaction per record, an INSERT ... ON
// CONFLICT DO NOTHING for dedupe, no identity resolution, no profile.
func benchNaiveBatch(ctx context.Context, s Sizes, a *parcoursAPI, workspaceID string) (Result, error) {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/v1/batch", naiveBatchHandler(a.pool, workspaceID))
	hs := httptest.NewServer(e)
	defer hs.Close()
	g := newGenerator("naive", s.Users, time.Now())
	hc := newHTTPClient(s.BatchClients)
	defer hc.CloseIdleConnections()
	header := http.Header{"Content-Type": {"application/json"}}
	res := throughput(ctx, s, s.BatchClients, s.BatchSize, func(ctx context.Context, seq int64) (int, error) {
		return s.BatchSize, post(ctx, hc, hs.URL+"/v1/batch", header, g.batch(seq*int64(s.BatchSize), s.BatchSize), s.BatchSize)
	})
	if err := res.check("naive /v1/batch"); err != nil {
		return res, err
	}
	return res, countEvents(ctx, a.pool, "bench_naive_events", workspaceID, res.Units+res.WarmupUnits)
}

// naiveInsertSQL is the naive handler's statement.
var naiveInsertSQL = `INSERT INTO bench_naive_events (` + strings.Join(eventColumns, ", ") + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
	ON CONFLICT (workspace_id, message_id) DO NOTHING`

// naiveBatchHandler is how /v1/batch is first written: parse, then a
// transaction per record.
func naiveBatchHandler(pool *pgxpool.Pool, workspaceID string) echo.HandlerFunc {
	return func(c echo.Context) error {
		body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, events.MaxBatchBytes))
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, err.Error())
		}
		msgs, _, _, err := events.ParseBatch(body, time.Now())
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, err.Error())
		}
		rows, err := eventRows(workspaceID, baselineKey, "web", msgs)
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		accepted := 0
		for _, row := range rows {
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				tag, err := tx.Exec(ctx, naiveInsertSQL, row...)
				accepted += int(tag.RowsAffected())
				return err
			})
			if err != nil {
				return fmt.Errorf("store record: %w", err)
			}
		}
		return c.JSON(http.StatusOK, ingestAnswer{Accepted: accepted, Duplicates: len(rows) - accepted})
	}
}

// benchTrack measures single POST /v1/track calls from Clients concurrent
// clients: each call is one record committed before the answer.
func benchTrack(ctx context.Context, s Sizes, a *parcoursAPI) (Result, error) {
	t, err := a.newTenant(ctx, "bench-track")
	if err != nil {
		return Result{}, err
	}
	g := newGenerator("track", s.Users, time.Now())
	hc := newHTTPClient(s.Clients)
	defer hc.CloseIdleConnections()
	res := throughput(ctx, s, s.Clients, 1, func(ctx context.Context, seq int64) (int, error) {
		return 1, post(ctx, hc, a.url+"/v1/track", t.writeHeader, g.appendRecord(nil, seq, g.userOf(seq), "track"), 1)
	})
	if err := res.check("Parcours /v1/track"); err != nil {
		return res, err
	}
	return res, countEvents(ctx, a.pool, "events", t.id, res.Units+res.WarmupUnits)
}

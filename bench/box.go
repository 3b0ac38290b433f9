package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"github.com/parcours/parcours/pkg/events"
)

// throughput runs op closed-loop from clients goroutines: a warm-up that is
// not counted, then the measured run, which stops early when it has handled
// s.MaxUnits units (perOp units per operation). Both share one sequence, so
// that the measured run never repeats a messageId the warm-up sent.
func throughput(ctx context.Context, s Sizes, clients, perOp int, op Op) Result {
	var seq atomic.Int64
	shared := func(ctx context.Context, _ int64) (int, error) { return op(ctx, seq.Add(1)-1) }
	var warm Result
	if s.Warmup > 0 {
		warm = Closed(ctx, clients, s.Warmup, 0, shared)
	}
	res := Closed(ctx, clients, s.Duration, max(s.MaxUnits/int64(perOp), 1), shared)
	res.WarmupUnits = warm.Units
	if warm.Errors > 0 && res.Err == nil {
		res.Errors, res.Err = res.Errors+warm.Errors, fmt.Errorf("during warm-up: %w", warm.Err)
	}
	return res
}

// newHTTPClient keeps one connection per client alive, as a load balancer or
// a Segment library does, so that the figures measure requests, not TCP
// handshakes.
func newHTTPClient(clients int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients * 2, IdleConnTimeout: time.Minute},
		Timeout:   time.Minute,
	}
}

// do sends a request and reads the whole answer. A status other than want
// is an error carrying the start of the body.
func do(ctx context.Context, c *http.Client, method, url string, body []byte, header http.Header, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, req.URL.Path, err)
	}
	if resp.StatusCode != want {
		if len(raw) > 300 {
			raw = raw[:300]
		}
		return nil, fmt.Errorf("%s %s: status %d, want %d: %s", method, req.URL.Path, resp.StatusCode, want, raw)
	}
	return raw, nil
}

// benchEchoNoop measures the HTTP stack alone: an Echo handler that answers
// 204 at once, under clients concurrent keep-alive connections over
// loopback, load driver in the same process.
func benchEchoNoop(ctx context.Context, s Sizes) (Result, error) {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/noop", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	hs := httptest.NewServer(e)
	defer hs.Close()
	hc := newHTTPClient(s.Clients)
	defer hc.CloseIdleConnections()
	res := throughput(ctx, s, s.Clients, 1, func(ctx context.Context, _ int64) (int, error) {
		_, err := do(ctx, hc, http.MethodGet, hs.URL+"/noop", nil, nil, http.StatusNoContent)
		return 1, err
	})
	return res, res.check("Echo no-op")
}

// benchEchoNoopLatency measures the same no-op handler at a steady rate
// (open loop, as B8 runs): the latency floor of an HTTP request on this
// machine right now, to read B8's tail against.
func benchEchoNoopLatency(ctx context.Context, s Sizes) (Result, error) {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/noop", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	hs := httptest.NewServer(e)
	defer hs.Close()
	const maxInFlight = 64
	hc := newHTTPClient(maxInFlight)
	defer hc.CloseIdleConnections()
	op := func(ctx context.Context, _ int64) (int, error) {
		_, err := do(ctx, hc, http.MethodGet, hs.URL+"/noop", nil, nil, http.StatusNoContent)
		return 1, err
	}
	if s.Warmup > 0 {
		Open(ctx, s.LookupRate, s.Warmup, maxInFlight, op)
	}
	res := Open(ctx, s.LookupRate, s.LookupDuration, maxInFlight, op)
	return res, res.check("Echo no-op at a steady rate")
}

// bareWorkflowName is the type name of the bare workflow.
const bareWorkflowName = "parcours-bench.Bare"

// bareWorkflow is the one-line workflow: the floor of what any journey run
// costs Temporal.
func bareWorkflow(workflow.Context) error { return nil }

// benchBareWorkflow measures workflows started and completed per second on
// an in-process Temporal server (temporaltest, in-memory SQLite) with a
// default worker: clients goroutines each start one and wait for its result,
// in a loop.
func benchBareWorkflow(ctx context.Context, s Sizes) (res Result, err error) {
	ts, err := startTemporal()
	if err != nil {
		return res, err
	}
	defer stopTemporal(ts)
	c := ts.GetDefaultClient()
	const queue = "parcours-bench"
	w := sdkworker.New(c, queue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(bareWorkflow, workflow.RegisterOptions{Name: bareWorkflowName})
	if err := w.Start(); err != nil {
		return res, fmt.Errorf("start Temporal worker: %w", err)
	}
	defer w.Stop()
	res = throughput(ctx, s, s.WorkflowClients, 1, func(ctx context.Context, seq int64) (int, error) {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("bench-bare-%d", seq), TaskQueue: queue}, bareWorkflowName)
		if err != nil {
			return 0, fmt.Errorf("start workflow: %w", err)
		}
		if err := run.Get(ctx, nil); err != nil {
			return 0, fmt.Errorf("workflow result: %w", err)
		}
		return 1, nil
	})
	return res, res.check("bare workflow")
}

// startTemporal starts temporaltest's in-process server, which panics
// rather than failing when it is given no *testing.T.
func startTemporal() (ts *temporaltest.TestServer, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("start in-process Temporal server: %v", r)
		}
	}()
	return temporaltest.NewServer(), nil
}

func stopTemporal(ts *temporaltest.TestServer) {
	defer func() { _ = recover() }() // Stop logs through a nil *testing.T when the server fails to stop
	ts.Stop()
}

// eventRows turns records into rows of eventColumns, as Parcours stores
// them, for the baselines that write rows without Parcours.
func eventRows(workspaceID, keyID, source string, msgs []events.Message) ([][]any, error) {
	rows := make([][]any, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		props, err := json.Marshal(m.Properties)
		if err != nil {
			return nil, err
		}
		traits, err := json.Marshal(m.Traits)
		if err != nil {
			return nil, err
		}
		ctxJSON, err := json.Marshal(m.Context)
		if err != nil {
			return nil, err
		}
		rows[i] = []any{
			workspaceID, keyID, source, m.MessageID, m.Type, nullable(m.Event + m.Name), nullable(m.AnonymousID), nullable(m.UserID),
			m.Timestamp, nullableTime(m.OriginalTimestamp), nullableTime(m.SentAt), m.ReceivedAt,
			props, traits, ctxJSON, []byte(m.Raw),
		}
	}
	return rows, nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullableTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// parsedRecords generates n records and parses them as the API would.
func parsedRecords(g *generator, first int64, n int) ([]events.Message, error) {
	var out []events.Message
	for done := 0; done < n; {
		k := min(100, n-done)
		msgs, rejected, _, err := events.ParseBatch(g.batch(first+int64(done), k), time.Now())
		if err != nil {
			return nil, err
		}
		if len(rejected) > 0 {
			return nil, fmt.Errorf("generated record rejected: %v", rejected[0].Err)
		}
		out = append(out, msgs...)
		done += k
	}
	return out, nil
}

// Identities of the baseline rows: no workspace or key exists for them (the
// baseline tables have no foreign keys).
const (
	baselineWorkspace = "00000000-0000-0000-0000-0000000000b0"
	baselineKey       = "00000000-0000-0000-0000-0000000000b1"
)

// benchCopyFrom measures the most PostgreSQL takes in: pgx CopyFrom of
// event rows (built before timing) into the plain table, one connection,
// one COPY (one transaction) per chunk.
func benchCopyFrom(ctx context.Context, s Sizes, databaseURL string) (Result, error) {
	msgs, err := parsedRecords(newGenerator("copy", s.Users, time.Now()), 0, s.CopyChunk)
	if err != nil {
		return Result{}, err
	}
	rows, err := eventRows(baselineWorkspace, baselineKey, "web", msgs)
	if err != nil {
		return Result{}, err
	}
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close(context.Background())
	res := throughput(ctx, s, 1, len(rows), func(ctx context.Context, _ int64) (int, error) {
		n, err := conn.CopyFrom(ctx, pgx.Identifier{"bench_plain_events"}, eventColumns, pgx.CopyFromRows(rows))
		return int(n), err
	})
	return res, res.check("CopyFrom")
}

// insertPlainSQL inserts one row into the plain table.
var insertPlainSQL = `INSERT INTO bench_plain_events (` + strings.Join(eventColumns, ", ") + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`

// benchAutocommit measures single-row INSERTs, each its own transaction
// (autocommit, so one WAL flush per row unless PostgreSQL groups concurrent
// commits), from clients goroutines each holding a connection.
func benchAutocommit(ctx context.Context, s Sizes, databaseURL string, clients int) (Result, error) {
	msgs, err := parsedRecords(newGenerator("insert", s.Users, time.Now()), 0, 1000)
	if err != nil {
		return Result{}, err
	}
	rows, err := eventRows(baselineWorkspace, baselineKey, "web", msgs)
	if err != nil {
		return Result{}, err
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return Result{}, err
	}
	cfg.MaxConns, cfg.MinConns = int32(clients), int32(clients)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return Result{}, err
	}
	defer pool.Close()
	res := throughput(ctx, s, clients, 1, func(ctx context.Context, seq int64) (int, error) {
		_, err := pool.Exec(ctx, insertPlainSQL, rows[seq%int64(len(rows))]...)
		return 1, err
	})
	return res, res.check("autocommit INSERT")
}

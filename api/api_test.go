package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"

	"github.com/parcours/parcours/activities"
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
	"github.com/parcours/parcours/worker"
)

// One real Temporal server for the package; each test gets its own database
// and task queue.
var (
	temporalOnce sync.Once
	temporalSrv  *temporaltest.TestServer
)

func TestMain(m *testing.M) {
	code := m.Run()
	if temporalSrv != nil {
		temporalSrv.Stop()
	}
	os.Exit(code)
}

func temporalServer(t *testing.T) *temporaltest.TestServer {
	temporalOnce.Do(func() {
		temporalSrv = temporaltest.NewServer()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := worker.EnsureSearchAttributes(ctx, temporalSrv.GetDefaultClient(), temporalSrv.GetDefaultNamespace(), slog.Default()); err != nil {
			panic(err)
		}
	})
	return temporalSrv
}

type env struct {
	url       string
	ws        workspace.Workspace
	admin     string
	write     string
	tc        client.Client
	server    *api.Server
	pool      *pgxpool.Pool
	segments  *segment.Store
	taskQueue string
	ledger    *channel.Ledger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith builds an env whose API dependencies adjust changes first
// (nil changes nothing), e.g. to serve the dev mailbox.
func newEnvWith(t *testing.T, adjust func(*api.Deps)) *env {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	ts := temporalServer(t)
	// Unique per env: with -count=N a stopped worker of an earlier run may
	// still count as a poller of the same queue for a while.
	taskQueue := "test-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	segments := segment.NewStore(pool, 0)
	journeys := journey.NewStore(pool, 0)
	secretKey := make([]byte, channel.KeySize)
	rand.Read(secretKey)
	box, err := channel.NewBox(secretKey)
	if err != nil {
		t.Fatal(err)
	}
	outbound := []string{"127.0.0.1"} // the fake SendGrid and webhook receivers
	ledger := &channel.Ledger{
		Pool: pool, Settings: channel.NewStore(pool, box).AllowProviderHosts(channeltest.FakeHosts()...), Templates: template.NewStore(pool), Profiles: profile.NewStore(pool),
		SendGrid: channel.NewSendGrid(outbound), Webhook: channel.NewWebhook(outbound), Twilio: channel.NewTwilio(outbound),
	}
	ts.NewWorker(taskQueue, func(r sdkworker.Registry) {
		worker.Register(r, &activities.Activities{Pool: pool, Segments: segments, Journeys: journeys, Ingest: ingest.NewStore(pool).WithHashes(box.Hashes()), Ledger: ledger})
	})
	store := workspace.NewStore(pool)
	ws, keys, _, err := store.Bootstrap(ctx, "default", "Default workspace")
	if err != nil {
		t.Fatal(err)
	}
	deps := api.Deps{
		Pool: pool, Workspaces: store, Ingest: ingest.NewStore(pool).WithHashes(box.Hashes()), Profiles: profile.NewStore(pool),
		GroupCommit: ingest.NewGroupCommitter(ctx, ingest.NewStore(pool).WithHashes(box.Hashes())),
		Validation:  validation.NewStore(pool, time.Second),
		Segments:    segments,
		Journeys:    journeys,
		Channels:    ledger.Settings,
		Templates:   ledger.Templates,
		Ledger:      ledger,
		Temporal:    ts.GetDefaultClient(), TaskQueue: taskQueue,
		Namespace: ts.GetDefaultNamespace(), TemporalUIURL: "http://localhost:8233",
		BodyLimit: "1M",
	}
	if adjust != nil {
		adjust(&deps)
	}
	s := api.New(deps)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	ledger.PublicURL = hs.URL
	return &env{url: hs.URL, ws: ws, admin: keys[0].Secret, write: keys[1].Secret, tc: ts.GetDefaultClient(), server: s, pool: pool, segments: segments, taskQueue: taskQueue, ledger: ledger}
}

// call sends a request with an optional key and JSON body and decodes the answer.
func (e *env) call(t *testing.T, method, path, key string, body any) (int, http.Header, map[string]any) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && strings.Contains(resp.Header.Get("Content-Type"), "json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %s", method, path, raw)
		}
	}
	return resp.StatusCode, resp.Header, out
}

func TestErrorsAreProblemDocuments(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	big := `{"name":"` + strings.Repeat("x", 1100*1024) + `","scope":"admin"}`
	tests := []struct {
		name      string
		method    string
		path      string
		key       string
		body      any
		status    int
		field     string // expected errors[0].field, if any
		detailHas string
	}{
		{"no key", "GET", "/v1/workspace", "", nil, 401, "", "needs an API key"},
		{"unknown key", "GET", "/v1/workspace", "pcs_admin_nope", nil, 401, "", "not valid"},
		{"write key on admin endpoint", "GET", "/v1/workspace", e.write, nil, 403, "", "needs an admin key"},
		{"unknown route", "GET", "/v1/nothing-here", e.admin, nil, 404, "", "/openapi.json"},
		{"wrong method", "PUT", "/v1/workspace", e.admin, nil, 405, "", "not allowed"},
		{"misspelt field", "POST", "/v1/api-keys", e.admin, `{"nmae":"x","scope":"admin"}`, 422, "nmae", "does not know"},
		{"wrong type", "POST", "/v1/api-keys", e.admin, `{"name":12,"scope":"admin"}`, 422, "name", "wrong type"},
		{"bad scope", "POST", "/v1/api-keys", e.admin, `{"name":"x","scope":"root"}`, 422, "scope", ""},
		{"write key without source", "POST", "/v1/api-keys", e.admin, `{"name":"x","scope":"write"}`, 422, "source", ""},
		{"not JSON", "POST", "/v1/api-keys", e.admin, `{"name":`, 400, "", "not valid JSON"},
		{"empty body", "POST", "/v1/api-keys", e.admin, "", 400, "", "empty"},
		{"too large", "POST", "/v1/api-keys", e.admin, big, 413, "", "larger"},
		{"revoke unknown key", "DELETE", "/v1/api-keys/00000000-0000-0000-0000-000000000000", e.admin, nil, 404, "", "No API key"},
		{"revoke malformed id", "DELETE", "/v1/api-keys/42", e.admin, nil, 404, "", "No API key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := e.call(t, tt.method, tt.path, tt.key, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d (body %v)", status, tt.status, body)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Fatalf("Content-Type %q, want application/problem+json", ct)
			}
			if int(body["status"].(float64)) != tt.status || body["title"] == "" || body["type"] == "" {
				t.Fatalf("problem document incomplete: %v", body)
			}
			if body["request_id"] == "" || body["request_id"] == nil {
				t.Fatalf("problem has no request_id: %v", body)
			}
			if !strings.Contains(body["detail"].(string), tt.detailHas) {
				t.Fatalf("detail %q does not say %q", body["detail"], tt.detailHas)
			}
			if tt.field != "" {
				errs, _ := body["errors"].([]any)
				if len(errs) == 0 || errs[0].(map[string]any)["field"] != tt.field || errs[0].(map[string]any)["reason"] == "" {
					t.Fatalf("errors = %v, want a reason for field %q", body["errors"], tt.field)
				}
			}
		})
	}
}

func TestAPIKeyLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	status, _, created := e.call(t, "POST", "/v1/api-keys", e.admin, map[string]string{"name": "Call centre", "scope": "write", "source": "call_centre"})
	if status != 201 {
		t.Fatalf("create key: %d %v", status, created)
	}
	secret, _ := created["secret"].(string)
	if !strings.HasPrefix(secret, "pcs_write_") || created["source"] != "call_centre" {
		t.Fatalf("created key %v", created)
	}

	status, _, list := e.call(t, "GET", "/v1/api-keys", e.admin, nil)
	if status != 200 {
		t.Fatalf("list keys: %d %v", status, list)
	}
	raw, _ := json.Marshal(list)
	if strings.Contains(string(raw), secret) {
		t.Fatal("listing keys reveals a secret")
	}
	if n := len(list["data"].([]any)); n != 3 {
		t.Fatalf("listed %d keys, want 3", n)
	}

	// The new write key authenticates, but not for admin endpoints.
	if status, _, _ := e.call(t, "GET", "/v1/workspace", secret, nil); status != 403 {
		t.Fatalf("write key on admin endpoint: %d, want 403", status)
	}
	// Revoked, it stops working at once.
	if status, _, body := e.call(t, "DELETE", "/v1/api-keys/"+created["id"].(string), e.admin, nil); status != 200 || body["revoked_at"] == nil {
		t.Fatalf("revoke: %d %v", status, body)
	}
	status, _, body := e.call(t, "GET", "/v1/workspace", secret, nil)
	if status != 401 || !strings.Contains(body["detail"].(string), "revoked") {
		t.Fatalf("revoked key: %d %v, want 401 saying revoked", status, body)
	}
	// An admin key cannot revoke itself (and lock the workspace out by mistake).
	status, _, me := e.call(t, "GET", "/v1/api-keys", e.admin, nil)
	if status != 200 {
		t.Fatal(status)
	}
	var adminID string
	for _, k := range me["data"].([]any) {
		if k := k.(map[string]any); k["scope"] == "admin" {
			adminID = k["id"].(string)
		}
	}
	if status, _, _ := e.call(t, "DELETE", "/v1/api-keys/"+adminID, e.admin, nil); status != 422 {
		t.Fatalf("self-revoke: %d, want 422", status)
	}
}

func TestWorkspaceIsTheKeysOwn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	status, _, body := e.call(t, "GET", "/v1/workspace", e.admin, nil)
	if status != 200 || body["id"] != e.ws.ID || body["slug"] != "default" {
		t.Fatalf("workspace: %d %v", status, body)
	}
}

func TestPingRunsAWorkflowFindableByWorkspace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	status, _, body := e.call(t, "POST", "/v1/diagnostics/ping", e.admin, nil)
	if status != 200 {
		t.Fatalf("ping: %d %v", status, body)
	}
	if body["workspace_slug"] != "default" {
		t.Fatalf("ping read workspace %v, want default", body["workspace_slug"])
	}
	if !strings.HasPrefix(body["temporal_ui_url"].(string), "http://localhost:8233/namespaces/") {
		t.Fatalf("temporal_ui_url = %v", body["temporal_ui_url"])
	}
	wfID := body["workflow_id"].(string)
	query := `ParcoursWorkspace = '` + e.ws.ID + `'`
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := e.tc.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range resp.Executions {
			if ex.Execution.WorkflowId == wfID {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("workflow %s not listed by %s", wfID, query)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestReadyzReportsWhatIsDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if status, _, body := e.call(t, "GET", "/readyz", "", nil); status != 200 || body["status"] != "ready" {
		t.Fatalf("readyz: %d %v", status, body)
	}
	// Same API with a closed pool: the database check fails and says so.
	pool := pgtest.NewPool(t)
	pool.Close()
	s := api.New(api.Deps{Pool: pool, Workspaces: workspace.NewStore(pool), Temporal: e.tc})
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	down := &env{url: hs.URL}
	status, _, body := down.call(t, "GET", "/readyz", "", nil)
	if status != 503 {
		t.Fatalf("readyz with database down: %d %v", status, body)
	}
	errs := body["errors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["field"] != "database" {
		t.Fatalf("readyz errors = %v, want the database named", errs)
	}
}

func TestMetricsCountRequestsByRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.call(t, "GET", "/v1/workspace", "", nil)
	e.call(t, "GET", "/v1/workspace", e.admin, nil)
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`parcours_http_requests_total{code="401",method="GET",route="/v1/workspace"} 1`,
		`parcours_http_requests_total{code="200",method="GET",route="/v1/workspace"} 1`,
		`parcours_http_request_duration_seconds_bucket`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func changesOf(profileID string, events ...string) []segment.Change {
	return []segment.Change{{ProfileID: profileID, Events: events, Types: []string{"page"}}}
}

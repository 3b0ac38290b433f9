package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/common/authorization"
	serverconfig "go.temporal.io/server/common/config"
	"go.temporal.io/server/common/rpc/encryption"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/parcours/parcours/pkg/config"
	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/workspace"
	"github.com/parcours/parcours/workflows"
)

// These tests drive the binary's own connection code (config.Load from
// environment variables, then dialTemporal / run) against an in-process
// Temporal server whose frontend speaks TLS, mutual TLS, or TLS with an API
// key checked by a claim mapper: what a self-hosted cluster with mTLS or
// Temporal Cloud asks of `parcours api` and `parcours worker`.

// testCA is a certificate authority made up for one test, with the PEM
// files of what it issued under dir.
type testCA struct {
	dir  string
	name string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	// CAFile is the CA certificate in PEM, for TEMPORAL_TLS_CA.
	CAFile string
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{dir: t.TempDir(), name: name, cert: cert, key: key, pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	ca.CAFile = ca.write(t, name+"-ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(t *testing.T, file, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(ca.dir, file)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issued is a certificate and its key, in memory and as PEM files.
type issued struct {
	pair     tls.Certificate
	certFile string
	keyFile  string
}

// issue signs a server certificate for dnsNames, or a client certificate
// for commonName when dnsNames is empty.
func (ca *testCA) issue(t *testing.T, commonName string, dnsNames ...string) issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if len(dnsNames) > 0 {
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		DNSNames:     dnsNames,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	out := issued{
		certFile: ca.write(t, commonName+".pem", "CERTIFICATE", der),
		keyFile:  ca.write(t, commonName+"-key.pem", "EC PRIVATE KEY", keyDER),
	}
	if out.pair, err = tls.LoadX509KeyPair(out.certFile, out.keyFile); err != nil {
		t.Fatal(err)
	}
	return out
}

// internalCN names the certificate the server's own system worker presents
// to its frontend; only the API-key server's claim mapper looks at it.
const internalCN = "temporal-internal"

// tlsTemporal starts an in-process Temporal server whose frontend serves
// TLS with a certificate for "localhost" only (no IP address), signed by
// ca. clientAuth says whether it asks for client certificates; extra adds
// server options (a claim mapper and an authorizer). It returns the
// frontend's port and the namespace registered on it.
func tlsTemporal(t *testing.T, ca *testCA, clientAuth tls.ClientAuthType, extra ...temporal.ServerOption) (port, namespace string) {
	t.Helper()
	server := ca.issue(t, "frontend", "localhost")
	internal := ca.issue(t, internalCN)
	provider := &encryption.FixedTLSConfigProvider{
		FrontendServerConfig: &tls.Config{
			Certificates: []tls.Certificate{server.pair},
			ClientAuth:   clientAuth,
			ClientCAs:    ca.pool,
			MinVersion:   tls.VersionTLS12,
		},
		// The server's system worker dials its own frontend too.
		FrontendClientConfig: &tls.Config{
			Certificates: []tls.Certificate{internal.pair},
			RootCAs:      ca.pool,
			ServerName:   "localhost",
			MinVersion:   tls.VersionTLS12,
		},
	}
	opts := append([]temporal.ServerOption{temporal.WithTLSConfigFactory(provider)}, extra...)
	ts := temporaltest.NewServer(temporaltest.WithT(t), temporaltest.WithBaseServerOptions(opts...))
	_, port, err := net.SplitHostPort(ts.GetFrontendHostPort())
	if err != nil {
		t.Fatal(err)
	}
	return port, ts.GetDefaultNamespace()
}

// apiKeyClaims maps "Authorization: Bearer <key>" to a system admin, as a
// Temporal Cloud API key with full rights would be; any other token is
// refused outright. The server's system worker is recognised by its
// certificate.
type apiKeyClaims struct{ key string }

func (m apiKeyClaims) GetClaims(ai *authorization.AuthInfo) (*authorization.Claims, error) {
	if ai.AuthToken == "Bearer "+m.key {
		return &authorization.Claims{Subject: "parcours", System: authorization.RoleAdmin}, nil
	}
	if ai.AuthToken == "" && ai.TLSSubject != nil && ai.TLSSubject.CommonName == internalCN {
		return &authorization.Claims{Subject: internalCN, System: authorization.RoleAdmin}, nil
	}
	return nil, errors.New("unknown API key")
}

// connCase is one configuration of the binary against a TLS server.
type connCase struct {
	name string
	// host the binary dials (the port is the server's).
	host string
	env  map[string]string
	// wantErr lists substrings of the expected error; empty means the
	// connection must work.
	wantErr []string
}

// checkConnections runs each case through config.Load and dialTemporal,
// then proves a working connection by running a workflow through a worker
// polling on it.
func checkConnections(t *testing.T, port, namespace string, cases []connCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"TEMPORAL_NAMESPACE": namespace}
			for k, v := range tc.env {
				env[k] = v
			}
			cfg, err := config.Load(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := dialTemporal(ctx, cfg, net.JoinHostPort(tc.host, port), slog.New(slog.DiscardHandler))
			if len(tc.wantErr) > 0 {
				if err == nil {
					c.Close()
					t.Fatalf("connected; want an error with %q", tc.wantErr)
				}
				t.Logf("refused: %v", err)
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer c.Close()
			runEcho(ctx, t, c)
		})
	}
}

// runEcho runs a one-line workflow through a worker on c: start, poll,
// complete, read the result — every kind of call a Parcours process makes.
func runEcho(ctx context.Context, t *testing.T, c client.Client) {
	t.Helper()
	queue := "tls-" + t.Name()
	w := sdkworker.New(c, queue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(func(_ workflow.Context, s string) (string, error) { return "echo " + s, nil },
		workflow.RegisterOptions{Name: "echo"})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	defer w.Stop()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, "echo", "hello")
	if err != nil {
		t.Fatalf("start workflow: %v", err)
	}
	var got string
	if err := run.Get(ctx, &got); err != nil || got != "echo hello" {
		t.Fatalf("workflow answered %q, %v", got, err)
	}
}

// A frontend with a certificate from a private CA: the binary verifies it
// with TEMPORAL_TLS_CA and TEMPORAL_TLS_SERVER_NAME, and refuses it without.
func TestTemporalServerTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "private")
	port, ns := tlsTemporal(t, ca, tls.NoClientCert)
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkConnections(t, port, ns, []connCase{
		{name: "private CA", host: "localhost", env: map[string]string{"TEMPORAL_TLS_CA": ca.CAFile}},
		{name: "server name for an IP address", host: "127.0.0.1",
			env: map[string]string{"TEMPORAL_TLS_CA": ca.CAFile, "TEMPORAL_TLS_SERVER_NAME": "localhost"}},
		{name: "IP address the certificate does not name", host: "127.0.0.1",
			env:     map[string]string{"TEMPORAL_TLS_CA": ca.CAFile},
			wantErr: []string{"connect to Temporal", "certificate for 127.0.0.1"}},
		{name: "without the private CA", host: "localhost",
			env:     map[string]string{"TEMPORAL_TLS_SERVER_NAME": "localhost"},
			wantErr: []string{"connect to Temporal", "certificate signed by unknown authority"}},
		{name: "plaintext", host: "localhost", wantErr: []string{"connect to Temporal"}},
		{name: "CA file without a certificate", host: "localhost",
			env:     map[string]string{"TEMPORAL_TLS_CA": notPEM},
			wantErr: []string{"TEMPORAL_TLS_CA", "holds no PEM certificate"}},
	})
}

// A frontend that requires client certificates (mTLS, as a self-hosted
// cluster or Temporal Cloud's certificate auth does).
func TestTemporalMutualTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "cluster")
	port, ns := tlsTemporal(t, ca, tls.RequireAndVerifyClientCert)
	mine := ca.issue(t, "parcours")
	stranger := newTestCA(t, "stranger").issue(t, "intruder")
	checkConnections(t, port, ns, []connCase{
		{name: "client certificate", host: "localhost", env: map[string]string{
			"TEMPORAL_TLS_CA": ca.CAFile, "TEMPORAL_TLS_CERT": mine.certFile, "TEMPORAL_TLS_KEY": mine.keyFile}},
		{name: "no client certificate", host: "localhost",
			env:     map[string]string{"TEMPORAL_TLS_CA": ca.CAFile},
			wantErr: []string{"connect to Temporal"}},
		{name: "certificate from another CA", host: "localhost", env: map[string]string{
			"TEMPORAL_TLS_CA": ca.CAFile, "TEMPORAL_TLS_CERT": stranger.certFile, "TEMPORAL_TLS_KEY": stranger.keyFile},
			wantErr: []string{"connect to Temporal"}},
		{name: "key that is not the certificate's", host: "localhost", env: map[string]string{
			"TEMPORAL_TLS_CA": ca.CAFile, "TEMPORAL_TLS_CERT": mine.certFile, "TEMPORAL_TLS_KEY": stranger.keyFile},
			wantErr: []string{"TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY"}},
	})
}

// A frontend that authorizes calls by API key (Temporal Cloud's other
// authentication): the right key works, a wrong or missing one is refused
// at start with an error that names TEMPORAL_API_KEY.
func TestTemporalAPIKey(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "cloud")
	const key = "tmprl-test-key-4f1c"
	port, ns := tlsTemporal(t, ca, tls.VerifyClientCertIfGiven,
		temporal.WithClaimMapper(func(*serverconfig.Config) authorization.ClaimMapper { return apiKeyClaims{key: key} }),
		temporal.WithAuthorizer(authorization.NewDefaultAuthorizer()))
	checkConnections(t, port, ns, []connCase{
		{name: "right key", host: "localhost", env: map[string]string{"TEMPORAL_TLS_CA": ca.CAFile, "TEMPORAL_API_KEY": key}},
		{name: "wrong key", host: "localhost",
			env:     map[string]string{"TEMPORAL_TLS_CA": ca.CAFile, "TEMPORAL_API_KEY": "tmprl-stolen"},
			wantErr: []string{"connect to Temporal", "TEMPORAL_API_KEY"}},
		{name: "no key", host: "localhost",
			env:     map[string]string{"TEMPORAL_TLS_CA": ca.CAFile},
			wantErr: []string{"connect to Temporal", "TEMPORAL_API_KEY"}},
		{name: "namespace that does not exist", host: "localhost",
			env:     map[string]string{"TEMPORAL_TLS_CA": ca.CAFile, "TEMPORAL_API_KEY": key, "TEMPORAL_NAMESPACE": "nowhere"},
			wantErr: []string{`namespace "nowhere" does not exist`, "TEMPORAL_NAMESPACE"}},
	})
	if t.Failed() {
		return
	}
	// The whole worker process, configured as for Temporal Cloud, with an
	// encrypted database session: it registers its search attributes and
	// schedule (operator calls) and serves the diagnostic workflow.
	runWorkerProcess(t, ns, map[string]string{
		"TEMPORAL_ADDRESS": net.JoinHostPort("localhost", port),
		"TEMPORAL_TLS_CA":  ca.CAFile,
		"TEMPORAL_API_KEY": key,
	})
}

// The worker process against the mTLS frontend.
func TestWorkerProcessOverMutualTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "cluster")
	port, ns := tlsTemporal(t, ca, tls.RequireAndVerifyClientCert)
	mine := ca.issue(t, "parcours-worker")
	runWorkerProcess(t, ns, map[string]string{
		"TEMPORAL_ADDRESS":  net.JoinHostPort("localhost", port),
		"TEMPORAL_TLS_CA":   ca.CAFile,
		"TEMPORAL_TLS_CERT": mine.certFile,
		"TEMPORAL_TLS_KEY":  mine.keyFile,
	})
}

// runWorkerProcess runs `parcours worker` (run, as main does) with env and
// DATABASE_URL?sslmode=require on a fresh database, then runs the Ping
// workflow through it with a client configured the same way, and checks
// that the worker's database sessions are encrypted and that it stops
// cleanly.
func runWorkerProcess(t *testing.T, namespace string, env map[string]string) {
	t.Helper()
	dbURL := pgtest.NewDatabase(t)
	if !serverSSL(t) {
		t.Log("PostgreSQL has ssl off: the worker connects with sslmode=disable")
	}
	env["DATABASE_URL"] = withParams(t, dbURL, map[string]string{"sslmode": sslModeForServer(t)})
	env["TEMPORAL_NAMESPACE"] = namespace
	env["PARCOURS_TASK_QUEUE"] = "parcours-" + strings.ReplaceAll(t.Name(), "/", "-")
	getenv := func(k string) string { return env[k] }

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, err := openPool(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ws, err := workspace.NewStore(pool).Create(ctx, "tls-check", "TLS check")
	if err != nil {
		t.Fatal(err)
	}

	procCtx, stop := context.WithCancel(ctx)
	defer stop()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(procCtx, []string{"worker"}, logs, logs, getenv) }()

	cfg, err := config.Load(getenv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dialTemporal(ctx, cfg, cfg.TemporalAddress, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("test client: %v", err)
	}
	defer c.Close()
	wctx, wcancel := context.WithTimeout(ctx, 45*time.Second)
	defer wcancel()
	r, err := c.ExecuteWorkflow(wctx, client.StartWorkflowOptions{TaskQueue: cfg.TaskQueue},
		workflows.PingWorkflow, workflows.PingInput{WorkspaceID: ws.ID})
	if err != nil {
		t.Fatalf("start ping: %v", err)
	}
	var res workflows.PingResult
	if err := r.Get(wctx, &res); err != nil || res.WorkspaceSlug != "tls-check" {
		select {
		case err := <-done:
			t.Fatalf("the worker exited: %v\n%s", err, logs)
		default:
		}
		t.Fatalf("ping answered %+v, %v; worker log:\n%s", res, err, logs)
	}

	// Every session the worker holds on its database is encrypted (or, on
	// a server with ssl off, at least there is one).
	dbName := strings.TrimPrefix(mustParseURL(t, dbURL).Path, "/")
	admin, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	pool.Close() // the test's own pool is gone; what remains is the worker's
	var sessions, encrypted int
	if err := admin.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE s.ssl)
		FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
		WHERE a.datname = $1 AND a.backend_type = 'client backend'`, dbName).Scan(&sessions, &encrypted); err != nil {
		t.Fatal(err)
	}
	if sessions == 0 {
		t.Fatal("the worker holds no database session")
	}
	if serverSSL(t) && encrypted != sessions {
		t.Errorf("%d of the worker's %d database sessions are encrypted; DATABASE_URL asked for sslmode=require", encrypted, sessions)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker stopped with %v\n%s", err, logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the worker did not stop on cancel\n%s", logs)
	}
}

func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// withParams returns dbURL with query parameters set.
func withParams(t *testing.T, dbURL string, params map[string]string) string {
	t.Helper()
	u := mustParseURL(t, dbURL)
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

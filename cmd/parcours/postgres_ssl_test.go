package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parcours/parcours/pkg/config"
	"github.com/parcours/parcours/pkg/pgtest"
)

// serverSSL says whether the test PostgreSQL server has ssl on. The tests
// never change that setting: the server is shared.
func serverSSL(t *testing.T) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		t.Fatalf("connect to test PostgreSQL: %v", err)
	}
	defer c.Close(ctx)
	var ssl string
	if err := c.QueryRow(ctx, "SHOW ssl").Scan(&ssl); err != nil {
		t.Fatal(err)
	}
	return ssl == "on"
}

// sslModeForServer is the strictest sslmode without a CA file that the
// test server accepts.
func sslModeForServer(t *testing.T) string {
	if serverSSL(t) {
		return "require"
	}
	return "disable"
}

// openWithURL opens the pool exactly as `parcours api`/`worker` do, from
// DATABASE_URL through config.Load.
func openWithURL(ctx context.Context, t *testing.T, dbURL string) (encrypted bool, maxConns int32, err error) {
	t.Helper()
	cfg, err := config.Load(func(k string) string {
		if k == "DATABASE_URL" {
			return dbURL
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := openPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return false, 0, err
	}
	defer pool.Close()
	if err := pool.QueryRow(ctx, `SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&encrypted); err != nil {
		t.Fatal(err)
	}
	return encrypted, pool.Config().MaxConns, nil
}

// DATABASE_URL's libpq parameters reach the connection: sslmode decides
// whether the session is encrypted, verify-full checks the server's
// certificate against sslrootcert and its name, and pool_max_conns sizes the
// pool (the knob docs/operations.md uses for connection budgets).
func TestDatabaseURLSSLModes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := pgtest.AdminURL()
	with := func(p map[string]string) string { return withParams(t, admin, p) }

	encrypted, _, err := openWithURL(ctx, t, with(map[string]string{"sslmode": "disable"}))
	if err != nil || encrypted {
		t.Fatalf("sslmode=disable: encrypted=%v err=%v; want a plain session", encrypted, err)
	}
	_, maxConns, err := openWithURL(ctx, t, with(map[string]string{"sslmode": "disable", "pool_max_conns": "3"}))
	if err != nil || maxConns != 3 {
		t.Fatalf("pool_max_conns=3: pool of %d, err=%v", maxConns, err)
	}

	if !serverSSL(t) {
		// Nothing to encrypt with: require must fail, and say why.
		_, _, err := openWithURL(ctx, t, with(map[string]string{"sslmode": "require"}))
		if err == nil || !strings.Contains(err.Error(), "server refused TLS connection") {
			t.Fatalf("sslmode=require against a server with ssl off: %v; want a refusal", err)
		}
		t.Skip("PostgreSQL has ssl off: sslmode=require and verify-full cannot be checked here")
	}

	encrypted, _, err = openWithURL(ctx, t, with(map[string]string{"sslmode": "require"}))
	if err != nil || !encrypted {
		t.Fatalf("sslmode=require: encrypted=%v err=%v; want an encrypted session", encrypted, err)
	}

	// A CA that did not sign the server's certificate is refused.
	other := newTestCA(t, "not-postgres")
	_, _, err = openWithURL(ctx, t, with(map[string]string{"sslmode": "verify-full", "sslrootcert": other.CAFile}))
	// (Dialled by IP, Go checks the name before the chain and says so
	// instead: either way verify-full refuses the server.)
	if err == nil || !strings.Contains(err.Error(), "failed to verify certificate") {
		t.Fatalf("verify-full with a foreign CA: %v; want a certificate verification refusal", err)
	}

	// verify-full against the server's own certificate, when it is
	// self-signed (Debian's snakeoil) and readable here, and the server is
	// local so that the host can be the name on the certificate.
	root, name := localServerRoot(ctx, t, admin)
	if root == "" {
		t.Skip("the server's certificate is not a readable self-signed one on this machine: verify-full success not checked")
	}
	u := mustParseURL(t, with(map[string]string{"sslmode": "verify-full", "sslrootcert": root}))
	u.Host = net.JoinHostPort(name, portOf(u.Port()))
	encrypted, _, err = openWithURL(ctx, t, u.String())
	if err != nil || !encrypted {
		t.Fatalf("verify-full with sslrootcert=%s and host %s: encrypted=%v err=%v", root, name, encrypted, err)
	}
	// The same root, reached by an address the certificate does not name.
	u.Host = net.JoinHostPort("127.0.0.1", portOf(u.Port()))
	if _, _, err := openWithURL(ctx, t, u.String()); err == nil || !strings.Contains(err.Error(), "certificate for 127.0.0.1") {
		t.Fatalf("verify-full by IP address: %v; want a name mismatch", err)
	}
}

func portOf(p string) string {
	if p == "" {
		return "5432"
	}
	return p
}

// localServerRoot returns the server's certificate file and the DNS name it
// is valid for, if the server runs on this machine with a self-signed
// certificate this process can read; "" otherwise.
func localServerRoot(ctx context.Context, t *testing.T, adminURL string) (file, name string) {
	t.Helper()
	switch mustParseURL(t, adminURL).Hostname() {
	case "localhost", "127.0.0.1", "::1", "":
	default:
		return "", ""
	}
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.QueryRow(ctx, "SHOW ssl_cert_file").Scan(&file); err != nil {
		return "", "" // not allowed to read server settings
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return "", ""
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return "", ""
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	// Self-signed (the snakeoil certificate is not a CA, so
	// CheckSignatureFrom would refuse it; as a root it is trusted as is).
	if err != nil || !bytes.Equal(cert.RawIssuer, cert.RawSubject) ||
		cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) != nil {
		return "", ""
	}
	for _, n := range cert.DNSNames {
		if n == "localhost" {
			return file, n
		}
	}
	return "", ""
}

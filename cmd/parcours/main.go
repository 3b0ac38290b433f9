// Command parcours runs the Parcours platform.
//
//	parcours dev       everything in one process: Temporal + UI, worker, API (the default for one machine)
//	parcours api       the HTTP API only, against an existing Temporal cluster
//	parcours worker    the Temporal worker only
//	parcours migrate   up | down | status of the database schema
//	parcours bootstrap create a workspace and print its first keys (api/worker deployments)
//	parcours import    upload a CSV / NDJSON export to the API and follow its import
//	parcours demo      load a small fictional shop into a workspace (profiles, segments, journeys)
//	parcours version   print the version
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/parcours/parcours/pkg/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `Parcours: customer data platform and journey orchestration.

Usage: parcours <command> [flags]

Commands:
  dev       run everything in one process: Temporal server and Web UI, worker, API
  api       run the HTTP API (needs TEMPORAL_ADDRESS and DATABASE_URL)
  worker    run the Temporal worker (needs TEMPORAL_ADDRESS and DATABASE_URL)
  migrate   up | down | status: manage the database schema
  bootstrap [--workspace SLUG]: create a workspace and print its first API keys
  import    FILE --mapping mapping.json: bulk-import a CSV / NDJSON export through the API
  demo      [--workspace SLUG]: load a small fictional shop (profiles, segments, live journeys)
  version   print the version

Configuration comes from environment variables; see README.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "parcours:", err)
		os.Exit(1)
	}
}

// errUsage asks main to print the usage.
var errUsage = errors.New("unknown command; run `parcours help`")

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	switch args[0] {
	case "dev":
		return runDev(ctx, cfg, args[1:], stdout, stderr)
	case "api":
		return runAPI(ctx, cfg, args[1:], stderr)
	case "worker":
		return runWorker(ctx, cfg, args[1:], stderr)
	case "migrate":
		return runMigrate(ctx, cfg, args[1:], stdout)
	case "bootstrap":
		return runBootstrap(ctx, cfg, args[1:], stdout, stderr)
	case "temporal": // not in the usage: for tests and `make soak` (temporal.go)
		return runTemporal(ctx, cfg, args[1:], stdout, stderr)
	case "import":
		return runImport(ctx, args[1:], stdout, stderr, getenv)
	case "demo":
		return runDemo(ctx, cfg, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "parcours", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func openPool(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}

func dialTemporal(ctx context.Context, cfg config.Config, address string, logger *slog.Logger) (client.Client, error) {
	// The SDK is chatty at info level; its warnings and errors still reach the log.
	sdkLogger := slog.New(&minLevel{Handler: logger.Handler(), min: slog.LevelWarn})
	opts := client.Options{
		HostPort:  address,
		Namespace: cfg.TemporalNamespace,
		Logger:    sdklog.NewStructuredLogger(sdkLogger),
	}
	tlsCfg, err := temporalTLS(cfg)
	if err != nil {
		return nil, err
	}
	opts.ConnectionOptions.TLS = tlsCfg
	if cfg.TemporalAPIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(cfg.TemporalAPIKey)
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", address, explainRefusal(err))
	}
	if err := checkNamespace(ctx, c, cfg.TemporalNamespace); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to Temporal at %s: %w", address, err)
	}
	return c, nil
}

// temporalTLS builds the TLS settings of the Temporal connection: mTLS with
// a client certificate, a private CA, or plain TLS for an API key. nil means
// no TLS (a local or in-cluster frontend).
func temporalTLS(cfg config.Config) (*tls.Config, error) {
	if cfg.TemporalTLSCert == "" && cfg.TemporalTLSCA == "" && cfg.TemporalAPIKey == "" && cfg.TemporalTLSName == "" {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.TemporalTLSName}
	if cfg.TemporalTLSCert != "" {
		pair, err := tls.LoadX509KeyPair(cfg.TemporalTLSCert, cfg.TemporalTLSKey)
		if err != nil {
			return nil, fmt.Errorf("load TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY: %w", err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	if cfg.TemporalTLSCA != "" {
		pem, err := os.ReadFile(cfg.TemporalTLSCA)
		if err != nil {
			return nil, fmt.Errorf("read TEMPORAL_TLS_CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TEMPORAL_TLS_CA %s holds no PEM certificate", cfg.TemporalTLSCA)
		}
		t.RootCAs = pool
	}
	return t, nil
}

// minLevel raises a handler's threshold.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h *minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h *minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return &minLevel{Handler: h.Handler.WithAttrs(as), min: h.min}
}

func (h *minLevel) WithGroup(name string) slog.Handler {
	return &minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}

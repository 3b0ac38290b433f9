package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/migrations"
	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/config"
	"github.com/parcours/parcours/pkg/devserver"
	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/user"
	"github.com/parcours/parcours/pkg/workspace"
	"github.com/parcours/parcours/worker"
)

// credentialsFile is where `parcours dev` writes the keys it creates on first
// start, readable by the owner only, in a form a shell can `source`.
const credentialsFile = "credentials.env"

// secretKeyFile holds the dev server's PARCOURS_SECRET_KEY (mode 0600).
const secretKeyFile = "secret.key"

// localURL is the URL of a listen address as a person on this machine types it.
func localURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://localhost:8080"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func runDev(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "API and console listen address (PARCOURS_HTTP_ADDR)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "local state directory (PARCOURS_DATA_DIR)")
	fs.StringVar(&cfg.DatabaseURL, "database-url", cfg.DatabaseURL, "PostgreSQL URL (DATABASE_URL)")
	fs.StringVar(&cfg.TemporalAddress, "temporal-address", cfg.TemporalAddress, "use this Temporal cluster instead of the embedded one (TEMPORAL_ADDRESS)")
	fs.IntVar(&cfg.TemporalPort, "temporal-port", cfg.TemporalPort, "embedded Temporal gRPC port (PARCOURS_TEMPORAL_PORT)")
	fs.IntVar(&cfg.TemporalUIPort, "ui-port", cfg.TemporalUIPort, "embedded Temporal Web UI port, 0 to disable (PARCOURS_TEMPORAL_UI_PORT)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}

	// 1. PostgreSQL, with the schema up to date.
	pg, err := devserver.EnsurePostgres(ctx, cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return err
	}
	defer stopLogged(logger, "PostgreSQL", pg.Stop)
	if pg.Private {
		logger.Info("started a private PostgreSQL cluster", "dir", filepath.Join(cfg.DataDir, "pg"))
	} else if pg.Created {
		logger.Info("created database", "url", redactURL(pg.URL))
	}
	if err := migrations.Up(ctx, pg.URL); err != nil {
		return err
	}
	pool, err := openPool(ctx, pg.URL)
	if err != nil {
		return err
	}
	defer pool.Close()

	// 2. Temporal: embedded unless an address is given.
	temporalAddr, uiURL := cfg.TemporalAddress, cfg.TemporalUIURL
	if temporalAddr == "" {
		t, err := devserver.StartTemporal(ctx, devserver.TemporalOptions{
			DataDir:   cfg.DataDir,
			Port:      cfg.TemporalPort,
			UIPort:    cfg.TemporalUIPort,
			Namespace: cfg.TemporalNamespace,
		})
		if err != nil {
			return err
		}
		defer stopLogged(logger, "Temporal", t.Stop)
		temporalAddr = t.Address()
		if uiURL == "" {
			uiURL = t.UIURL()
		}
	}
	tc, err := dialTemporal(ctx, cfg, temporalAddr, logger)
	if err != nil {
		return err
	}
	defer tc.Close()
	if err := worker.EnsureSearchAttributes(ctx, tc, cfg.TemporalNamespace, logger); err != nil {
		return err
	}
	if err := worker.EnsureSegmentSchedule(ctx, tc, cfg.TaskQueue, cfg.SegmentSweep); err != nil {
		return err
	}

	// 3. The default workspace and its first keys.
	ws, keys, created, err := workspace.NewStore(pool).Bootstrap(ctx, "default", "Default workspace")
	if err != nil {
		return err
	}
	credPath := filepath.Join(cfg.DataDir, credentialsFile)
	if created {
		if err := writeCredentials(credPath, ws, keys); err != nil {
			return err
		}
	}
	// The console's first admin, with a random password, when the workspace
	// has no user yet; saved next to the keys.
	adminPassword, adminCreated, err := user.NewStore(pool).EnsureFirstAdmin(ctx, ws.ID, firstAdminEmail)
	if err != nil {
		return err
	}
	if adminCreated {
		if err := appendConsoleLogin(credPath, firstAdminEmail, adminPassword); err != nil {
			return err
		}
	}

	// 4. The secret key of channel secrets and unsubscribe links: generated
	// on first start, kept in the data directory.
	if cfg.SecretKey == nil {
		keyPath := filepath.Join(cfg.DataDir, secretKeyFile)
		key, created, err := channel.LoadOrCreateKeyFile(keyPath)
		if err != nil {
			return err
		}
		if created {
			logger.Info("generated the secret key of channel secrets", "path", keyPath)
		}
		cfg.SecretKey = key
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = localURL(cfg.HTTPAddr)
	}
	// The dev mailbox catches email (dev_mailbox.go); its host must be
	// reachable by the ledgers built next.
	mailbox, err := newDevMailbox(&cfg, logger)
	if err != nil {
		return err
	}
	ledger, err := newLedger(cfg, pool, logger)
	if err != nil {
		return err
	}

	// 5. Worker and API.
	w := worker.New(tc, cfg.TaskQueue, &activities.Activities{Pool: pool, Segments: segment.NewStore(pool, 5*time.Second), Ledger: ledger,
		Journeys: journey.NewStore(pool, 5*time.Second), Ingest: ingest.NewStore(pool).WithHashes(ledger.Settings.Hashes())})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop() // drains in-flight tasks; runs before Temporal stops
	// Segment webhooks are posted from the worker side; stopped before it.
	stopHooks := startSegmentWebhooks(ctx, cfg, pool, ledger, logger)
	defer stopHooks()
	// Journey starts the API could not make, likewise.
	stopTriggers := startJourneyTriggers(ctx, cfg, pool, tc, logger)
	defer stopTriggers()
	// The quarantine and provider events past their retention, likewise.
	stopRetention := startRetention(ctx, cfg, pool, logger)
	defer stopRetention()
	apiSrv, err := startAPI(cfg, pool, tc, uiURL, logger, withDevMailbox(mailbox))
	if err != nil {
		return err
	}
	mailboxURL, err := configureDevMailbox(ctx, mailbox, ledger.Settings, ws.ID, apiSrv, logger)
	if err != nil {
		return err
	}

	printBanner(stdout, banner{
		APIURL: apiSrv.URL(), UIURL: uiURL, TemporalAddr: temporalAddr, DatabaseURL: redactURL(pg.URL),
		Workspace: ws, NewKeys: keys, CredentialsPath: credPath,
		ConsoleEmail: firstAdminEmail, ConsolePassword: adminPassword, MailboxURL: mailboxURL,
	})

	select {
	case <-ctx.Done():
	case err := <-apiSrv.done:
		return fmt.Errorf("API stopped: %w", err)
	}
	logger.Info("shutting down: API, then worker, then Temporal")
	return apiSrv.Shutdown()
}

func stopLogged(logger *slog.Logger, what string, stop func() error) {
	if err := stop(); err != nil {
		logger.Warn("stop "+what, "err", err)
	}
}

func writeCredentials(path string, ws workspace.Workspace, keys []workspace.NewKey) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Parcours dev credentials for workspace %q (%s), created %s.\n", ws.Slug, ws.ID, time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "# These secrets are stored only here and hashed in the database. `source` this file to use them.\n")
	fmt.Fprintf(&b, "PARCOURS_WORKSPACE_ID=%s\n", ws.ID)
	for _, k := range keys {
		fmt.Fprintf(&b, "PARCOURS_%s_KEY=%s\n", strings.ToUpper(string(k.Scope)), k.Secret)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	return nil
}

// firstAdminEmail is the console login `parcours dev` creates on first start.
const firstAdminEmail = "admin@parcours.local"

// appendConsoleLogin saves the first admin's console login to the
// credentials file (created, mode 0600, if missing).
func appendConsoleLogin(path, email, password string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("save console login: %w", err)
	}
	_, err = fmt.Fprintf(f, "# Console sign-in (%s): change nothing here, the password is stored hashed.\nPARCOURS_CONSOLE_EMAIL=%s\nPARCOURS_CONSOLE_PASSWORD=%s\n",
		time.Now().UTC().Format(time.RFC3339), email, password)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("save console login: %w", err)
	}
	return nil
}

type banner struct {
	APIURL, UIURL, TemporalAddr, DatabaseURL string
	Workspace                                workspace.Workspace
	NewKeys                                  []workspace.NewKey
	CredentialsPath                          string
	// ConsolePassword is set when the first admin was just created.
	ConsoleEmail, ConsolePassword string
	// MailboxURL is the dev mailbox's page, when email goes there.
	MailboxURL string
}

func printBanner(w io.Writer, b banner) {
	line := strings.Repeat("─", 72)
	fmt.Fprintf(w, "\n%s\n  Parcours %s is running. Press Ctrl-C to stop.\n%s\n", line, version, line)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  API\t%s\n", b.APIURL)
	fmt.Fprintf(tw, "  Console\t%s/\n", b.APIURL)
	if b.MailboxURL != "" {
		fmt.Fprintf(tw, "  Dev mailbox\t%s (emails are caught here, not sent)\n", b.MailboxURL)
	}
	fmt.Fprintf(tw, "  API reference\t%s/openapi.json\n", b.APIURL)
	if b.UIURL != "" {
		fmt.Fprintf(tw, "  Temporal UI\t%s\n", b.UIURL)
	}
	fmt.Fprintf(tw, "  Temporal\t%s\n", b.TemporalAddr)
	fmt.Fprintf(tw, "  Database\t%s\n", b.DatabaseURL)
	fmt.Fprintf(tw, "  Workspace\t%s (%s)\n", b.Workspace.Slug, b.Workspace.ID)
	tw.Flush()
	fmt.Fprintln(w, line)
	if b.ConsolePassword != "" {
		fmt.Fprintf(w, "  Console sign-in (created now, saved to %s):\n", b.CredentialsPath)
		fmt.Fprintf(w, "  email %s   password %s\n", b.ConsoleEmail, b.ConsolePassword)
		fmt.Fprintln(w, line)
	} else if b.ConsoleEmail != "" {
		fmt.Fprintf(w, "  Console sign-in: %s, password in %s (PARCOURS_CONSOLE_PASSWORD)\n", b.ConsoleEmail, b.CredentialsPath)
		fmt.Fprintln(w, line)
	}
	if len(b.NewKeys) > 0 {
		fmt.Fprintln(w, "  First start: these API keys were created. They are shown this once")
		fmt.Fprintf(w, "  and saved to %s (readable by you only).\n\n", b.CredentialsPath)
		for _, k := range b.NewKeys {
			what := "admin key (management, profile reads)"
			if k.Scope == workspace.ScopeWrite {
				what = "write key (ingestion only, source " + k.Source + ")"
			}
			fmt.Fprintf(w, "  %-40s %s\n", what, k.Secret)
		}
		fmt.Fprintf(w, "\n  Try:  curl -H \"Authorization: Bearer $PARCOURS_ADMIN_KEY\" %s/v1/workspace\n", b.APIURL)
		fmt.Fprintf(w, "        after:  source %s\n", b.CredentialsPath)
	} else if _, err := os.Stat(b.CredentialsPath); err == nil {
		fmt.Fprintf(w, "  API keys: created on first start, saved in %s\n", b.CredentialsPath)
		fmt.Fprintf(w, "  (source it, then: curl -H \"Authorization: Bearer $PARCOURS_ADMIN_KEY\" %s/v1/workspace)\n", b.APIURL)
	} else {
		fmt.Fprintln(w, "  API keys: the workspace already existed in this database; its keys were")
		fmt.Fprintf(w, "  printed when it was created. %s is not here, so ask whoever created it,\n", b.CredentialsPath)
		fmt.Fprintln(w, "  or create a key with an admin key: POST /v1/api-keys.")
	}
	fmt.Fprintln(w, line)
}

func redactURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.Index(u[i+3:], "@"); j >= 0 {
			userinfo := u[i+3 : i+3+j]
			if name, _, ok := strings.Cut(userinfo, ":"); ok {
				return u[:i+3] + name + ":xxxxx" + u[i+3+j:]
			}
		}
	}
	return u
}

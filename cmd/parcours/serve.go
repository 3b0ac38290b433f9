package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/api"
	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/config"
	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/template"
	"github.com/parcours/parcours/pkg/user"
	"github.com/parcours/parcours/pkg/validation"
	"github.com/parcours/parcours/pkg/workspace"
	"github.com/parcours/parcours/worker"
)

// shutdownGrace bounds how long in-flight requests get to finish on Ctrl-C.
const shutdownGrace = 10 * time.Second

// apiServer is a listening API.
type apiServer struct {
	api  *api.Server
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// startAPI listens on cfg.HTTPAddr (failing at once if it is taken) and
// serves the API in the background.
// opts adjust the API's dependencies (the dev mailbox in `parcours dev`).
func startAPI(cfg config.Config, pool *pgxpool.Pool, tc client.Client, uiURL string, logger *slog.Logger, opts ...func(*api.Deps)) (*apiServer, error) {
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (PARCOURS_HTTP_ADDR): %w", cfg.HTTPAddr, err)
	}
	ch, err := newLedger(cfg, pool, logger)
	if err != nil {
		return nil, err
	}
	deps := api.Deps{
		Pool:           pool,
		Workspaces:     workspace.NewStore(pool),
		Ingest:         ingest.NewStore(pool).WithHashes(ch.Settings.Hashes()),
		GroupCommit:    ingest.NewGroupCommitter(context.Background(), ingest.NewStore(pool).WithHashes(ch.Settings.Hashes())),
		Profiles:       profile.NewStore(pool),
		Validation:     validation.NewStore(pool, 5*time.Second),
		Segments:       segment.NewStore(pool, 5*time.Second),
		Journeys:       journey.NewStore(pool, 5*time.Second),
		Channels:       ch.Settings,
		Templates:      ch.Templates,
		Ledger:         ch,
		Temporal:       tc,
		TaskQueue:      cfg.TaskQueue,
		Namespace:      cfg.TemporalNamespace,
		TemporalUIURL:  uiURL,
		Logger:         logger,
		BodyLimit:      cfg.BodyLimit,
		RequestTimeout: cfg.RequestTimeout,
		Version:        version,
		// One Hasher for the process: it bounds the memory of sign-ins.
		Users:         user.NewStore(pool, user.Options{Hasher: user.NewHasher(cfg.PasswordHashConcurrency), IdleTimeout: cfg.SessionIdleTimeout}),
		TrustProxy:    cfg.TrustProxy,
		WriteKeyLimit: ingest.NewKeyLimiter(cfg.WriteKeyRate, cfg.WriteKeyBurst),
		ProfileCap:    ingest.NewProfileCap(cfg.ProfileEventRate),
	}
	for _, o := range opts {
		o(&deps)
	}
	a := api.New(deps)
	s := &apiServer{
		api:  a,
		srv:  newHTTPServer(a.Handler(), cfg.RequestTimeout),
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// newHTTPServer is the API's HTTP server: a client gets 10 s to send a
// request's headers and api.ReadTimeout (or the request timeout, if longer)
// for the whole request, so a trickled body cannot hold a connection for
// ever; import uploads get api.ImportReadTimeout (the API lifts the deadline
// once their credentials are checked). Idle keep-alive connections close
// after 2 minutes.
func newHTTPServer(h http.Handler, requestTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       max(api.ReadTimeout, requestTimeout),
		IdleTimeout:       2 * time.Minute,
	}
}

// URL is the API's base URL as a person on this machine would type it.
func (s *apiServer) URL() string {
	addr := s.ln.Addr().(*net.TCPAddr)
	host := "localhost"
	if !addr.IP.IsUnspecified() && !addr.IP.IsLoopback() {
		host = addr.IP.String()
	}
	return fmt.Sprintf("http://%s", net.JoinHostPort(host, fmt.Sprint(addr.Port)))
}

// Shutdown stops accepting requests and waits for in-flight ones.
func (s *apiServer) Shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	// Background imports finish or are marked failed (re-running one is safe).
	return errors.Join(err, s.api.CloseImports(ctx))
}

func runAPI(ctx context.Context, cfg config.Config, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "listen address (PARCOURS_HTTP_ADDR)")
	fs.StringVar(&cfg.TemporalAddress, "temporal-address", cfg.TemporalAddress, "Temporal frontend host:port (TEMPORAL_ADDRESS)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	pool, tc, err := connect(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer pool.Close()
	defer tc.Close()
	s, err := startAPI(cfg, pool, tc, cfg.TemporalUIURL, logger)
	if err != nil {
		return err
	}
	logger.Info("API listening", "url", s.URL())
	select {
	case <-ctx.Done():
	case err := <-s.done:
		return err
	}
	logger.Info("shutting down API")
	return s.Shutdown()
}

func runWorker(ctx context.Context, cfg config.Config, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.TemporalAddress, "temporal-address", cfg.TemporalAddress, "Temporal frontend host:port (TEMPORAL_ADDRESS)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	pool, tc, err := connect(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer pool.Close()
	defer tc.Close()
	if err := worker.EnsureSearchAttributes(ctx, tc, cfg.TemporalNamespace, logger); err != nil {
		return err
	}
	if err := worker.EnsureSegmentSchedule(ctx, tc, cfg.TaskQueue, cfg.SegmentSweep); err != nil {
		return err
	}
	ledger, err := newLedger(cfg, pool, logger)
	if err != nil {
		return err
	}
	w := worker.New(tc, cfg.TaskQueue, &activities.Activities{Pool: pool, Segments: segment.NewStore(pool, 5*time.Second), Ledger: ledger,
		Journeys: journey.NewStore(pool, 5*time.Second), Ingest: ingest.NewStore(pool).WithHashes(ledger.Settings.Hashes())})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	logger.Info("worker polling", "task_queue", cfg.TaskQueue, "namespace", cfg.TemporalNamespace)
	stopHooks := startSegmentWebhooks(ctx, cfg, pool, ledger, logger)
	stopTriggers := startJourneyTriggers(ctx, cfg, pool, tc, logger)
	stopRetention := startRetention(ctx, cfg, pool, logger)
	<-ctx.Done()
	logger.Info("draining worker")
	w.Stop()
	stopHooks()
	stopTriggers()
	stopRetention()
	return nil
}

// newLedger builds the channel stores and the delivery ledger. Without
// PARCOURS_SECRET_KEY channels cannot keep secrets, so none can send.
func newLedger(cfg config.Config, pool *pgxpool.Pool, logger *slog.Logger) (*channel.Ledger, error) {
	var box *channel.Box
	if cfg.SecretKey != nil {
		var err error
		if box, err = channel.NewBox(cfg.SecretKey); err != nil {
			return nil, err
		}
	} else {
		logger.Warn("PARCOURS_SECRET_KEY is not set: channels cannot be configured or send, and suppressed addresses and erased identifiers are hashed without a key (pkg/addrhash)")
	}
	if cfg.PublicURL == "" {
		logger.Warn("PARCOURS_PUBLIC_URL is not set: emails go out without unsubscribe links")
	}
	return &channel.Ledger{
		Pool:      pool,
		Settings:  channel.NewStore(pool, box).AllowProviderHosts(cfg.ProviderURLAllow...),
		Templates: template.NewStore(pool),
		Profiles:  profile.NewStore(pool),
		SendGrid:  channel.NewSendGrid(cfg.OutboundAllow),
		Webhook:   channel.NewWebhook(cfg.OutboundAllow),
		Twilio:    channel.NewTwilio(cfg.OutboundAllow),
		PublicURL: cfg.PublicURL,
		Logger:    logger,
	}, nil
}

// connect opens the database pool and the Temporal client of a standalone
// api or worker process. Migrations are not applied here: run
// `parcours migrate up` (a one-shot job in production) first.
func connect(ctx context.Context, cfg config.Config, logger *slog.Logger) (*pgxpool.Pool, client.Client, error) {
	if cfg.TemporalAddress == "" {
		cfg.TemporalAddress = "localhost:7233"
	}
	pool, err := openPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	tc, err := dialTemporal(ctx, cfg, cfg.TemporalAddress, logger)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return pool, tc, nil
}

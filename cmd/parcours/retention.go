package main

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parcours/parcours/pkg/config"
	"github.com/parcours/parcours/pkg/retention"
)

// startRetention runs the retention sweep (pkg/retention) in the background
// of a worker process: the quarantine after PARCOURS_QUARANTINE_RETENTION,
// provider events after PARCOURS_PROVIDER_EVENT_RETENTION, once an hour.
// stop waits for the sweep under way.
func startRetention(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, logger *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	s := &retention.Sweeper{
		Pool:   pool,
		Policy: retention.Policy{Quarantine: cfg.QuarantineRetention, ProviderEvents: cfg.ProviderEventRetention},
		Logger: logger,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

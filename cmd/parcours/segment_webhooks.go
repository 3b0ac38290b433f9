package main

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/config"
	"github.com/parcours/parcours/pkg/segment"
)

// startSegmentWebhooks runs, in the worker process, the dispatcher that
// posts segment entries and exits to their webhooks (never on the ingest
// path). The returned stop cancels it and waits until no POST is in flight.
func startSegmentWebhooks(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, ledger *channel.Ledger, logger *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	d := &segment.Dispatcher{
		Pool:    pool,
		Box:     ledger.Settings.Box(),
		Webhook: channel.NewWebhook(cfg.OutboundAllow),
		Logger:  logger,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

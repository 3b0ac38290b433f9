package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"github.com/parcours/parcours/pkg/config"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/trigger"
)

// startJourneyTriggers runs, in the worker process, the dispatcher that
// makes the journey starts the API could not (its process died after
// storing the record, or Temporal was unreachable): journey_triggers. The
// returned stop cancels it and waits until no start is in flight.
func startJourneyTriggers(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, tc client.Client, logger *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	d := &trigger.Dispatcher{
		Starter: &trigger.Starter{Temporal: tc, TaskQueue: cfg.TaskQueue,
			Journeys: journey.NewStore(pool, 5*time.Second), Segments: segment.NewStore(pool, 5*time.Second)},
		Logger: logger,
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

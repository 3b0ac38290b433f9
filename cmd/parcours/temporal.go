package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/parcours/parcours/pkg/config"
	"github.com/parcours/parcours/pkg/devserver"
)

// runTemporal serves `parcours dev`'s embedded Temporal server alone, with
// its SQLite store in the data directory, until the process is stopped. It
// is not listed in the usage: it exists for tests and the `make soak` rig
// (bench/soak), which run Temporal, the API and the worker as separate
// processes and kill them one at a time. A killed server restarted on the
// same data directory resumes every workflow, timer and activity. In
// production, run a real Temporal cluster (docs/operations.md).
func runTemporal(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("temporal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory of temporal.db and temporal.log (PARCOURS_DATA_DIR)")
	fs.IntVar(&cfg.TemporalPort, "port", cfg.TemporalPort, "gRPC port of the frontend (PARCOURS_TEMPORAL_PORT)")
	fs.IntVar(&cfg.TemporalUIPort, "ui-port", cfg.TemporalUIPort, "Web UI port, 0 to disable (PARCOURS_TEMPORAL_UI_PORT)")
	ip := fs.String("ip", "127.0.0.1", "address the frontend and the UI bind to")
	logLevel := fs.String("log-level", "warn", "level of the server's own log, written to <data-dir>/temporal.log")
	pprofPort := fs.Int("pprof-port", 0, "serve the server's Go profiles (/debug/pprof) on this port, 0 for none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("usage: parcours temporal [--data-dir DIR] [--port 7233] [--ui-port 0] [--ip 127.0.0.1]")
	}
	logger := newLogger(cfg, stderr)
	if os.Getenv("GOGC") == "" {
		// The server allocates a lot per task; a heap allowed to grow to
		// five times the live data (not twice) collects less often. This
		// process is Temporal alone, for tests and the soak rig: memory is
		// cheaper there than CPU (docs/operations.md#reliability-make-soak).
		debug.SetGCPercent(400)
	}
	t, err := devserver.StartTemporal(ctx, devserver.TemporalOptions{
		DataDir:   cfg.DataDir,
		IP:        *ip,
		Port:      cfg.TemporalPort,
		UIPort:    cfg.TemporalUIPort,
		Namespace: cfg.TemporalNamespace,
		LogLevel:  *logLevel,
		PProfPort: *pprofPort,
	})
	if err != nil {
		return err
	}
	// A line on stdout that scripts can wait for.
	fmt.Fprintf(stdout, "Temporal listening on %s (namespace %s, state in %s)\n", t.Address(), cfg.TemporalNamespace, filepath.Join(cfg.DataDir, "temporal.db"))
	if t.UIURL() != "" {
		fmt.Fprintf(stdout, "Temporal UI on %s\n", t.UIURL())
	}
	<-ctx.Done()
	logger.Info("stopping Temporal")
	return t.Stop()
}

// Command parcours-soak runs Parcours' reliability scenarios against the
// real binary as separate processes, killing and restarting them, and
// prints the markdown table of figures (see docs/operations.md#reliability-make-soak).
//
//	go run ./bench/cmd/parcours-soak -out bench/SOAK.md -restart-postgres   # what `make soak` runs
//	go run ./bench/cmd/parcours-soak -quick                                 # tiny sizes: does the rig work?
//	go run ./bench/cmd/parcours-soak -only R20 -duration 2m                 # one scenario, a shorter soak
//
// It needs a PostgreSQL it can create databases on: TEST_DATABASE_URL,
// default postgres://localhost:5432/postgres. It builds ./cmd/parcours
// once, creates one throwaway database and drops it at the end, also on
// Ctrl-C. The exit status is 1 when a scenario's must-hold did not hold.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/parcours/parcours/bench/soak"
	"github.com/parcours/parcours/pkg/pgtest"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "parcours-soak:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("parcours-soak", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "tiny sizes ("+strings.Join(soak.QuickIDs, ", ")+"; about two minutes): check that the rig works")
	out := fs.String("out", "", "also write the report to this file (default: stdout only)")
	only := fs.String("only", "", "comma-separated scenarios to run, from "+strings.Join(soak.IDs, ",")+" (default: all)")
	duration := fs.Duration("duration", 0, "length of R20's load (default 10m)")
	attack := fs.Duration("attack", 0, "length of R21's attacks on the console during R20's load (default 10m, 20s with -quick)")
	fuzz := fs.Duration("fuzz", 0, "length of R12's hostile bodies (default 10m, 5s with -quick)")
	restartPG := fs.Bool("restart-postgres", false, "let R5 restart the local PostgreSQL cluster in immediate mode (disturbs everyone using it; `make soak` sets it)")
	cluster := fs.String("postgres-cluster", "", "cluster pg_ctlcluster restarts, as version/name (default: the first under /etc/postgresql)")
	bin := fs.String("bin", "", "use this parcours binary instead of building ./cmd/parcours")
	dir := fs.String("dir", "", "keep binary, logs and Temporal state in this directory (default: a temporary one, kept only when a scenario fails)")
	events := fs.Int("events", 0, "R20: events per second (default 300)")
	starts := fs.Int("starts", 0, "R20: journey starts per second, 2.5 emails each (default 20: the issue's 20 starts/s and 50 sends/s)")
	timeout := fs.Duration("timeout", 0, "stop after this long (default 1h, or 5m with -quick)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sizes, limit := soak.Full, time.Hour
	if *quick {
		sizes, limit = soak.Quick, 5*time.Minute
	}
	if *duration > 0 {
		sizes.R20Duration = *duration
	}
	if *attack > 0 {
		sizes.R21Duration = *attack
	}
	if *fuzz > 0 {
		sizes.R12Duration = *fuzz
	}
	if *events > 0 {
		sizes.R20Events = *events
	}
	if *starts > 0 {
		sizes.R20Starts = *starts
	}
	if *timeout > 0 {
		limit = *timeout
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cfg := soak.Config{
		AdminURL: pgtest.AdminURL(), Sizes: sizes, Bin: *bin, Dir: *dir,
		RestartPostgres: *restartPG, PostgresCluster: *cluster,
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Version: version,
	}
	if *only != "" {
		for _, id := range strings.Split(*only, ",") {
			cfg.Only = append(cfg.Only, strings.ToUpper(strings.TrimSpace(id)))
		}
	}
	rep, err := soak.Run(ctx, cfg)
	if err != nil {
		return err
	}
	var md bytes.Buffer
	if err := rep.Markdown(&md); err != nil {
		return err
	}
	if *out != "" {
		if err := os.WriteFile(*out, md.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	if _, err := os.Stdout.Write(md.Bytes()); err != nil {
		return err
	}
	if failed := rep.Failed(); len(failed) > 0 {
		ids := make([]string, len(failed))
		for i, r := range failed {
			ids[i] = r.ID
		}
		return fmt.Errorf("must-hold violated in %s; logs of every process in %s", strings.Join(ids, ", "), rep.RunDir)
	}
	if ctx.Err() != nil {
		return errors.New("interrupted before every scenario ran")
	}
	return nil
}

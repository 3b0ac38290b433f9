// Command parcours-bench runs Parcours' benchmarks against their baselines in
// one run and prints the markdown report (see docs/benchmarks.md).
//
//	go run ./bench/cmd/parcours-bench                 # full sizes, report on stdout
//	go run ./bench/cmd/parcours-bench -out bench/REPORT.md
//	go run ./bench/cmd/parcours-bench -quick          # tiny sizes: does the harness work?
//	go run ./bench/cmd/parcours-bench -only B3        # one benchmark and its baseline
//
// It needs a PostgreSQL it can create databases on: TEST_DATABASE_URL,
// default postgres://localhost:5432/postgres. It creates one throwaway
// database per run and drops it at the end, also on Ctrl-C.
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
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/parcours/parcours/bench"
	"github.com/parcours/parcours/pkg/pgtest"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "parcours-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("parcours-bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "tiny sizes: check that the harness works (seconds), not the speed")
	out := fs.String("out", "", "also write the report to this file (default: stdout only)")
	only := fs.String("only", "", "comma-separated benchmarks to run, from "+strings.Join(bench.IDs, ",")+" (default: all)")
	poolMax := fs.Int("pool-max-conns", 0, "cap of the API's PostgreSQL pool (default 0: pgxpool's default, as `parcours api` runs)")
	timeout := fs.Duration("timeout", 0, "stop measuring after this long and report what was measured (default 15m, or 2m with -quick)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (API, load driver, Temporal) to this file, for `go tool pprof`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("create CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	cfg := bench.Config{
		AdminURL:     pgtest.AdminURL(),
		Sizes:        bench.Full,
		PoolMaxConns: int32(*poolMax),
		Version:      version,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	limit := 15 * time.Minute // issue 8: `make bench` in at most 15 minutes on 2 cores
	if *quick {
		cfg.Sizes, limit = bench.Quick, 2*time.Minute
	}
	if *timeout > 0 {
		limit = *timeout
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if *only != "" {
		for _, id := range strings.Split(*only, ",") {
			cfg.Only = append(cfg.Only, strings.ToUpper(strings.TrimSpace(id)))
		}
	}
	rep, err := bench.Run(ctx, cfg)
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
		msgs := make([]string, len(failed))
		for i, r := range failed {
			msgs[i] = r.ID + ": " + r.Err.Error()
		}
		return errors.New("some workloads could not be measured:\n  " + strings.Join(msgs, "\n  "))
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return nil
}

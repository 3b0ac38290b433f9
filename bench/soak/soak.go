// Package soak is Parcours' reliability rig (issue 9, `make soak`): the
// long scenarios that kill processes and storm the email provider, each
// asserting what must hold and producing figures.
//
// The rig runs the real binary as separate OS processes — `parcours
// temporal` (the embedded dev Temporal server, SQLite on disk), `parcours
// api` and `parcours worker` — against a throwaway PostgreSQL database, and
// a fake SendGrid in this process speaking the v3 mail/send wire format.
// Workspaces, keys, channels, templates and journeys are made the way an
// operator and a marketer make them: `parcours bootstrap`, then the HTTP
// API. Sends are counted from the fake's log, by delivery id and by their
// business meaning (the person and the journey node); events by messageId
// in PostgreSQL.
//
// Scenarios (docs/operations.md#reliability-make-soak):
//
//	R1   kill -9 the worker before, during and after provider calls
//	R2   a provider slower than the send activity's timeout, or dropping the connection
//	R3   a 429 storm with a reset time, then 500s, then a permanent 400 for one address
//	R5   200 events/s while the API is killed and PostgreSQL restarted in immediate mode
//	R6   kill -9 the Temporal server with timers and activities in flight
//	R12  seeded fuzzing of the ingestion and batch endpoints: no 5xx, bounded memory
//	R20  a bounded soak: events, journey starts and sends per second, the worker killed every minute
//	R21  R20's load while viewer and marketer sessions send hostile sign-ins, rules, templates and partials
package soak

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Sizes bound every scenario of a run.
type Sizes struct {
	// Name is "full" or "quick".
	Name string
	// R1: journey runs, worker kills, and the kill moments drawn from.
	R1Runs, R1Kills int
	R1Moments       []Moment
	// R2: runs whose first email meets a slow or dropping provider.
	R2Runs int
	// R3: runs, then how long the provider answers 429 and then 500.
	R3Runs            int
	R3Storm, R3Errors time.Duration
	// R5: events per second for R5Duration; the API is killed and
	// PostgreSQL restarted (when allowed) during it.
	R5Rate     int
	R5Duration time.Duration
	// R6: journey runs and Temporal server kills.
	R6Runs, R6Kills int
	// R20: events and journey starts per second for R20Duration, the
	// worker killed every R20KillEvery; the backlog must drain within
	// R20Drain once the load stops.
	R20Events, R20Starts   int
	R20Duration            time.Duration
	R20KillEvery, R20Drain time.Duration
	// R12: how long hostile bodies are sent to the ingestion endpoints.
	R12Duration time.Duration
	// R21: how long the console is attacked while R20's load (its rates,
	// kills and drain) runs.
	R21Duration time.Duration
}

// Full are the sizes of `make soak`: about 30 minutes, R20 and R12 being 10
// each. R20 runs the rates: 300 events/s, 20 journey starts/s, and
// 50 sends/s (two emails a run, a third for half the people).
var Full = Sizes{
	Name:   "full",
	R1Runs: 50, R1Kills: 50, R1Moments: []Moment{BeforeProvider, ProviderHolds, AfterLedger, RandomMoment, DuringWait},
	R2Runs: 6,
	R3Runs: 20, R3Storm: 2 * time.Minute, R3Errors: 20 * time.Second,
	R5Rate: 200, R5Duration: 60 * time.Second,
	R6Runs: 20, R6Kills: 3,
	R20Events: 300, R20Starts: 20, R20Duration: 10 * time.Minute, R20KillEvery: time.Minute, R20Drain: 2 * time.Minute,
	R12Duration: 10 * time.Minute,
	R21Duration: 10 * time.Minute,
}

// Quick are the sizes of the Go test that keeps the rig from rotting: R1
// with three runs and one kill (during the wait, where no activity waits
// for its timeout), R6 once, R12 for five seconds, R21 for 20 seconds at
// a tenth of R20's rates with one worker kill. About a minute and a half
// on 2 cores, build included.
var Quick = Sizes{
	Name:   "quick",
	R1Runs: 3, R1Kills: 1, R1Moments: []Moment{DuringWait},
	R6Runs: 3, R6Kills: 1,
	R12Duration: 5 * time.Second,
	R20Events: 30, R20Starts: 2, R20KillEvery: 15 * time.Second, R20Drain: time.Minute,
	R21Duration: 20 * time.Second,
}

// IDs are the scenarios this rig runs, in order.
var IDs = []string{"R1", "R2", "R3", "R5", "R6", "R12", "R20", "R21"}

// QuickIDs are the scenarios of -quick.
var QuickIDs = []string{"R1", "R6", "R12", "R21"}

// Config says what to run and where.
type Config struct {
	// AdminURL is the PostgreSQL server of the throwaway database
	// (TEST_DATABASE_URL, default postgres://localhost:5432/postgres).
	AdminURL string
	Sizes    Sizes
	// Only lists scenarios to run; empty runs those of the sizes (all for
	// full, QuickIDs for quick).
	Only []string
	// Bin is a parcours binary to use instead of building one.
	Bin string
	// RestartPostgres lets R5 restart the local PostgreSQL cluster in
	// immediate mode (pg_ctlcluster). It disturbs every other user of the
	// server, so it is off unless asked for (`make soak` asks).
	RestartPostgres bool
	// PostgresCluster is the "<version>/<name>" pg_ctlcluster restarts;
	// empty finds it under /etc/postgresql.
	PostgresCluster string
	// Dir is where the run keeps binary, logs and Temporal state; empty
	// makes a temporary directory, removed unless a scenario failed.
	Dir    string
	Logger *slog.Logger
	// Version is the soak program's build, for the report.
	Version string
}

// Run starts the rig, runs the scenarios one after another and returns the
// report. err is set only when the rig could not start; a scenario that
// fails is a row with verdict "fails" and its reasons.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ids := cfg.Only
	if len(ids) == 0 {
		ids = IDs
		if cfg.Sizes.Name == "quick" {
			ids = QuickIDs
		}
	}
	for _, id := range ids {
		if !slices.Contains(IDs, id) {
			return nil, fmt.Errorf("unknown scenario %q: pick from %s", id, strings.Join(IDs, ", "))
		}
	}
	rep := &Report{Started: time.Now(), Sizes: cfg.Sizes, Machine: describeMachine(cfg.Version)}
	rig, err := StartRig(ctx, RigConfig{AdminURL: cfg.AdminURL, Bin: cfg.Bin, Dir: cfg.Dir, Logger: log})
	if err != nil {
		return nil, err
	}
	failed := false
	defer func() { rig.Close(failed || cfg.Dir != "") }()
	rep.Setup = time.Since(rep.Started)
	log.Info("rig ready", "dir", rig.Dir, "api", rig.APIURL, "took", rep.Setup.Round(time.Millisecond))

	scenarios := map[string]func(context.Context, *Rig, Config) Row{
		"R1": runR1, "R2": runR2, "R3": runR3, "R5": runR5, "R6": runR6, "R12": runR12, "R20": runR20, "R21": runR21,
	}
	for _, id := range IDs {
		if !slices.Contains(ids, id) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		log.Info("scenario", "id", id)
		t0 := time.Now()
		row := scenarios[id](ctx, rig, cfg)
		row.ID, row.Took = id, time.Since(t0)
		if !row.Pass() {
			failed = true
		}
		log.Info("scenario done", "id", id, "verdict", row.Verdict(), "took", row.Took.Round(time.Second), "problems", len(row.Problems))
		rep.Rows = append(rep.Rows, row)
	}
	rep.Wall = time.Since(rep.Started)
	rep.RunDir = rig.Dir
	return rep, nil
}

package soak

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// runR5 sends R5Rate events per second for R5Duration — half as single
// /v1/track calls, half in /v1/batch calls of ten — while the API process
// is killed (and started again at once) and, when allowed, PostgreSQL is
// restarted in immediate mode (a crash and recovery). Clients retry what
// was not acknowledged with the same messageIds, as Segment libraries do.
// Must hold: every acknowledged event is stored, exactly once; no request
// is refused for being malformed.
func runR5(ctx context.Context, rig *Rig, cfg Config) Row {
	sz := cfg.Sizes
	row := newRow(fmt.Sprintf("%d events/s while the API is killed and PostgreSQL restarted", sz.R5Rate))
	row.Runs = na
	t, err := rig.newTenant(ctx, "r5")
	if err != nil {
		row.fail("set up: %v", err)
		return row
	}
	kills0 := rig.API.Kills

	// The faults, at fixed points of the load.
	type fault struct {
		at   float64 // fraction of the duration
		what string
	}
	faults := []fault{{0.2, "api"}, {0.5, "postgres"}, {0.8, "api"}}
	if !cfg.RestartPostgres {
		faults[1].what = "api"
		row.figure("PostgreSQL not restarted: it disturbs every user of the server; `make soak` (-restart-postgres) does it")
	}
	cluster := cfg.PostgresCluster
	if cluster == "" {
		cluster = findCluster()
	}
	start := time.Now()
	end := start.Add(sz.R5Duration)
	giveUp := end.Add(90 * time.Second)
	var faultsDone sync.WaitGroup
	pgRestarts := 0
	var outages []string
	var faultMu sync.Mutex
	faultsDone.Add(1)
	go func() {
		defer faultsDone.Done()
		for _, f := range faults {
			at := start.Add(time.Duration(f.at * float64(sz.R5Duration)))
			select {
			case <-time.After(time.Until(at)):
			case <-ctx.Done():
				return
			}
			t0 := time.Now()
			var err error
			switch f.what {
			case "api":
				if err = rig.API.Kill(); err == nil {
					err = rig.RestartAPI(ctx)
				}
			case "postgres":
				err = restartPostgres(ctx, cluster)
				if err == nil {
					pgRestarts++
				}
			}
			faultMu.Lock()
			if err != nil {
				row.fail("%s fault: %v", f.what, err)
			} else {
				outages = append(outages, fmt.Sprintf("%s in %s", map[string]string{"api": "API killed, answering again", "postgres": "PostgreSQL restarted (immediate), answering again"}[f.what], time.Since(t0).Round(100*time.Millisecond)))
			}
			faultMu.Unlock()
		}
	}()

	// The load: every 50 ms, rate/20 events.
	var wg sync.WaitGroup
	perTick := max(sz.R5Rate/20, 2)
	tick := time.NewTicker(50 * time.Millisecond)
	n := 0
	for now := range tick.C {
		if now.After(end) || ctx.Err() != nil {
			break
		}
		var batch []Record
		for i := 0; i < perTick; i++ {
			n++
			rec := Record{"type": "track", "messageId": fmt.Sprintf("r5-%d", n), "userId": fmt.Sprintf("v%d", n%200), "event": "Product Viewed",
				"properties": map[string]any{"sku": fmt.Sprintf("sku-%d", n%50), "price": n % 100}}
			if i%2 == 0 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					t.api.send(ctx, t.Traffic, t.write, "/v1/track", []Record{rec}, giveUp)
				}()
			} else {
				batch = append(batch, rec)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.api.send(ctx, t.Traffic, t.write, "/v1/batch", batch, giveUp)
		}()
	}
	tick.Stop()
	offered := time.Since(start)
	wg.Wait()
	faultsDone.Wait()
	row.Kills = rig.API.Kills - kills0 + pgRestarts

	accepted, stored, lost, dup, err := waitEvents(ctx, t)
	if err != nil {
		row.fail("check events: %v", err)
		return row
	}
	row.EventsAccepted, row.EventsStored, row.EventsLost, row.EventsDuplicated = accepted, stored, lost, dup
	row.Refused = int(t.Traffic.Refused.Load())
	if lost > 0 {
		row.fail("%d acknowledged events not stored", lost)
	}
	if dup > 0 {
		row.fail("%d events stored twice", dup)
	}
	if r := t.Traffic.Rejected.Load(); r > 0 {
		row.fail("%d requests answered 4xx; last: %s", r, t.Traffic.LastRejection())
	}
	if g := t.Traffic.GaveUp.Load(); g > 0 {
		row.fail("%d events never acknowledged in the 90 s after the load stopped", g)
	}
	row.figure("%d events offered in %s (%.0f/s), %d requests, %d of them answered 5xx", n, offered.Round(time.Second),
		float64(n)/offered.Seconds(), t.Traffic.Requests.Load(), t.Traffic.Status5xx.Load())
	row.figure("records stored by a request whose answer was lost, acknowledged as duplicates on retry: %d", t.Traffic.Redone.Load())
	sort.Strings(outages)
	row.figure("%s", strings.Join(outages, "; "))
	return row
}

// waitEvents counts events; PostgreSQL may still be recovering.
func waitEvents(ctx context.Context, t *tenant) (accepted, stored, lost, dup int, err error) {
	err = waitUntil(ctx, time.Minute, "PostgreSQL to answer", func() (bool, error) {
		accepted, stored, lost, dup, err = t.checkEvents(ctx)
		return err == nil, nil
	})
	if err != nil {
		return 0, 0, 0, 0, err
	}
	return accepted, stored, lost, dup, nil
}

// findCluster returns the first "<version>/<name>" under /etc/postgresql.
func findCluster() string {
	versions, _ := os.ReadDir("/etc/postgresql")
	for _, v := range versions {
		names, _ := os.ReadDir(filepath.Join("/etc/postgresql", v.Name()))
		for _, n := range names {
			if n.IsDir() {
				return v.Name() + "/" + n.Name()
			}
		}
	}
	return ""
}

// restartPostgres restarts the local cluster in immediate mode: no
// checkpoint, every connection cut, crash recovery at start.
func restartPostgres(ctx context.Context, cluster string) error {
	version, name, ok := strings.Cut(cluster, "/")
	if !ok {
		return fmt.Errorf("no PostgreSQL cluster to restart (none under /etc/postgresql; set -postgres-cluster)")
	}
	cmd := exec.CommandContext(ctx, "pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart", "-m", "immediate")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctlcluster %s %s restart -m immediate: %w\n%s", version, name, err, out)
	}
	return nil
}

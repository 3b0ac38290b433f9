package soak

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/api/workflowservice/v1"
)

// runR20 is the bounded soak: for R20Duration, R20Starts people a second
// sign up (an identify and a "Signed Up" track, each starting a welcome
// run that sends two emails three seconds apart, and a third to the half
// of them on the pro plan) and the rest of
// R20Events a second are product views posted in batches; the worker is
// killed with SIGKILL every R20KillEvery and started again at once. Must
// hold: no 5xx; every acknowledged event stored once; one run per person,
// every run completed; every step sent once (or left unknown by a kill)
// and never twice; the backlog drained within R20Drain of the load's end.
func runR20(ctx context.Context, rig *Rig, cfg Config) Row {
	sz := cfg.Sizes
	row := newRow(fmt.Sprintf("%s soak: %d events/s, %d journey starts/s, %d sends/s, worker killed every %s",
		sz.R20Duration, sz.R20Events, sz.R20Starts, sz.R20Starts*5/2, sz.R20KillEvery))
	soakLoad(ctx, rig, cfg, "r20", sz.R20Duration, &row, nil)
	return row
}

// alongside runs beside soakLoad's traffic, on the load's tenant, until end,
// and returns what failed and what it measured; soakLoad waits for it
// before checking what must hold.
type alongside func(ctx context.Context, t *tenant, end time.Time) (problems, figures []string)

// soakLoad is R20's traffic for duration on a new tenant named slug, with
// the worker killed every R20KillEvery, and its checks written to row;
// with (may be nil) runs beside it (R21's attacks).
func soakLoad(ctx context.Context, rig *Rig, cfg Config, slug string, duration time.Duration, row *Row, with alongside) {
	sz := cfg.Sizes
	sends := sz.R20Starts * 5 / 2 // two emails a run, a third for half the people
	t, err := rig.newProWelcomeTenant(ctx, slug, "3s")
	if err != nil {
		row.fail("set up: %v", err)
		return
	}
	defer t.Close()
	kills0 := rig.Worker.Kills

	start := time.Now()
	end := start.Add(duration)
	var beside sync.WaitGroup
	var besideProblems, besideFigures []string
	if with != nil {
		beside.Add(1)
		go func() {
			defer beside.Done()
			besideProblems, besideFigures = with(ctx, t, end)
		}()
	}
	giveUp := end.Add(2 * time.Minute)
	stopKills := make(chan struct{})
	var killer sync.WaitGroup
	killer.Add(1)
	go func() {
		defer killer.Done()
		tk := time.NewTicker(sz.R20KillEvery)
		defer tk.Stop()
		for {
			select {
			case <-tk.C:
				if time.Now().After(end) {
					return
				}
				if err := rig.KillWorker(ctx); err != nil {
					row.fail("restart the worker: %v", err)
					return
				}
			case <-stopKills:
				return
			case <-ctx.Done():
				return
			}
		}
	}()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var entered []string
	var startsDone atomic.Int64
	filler := max(sz.R20Events-2*sz.R20Starts, 0) // events/s besides sign-ups
	var startAcc, fillAcc float64
	users, views := 0, 0
	tick := time.NewTicker(100 * time.Millisecond)
	for now := range tick.C {
		if now.After(end) || ctx.Err() != nil {
			break
		}
		for startAcc += float64(sz.R20Starts) / 10; startAcc >= 1; startAcc-- {
			users++
			u := fmt.Sprintf("u%d", users)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if t.enter(ctx, u, giveUp) {
					mu.Lock()
					entered = append(entered, u)
					mu.Unlock()
				}
				startsDone.Add(1)
			}()
		}
		var batch []Record
		for fillAcc += float64(filler) / 10; fillAcc >= 1; fillAcc-- {
			views++
			batch = append(batch, Record{"type": "track", "messageId": fmt.Sprintf("pv-%d", views), "anonymousId": fmt.Sprintf("a%d", views%5000),
				"event": "Product Viewed", "properties": map[string]any{"sku": fmt.Sprintf("sku-%d", views%300)}})
		}
		if len(batch) > 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.api.send(ctx, t.Traffic, t.write, "/v1/batch", batch, giveUp)
			}()
		}
	}
	tick.Stop()
	loadEnd := time.Now()
	wg.Wait()
	close(stopKills)
	killer.Wait()
	beside.Wait()
	row.Problems = append(row.Problems, besideProblems...)
	row.Figures = append(row.Figures, besideFigures...)
	row.Kills = rig.Worker.Kills - kills0
	row.Runs = len(entered)
	took := loadEnd.Sub(start)

	// The backlog: every run ended, none running in Temporal.
	running := func() int64 {
		n, err := rig.TC.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowType = 'parcours.Journey' AND ExecutionStatus = 'Running' AND ParcoursWorkspace = '%s'", t.ID)})
		if err != nil {
			return -1
		}
		return n.Count
	}
	drained := waitUntil(ctx, sz.R20Drain-time.Since(loadEnd), "the backlog to drain", func() (bool, error) {
		runs, _, ended, err := t.runStatus(ctx)
		return err == nil && runs >= len(entered) && ended >= runs && running() == 0, nil
	})
	drain := time.Since(loadEnd)
	if drained != nil {
		runs, _, ended, _ := t.runStatus(ctx)
		row.fail("backlog not drained %s after the load stopped: %d runs of %d, %d ended", sz.R20Drain, runs, len(entered), ended)
		// Wait longer for the final figures.
		if err := waitUntil(ctx, 10*time.Minute, "the backlog to drain", func() (bool, error) {
			runs, _, ended, err := t.runStatus(ctx)
			return err == nil && runs >= len(entered) && ended >= runs && running() == 0, nil
		}); err == nil {
			row.figure("backlog drained %s after the load stopped", time.Since(loadEnd).Round(time.Second))
		}
	}
	if n := running(); n != 0 {
		row.fail("%d runs still running in Temporal (-1: could not ask)", n)
	}
	runs, completed, _, err := t.runStatus(ctx)
	if err != nil {
		row.fail("read runs: %v", err)
	} else if runs != len(entered) || completed != len(entered) {
		row.fail("%d people signed up, %d runs, %d completed", len(entered), runs, completed)
	}
	s, err := t.checkSends(ctx, entered, nil)
	if err != nil {
		row.fail("check sends: %v", err)
	} else {
		row.addSends(s)
	}
	accepted, stored, lost, dup, err := waitEvents(ctx, t)
	if err != nil {
		row.fail("check events: %v", err)
	} else {
		row.EventsAccepted, row.EventsStored, row.EventsLost, row.EventsDuplicated = accepted, stored, lost, dup
		if lost > 0 || dup > 0 {
			row.fail("events: %d acknowledged and lost, %d stored twice", lost, dup)
		}
	}
	tr := t.Traffic
	row.Refused = int(tr.Refused.Load())
	if n := tr.Status5xx.Load(); n > 0 {
		row.fail("%d answers 5xx", n)
	}
	if n := tr.Rejected.Load(); n > 0 {
		row.fail("%d requests answered 4xx; last: %s", n, tr.LastRejection())
	}
	if n := tr.GaveUp.Load(); n > 0 {
		row.fail("%d records never acknowledged", n)
	}
	sentDuring := 0
	for _, r := range t.Fake.Taken() {
		if r.At.Before(loadEnd) {
			sentDuring++
		}
	}
	row.figure("achieved over %s: %.0f events/s acknowledged, %.1f journey starts/s, %.1f sends/s (asked: %d, %d, %d)",
		took.Round(time.Second), float64(accepted)/took.Seconds(), float64(len(entered))/took.Seconds(), float64(sentDuring)/took.Seconds(),
		sz.R20Events, sz.R20Starts, sends)
	if drained == nil {
		row.figure("backlog drained %s after the load stopped (limit %s)", drain.Round(time.Second), sz.R20Drain)
	}
}

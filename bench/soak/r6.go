package soak

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// runR6 kills the Temporal server with SIGKILL while some runs wait on
// their timer and others are in a send the provider is holding, then
// starts it again on the same SQLite file. Must hold: every run resumes
// and completes; no step is sent twice.
func runR6(ctx context.Context, rig *Rig, cfg Config) Row {
	sz := cfg.Sizes
	row := newRow("kill -9 the Temporal server with timers and sends in flight")
	row.Runs = sz.R6Runs
	t, err := rig.newWelcomeTenant(ctx, "r6", "3s")
	if err != nil {
		row.fail("set up: %v", err)
		return row
	}
	defer t.Close()
	// Every answer takes a second: sends are in flight when the server dies.
	t.Fake.SetPlan(func(Request) Decision { return Decision{Fault: Accept, Delay: time.Second} })
	arrivals := t.Fake.Arrivals()

	users := make([]string, sz.R6Runs)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i+1)
	}
	kills0 := rig.Temporal.Kills
	var wg sync.WaitGroup
	enter := func(batch []string) {
		giveUp := time.Now().Add(2 * time.Minute)
		for _, u := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.enter(ctx, u, giveUp)
			}()
		}
	}
	waiting, inFlight := 0, 0
	for k := 0; k < sz.R6Kills; k++ {
		lo, hi := k*len(users)/sz.R6Kills, (k+1)*len(users)/sz.R6Kills
		batch := users[lo:hi]
		// The first of the round goes ahead to its timer; the others are
		// then let in, and the server dies while the provider holds one of
		// their messages.
		first, rest := batch[:1], batch[1:]
		enter(first)
		if err := waitUntil(ctx, 30*time.Second, "a run on its timer", func() (bool, error) {
			n, err := t.countAtNode(ctx, first, "wait_2_days")
			return n == 1, err
		}); err != nil {
			row.fail("%v", err)
		}
		for drained := false; !drained; {
			select {
			case <-arrivals:
			default:
				drained = true
			}
		}
		enter(rest)
		if len(rest) > 0 {
			timeout := time.After(30 * time.Second)
		wait:
			for {
				select {
				case r := <-arrivals:
					if u, _ := t.userOf(r); slices.Contains(rest, u) {
						break wait
					}
				case <-timeout:
					row.fail("no send reached the provider in 30 s")
					break wait
				case <-ctx.Done():
					return row
				}
			}
		}
		n, _ := t.countAtNode(ctx, batch, "wait_2_days")
		waiting += n
		inFlight += len(t.heldNow())
		if err := rig.KillTemporal(ctx, time.Second); err != nil {
			row.fail("restart Temporal: %v", err)
			return row
		}
	}
	wg.Wait()
	row.Kills = rig.Temporal.Kills - kills0
	if err := t.waitRuns(ctx, len(users), 4*time.Minute); err != nil {
		row.fail("%v", err)
	}
	checkRuns(ctx, t, &row, users, nil)
	row.figure("at the kills: %d runs on their timer, %d messages held by the provider", waiting, inFlight)
	return row
}

// countAtNode counts the users' runs in progress at node ("": anywhere).
func (t *tenant) countAtNode(ctx context.Context, users []string, node string) (int, error) {
	var n int
	err := t.rig.Pool.QueryRow(ctx, `
		SELECT count(*) FROM journey_runs r JOIN identities i ON i.workspace_id = r.workspace_id AND i.profile_id = r.profile_id AND i.type = 'user_id'
		WHERE r.workspace_id = $1 AND ($3 = '' OR r.node = $3) AND r.ended_at IS NULL AND i.value = ANY($2)`, t.ID, users, node).Scan(&n)
	return n, err
}

// heldNow lists the requests the fake received in the last second (its
// answers take a second: those are still held).
func (t *tenant) heldNow() []Request {
	var out []Request
	for _, r := range t.Fake.Log() {
		if time.Since(r.At) < time.Second {
			out = append(out, r)
		}
	}
	return out
}

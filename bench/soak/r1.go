package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Moment is when R1 kills the worker, relative to a run's first send.
type Moment string

// Kill moments of R1.
const (
	// BeforeProvider: the run has started (its row is recorded), its send
	// is next or has just begun.
	BeforeProvider Moment = "before the provider call"
	// ProviderHolds: the provider has the message and holds its answer.
	ProviderHolds Moment = "provider has the message"
	// AfterLedger: the ledger recorded the message as sent; the activity
	// may not have reported it to Temporal yet.
	AfterLedger Moment = "after the ledger recorded it"
	// RandomMoment: 0 to 4 s after the trigger.
	RandomMoment Moment = "at a random moment"
	// DuringWait: a second into the runs' wait (no activity in flight).
	DuringWait Moment = "during the wait"
)

// runR1 kills the worker with SIGKILL at chosen moments around sends and
// restarts it at once. Must hold: every run completes; no step is sent
// twice; every step is sent once, or its delivery is unknown (the window
// docs/delivery.md documents) and then sent at most once.
func runR1(ctx context.Context, rig *Rig, cfg Config) Row {
	sz := cfg.Sizes
	row := newRow("kill -9 the worker around sends")
	row.Runs = sz.R1Runs
	t, err := rig.newWelcomeTenant(ctx, "r1", "3s")
	if err != nil {
		row.fail("set up: %v", err)
		return row
	}
	defer t.Close()
	// The provider holds each answer a second, so that a kill can land
	// between its taking the message and the ledger hearing of it.
	t.Fake.SetPlan(func(Request) Decision { return Decision{Fault: Accept, Delay: time.Second} })
	arrivals := t.Fake.Arrivals()

	users := make([]string, sz.R1Runs)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i+1)
	}
	kills0 := rig.Worker.Kills
	// Every moment as often as the others, in a random order.
	order := slices.Clone(sz.R1Moments)
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	moments := map[Moment]int{}
	missed := 0
	var wg sync.WaitGroup
	for k := 0; k < sz.R1Kills; k++ {
		// This round's runs: an even share of the rest.
		lo, hi := k*len(users)/sz.R1Kills, (k+1)*len(users)/sz.R1Kills
		batch := users[lo:hi]
		m := order[k%len(order)]
		for drained := false; !drained; {
			select {
			case <-arrivals:
			default:
				drained = true
			}
		}
		giveUp := time.Now().Add(2 * time.Minute)
		for _, u := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.enter(ctx, u, giveUp)
			}()
		}
		if err := r1Moment(ctx, t, m, batch, arrivals); err != nil {
			missed++ // killed anyway: still a kill at some moment
		}
		moments[m]++
		if err := rig.KillWorker(ctx); err != nil {
			row.fail("restart the worker: %v", err)
			return row
		}
	}
	wg.Wait()
	row.Kills = rig.Worker.Kills - kills0
	// A run whose send was cut waits for the activity's start-to-close
	// timeout (1 minute) before its next attempt.
	if err := t.waitRuns(ctx, len(users), 4*time.Minute); err != nil {
		row.fail("%v", err)
	}
	checkRuns(ctx, t, &row, users, nil)
	var ms []string
	for m, n := range moments {
		ms = append(ms, fmt.Sprintf("%s ×%d", m, n))
	}
	sort.Strings(ms)
	row.figure("kills: %s", strings.Join(ms, ", "))
	if missed > 0 {
		row.figure("%d kills came after waiting 20 s for their moment", missed)
	}
	return row
}

// checkRuns asserts what every journey scenario must hold: each user's
// run completed (in the journey_runs table and in Temporal), each step was
// sent once or left unknown and never twice, every acknowledged event is
// stored once. failing users' messages must be refused, not sent.
func checkRuns(ctx context.Context, t *tenant, row *Row, users []string, failing map[string]bool) {
	runs, completed, _, err := t.runStatus(ctx)
	if err != nil {
		row.fail("read runs: %v", err)
		return
	}
	if runs != len(users) || completed != len(users) {
		row.fail("%d runs, %d completed; want %d completed", runs, completed, len(users))
	}
	if problems, err := t.checkTemporal(ctx); err != nil {
		row.fail("check Temporal: %v", err)
	} else {
		for i, p := range problems {
			if i == 5 {
				row.fail("… %d more runs not completed in Temporal", len(problems)-5)
				break
			}
			row.fail("%s", p)
		}
	}
	s, err := t.checkSends(ctx, users, failing)
	if err != nil {
		row.fail("check sends: %v", err)
		return
	}
	row.addSends(s)
	accepted, stored, lost, dup, err := t.checkEvents(ctx)
	if err != nil {
		row.fail("check events: %v", err)
		return
	}
	row.EventsAccepted, row.EventsStored, row.EventsLost, row.EventsDuplicated = accepted, stored, lost, dup
	if lost > 0 || dup > 0 {
		row.fail("events: %d acknowledged and lost, %d stored twice", lost, dup)
	}
	row.Refused = int(t.Traffic.Refused.Load())
}

// r1Moment waits for the moment to kill (at most 20 s).
func r1Moment(ctx context.Context, t *tenant, m Moment, batch []string, arrivals <-chan Request) error {
	const patience = 20 * time.Second
	switch m {
	case BeforeProvider:
		return waitUntil(ctx, patience, "the runs to start", func() (bool, error) {
			n, err := t.countAtNode(ctx, batch, "")
			return n > 0, err
		})
	case ProviderHolds:
		timeout := time.After(patience)
		for {
			select {
			case r := <-arrivals:
				if u, _ := t.userOf(r); slices.Contains(batch, u) {
					return nil
				}
			case <-timeout:
				return fmt.Errorf("no send reached the provider in %s", patience)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	case AfterLedger:
		return waitUntil(ctx, patience, "a delivery recorded as sent", func() (bool, error) {
			var n int
			err := t.rig.Pool.QueryRow(ctx, `
				SELECT count(*) FROM deliveries d JOIN identities i ON i.workspace_id = d.workspace_id AND i.profile_id = d.profile_id AND i.type = 'user_id'
				WHERE d.workspace_id = $1 AND d.status = 'sent' AND i.value = ANY($2)`, t.ID, batch).Scan(&n)
			return n > 0, err
		})
	case RandomMoment:
		select {
		case <-time.After(time.Duration(rand.Int64N(int64(4 * time.Second)))):
		case <-ctx.Done():
		}
		return nil
	case DuringWait:
		err := waitUntil(ctx, patience, "the runs to wait", func() (bool, error) {
			n, err := t.countAtNode(ctx, batch, "wait_2_days")
			return n == len(batch), err
		})
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
		return err
	}
	return fmt.Errorf("unknown moment %q", m)
}

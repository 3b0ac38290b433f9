package soak

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// runR3 has the provider answer 429 with a reset time for R3Storm, then
// 500 for R3Errors, then accept every message but those to one address,
// which it refuses for good (400). Must hold: every other message is sent
// exactly once and none is even tried again before the reset time; the
// refused ones are recorded as failed and never tried again; every run
// completes.
func runR3(ctx context.Context, rig *Rig, cfg Config) Row {
	sz := cfg.Sizes
	row := newRow("429 storm with a reset time, then 500s, then a permanent 400 for one address")
	row.Runs = sz.R3Runs
	t, err := rig.newWelcomeTenant(ctx, "r3", "3s")
	if err != nil {
		row.fail("set up: %v", err)
		return row
	}
	defer t.Close()
	users := make([]string, sz.R3Runs)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i+1)
	}
	bad := users[0]
	// X-RateLimit-Reset is in whole seconds.
	reset := time.Now().Add(sz.R3Storm).Truncate(time.Second).Add(time.Second)
	errorsUntil := reset.Add(sz.R3Errors)
	t.Fake.SetPlan(func(r Request) Decision {
		switch {
		case r.At.Before(reset):
			return Decision{Fault: RateLimit, Reset: reset}
		case r.At.Before(errorsUntil):
			return Decision{Fault: ServerError}
		case r.To == t.email(bad):
			return Decision{Fault: BadRequest}
		}
		return Decision{Fault: Accept}
	})
	var wg sync.WaitGroup
	giveUp := time.Now().Add(2 * time.Minute)
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.enter(ctx, u, giveUp)
		}()
	}
	wg.Wait()
	if err := t.waitRuns(ctx, len(users), time.Until(errorsUntil)+4*time.Minute); err != nil {
		row.fail("%v", err)
	}
	failing := map[string]bool{bad: true}
	checkRuns(ctx, t, &row, users, failing)
	if s, err := t.checkSends(ctx, users, failing); err == nil {
		if s.Failed != 2 {
			row.fail("%d of %s's 2 messages recorded as failed, want 2", s.Failed, bad)
		}
		if s.Unknown > 0 {
			row.fail("%d deliveries unknown: no worker died, every answer was read", s.Unknown)
		}
	}

	answers := map[Fault]int{}
	before := map[string]int{}
	refusedAt := map[string]time.Time{}
	var firstTaken time.Time
	for _, r := range t.Fake.Log() {
		answers[r.Answer]++
		if r.At.Before(reset) {
			before[r.DeliveryID]++
		}
		if r.Taken && firstTaken.IsZero() {
			firstTaken = r.At
		}
		if r.Taken && r.At.Before(reset) {
			row.fail("a message was taken before the reset time")
		}
		if at, ok := refusedAt[r.DeliveryID]; ok {
			row.fail("delivery %s tried again %s after a permanent 400", r.DeliveryID, r.At.Sub(at).Round(time.Millisecond))
		}
		if r.Answer == BadRequest {
			refusedAt[r.DeliveryID] = r.At
		}
	}
	early := 0
	for _, n := range before {
		if n > 1 {
			early += n - 1
		}
	}
	if early > 0 {
		row.fail("%d calls before the reset time after a 429 had given it", early)
	}
	ds, err := t.deliveries(ctx)
	if err == nil {
		for _, d := range ds {
			if d.user == bad && !strings.Contains(d.reason, "400") {
				row.fail("%s/%s recorded as %q, want the provider's 400", d.user, d.node, d.reason)
			}
		}
	}
	row.Refused = answers[RateLimit] + answers[ServerError] + answers[BadRequest]
	row.figure("provider answered 429 ×%d (reset %s after the start), 500 ×%d, 400 ×%d, 202 ×%d; no call before the reset once told to wait",
		answers[RateLimit], sz.R3Storm, answers[ServerError], answers[BadRequest], answers[Accept])
	if !firstTaken.IsZero() {
		row.figure("first message taken %s after the reset (the 500s lasted %s)", firstTaken.Sub(reset).Round(100*time.Millisecond), sz.R3Errors)
	}
	return row
}

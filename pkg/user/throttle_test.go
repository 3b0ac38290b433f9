package user_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/user"
)

// clock is a settable time for the Throttle.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// guess makes one attempt that fails; it returns the refusal, if any.
func guess(th *user.Throttle, addr, email string) *user.Throttled {
	a, err := th.Begin(addr, email)
	var thr *user.Throttled
	if errors.As(err, &thr) {
		return thr
	}
	a.Failed()
	return nil
}

// Five wrong passwords for an account, then waits that double: 30 s, 1 min,
// 2 min ... up to 15 minutes; the right password is refused too while the
// account waits, and a success starts it afresh.
func TestThrottleBacksOffPerAccount(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	th := user.NewThrottle(user.ThrottleOptions{Now: c.now})
	for i := range user.AccountFreeFailures {
		if r := guess(th, fmt.Sprintf("192.0.2.%d", i), "Mia@Shop.example"); r != nil {
			t.Fatalf("failure %d refused: %v", i+1, r)
		}
	}
	// From any address, in any case: the account waits.
	r := guess(th, "198.51.100.7", "mia@shop.example ")
	if r == nil || !r.Account || r.Wait != 30*time.Second {
		t.Fatalf("6th attempt: %+v, want the account to wait 30s", r)
	}
	for _, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 15 * time.Minute, 15 * time.Minute} {
		c.t = c.t.Add(time.Hour - time.Second) // just under ThrottleForget
		if r := guess(th, "198.51.100.7", "mia@shop.example"); r != nil {
			t.Fatalf("after the wait: %+v", r)
		}
		if r := guess(th, "198.51.100.7", "mia@shop.example"); r == nil || r.Wait != want {
			t.Fatalf("next attempt: %+v, want a wait of %s", r, want)
		}
	}
	// A right password after the wait clears the account.
	c.t = c.t.Add(15 * time.Minute)
	a, err := th.Begin("198.51.100.7", "mia@shop.example")
	if err != nil {
		t.Fatal(err)
	}
	a.Succeeded()
	for i := range user.AccountFreeFailures {
		if r := guess(th, "203.0.113.1", "mia@shop.example"); r != nil {
			t.Fatalf("after a success, failure %d refused: %v", i+1, r)
		}
	}
	// An hour without failures forgets them.
	c.t = c.t.Add(user.ThrottleForget)
	if r := guess(th, "203.0.113.1", "mia@shop.example"); r != nil {
		t.Fatalf("an hour later: %v", r)
	}
}

// Concurrent guesses count before their answer: only the free failures get
// through at once.
func TestThrottleCountsAttemptsInFlight(t *testing.T) {
	t.Parallel()
	th := user.NewThrottle(user.ThrottleOptions{})
	var let []*user.Attempt
	for range 30 {
		if a, err := th.Begin("192.0.2.1", "mia@shop.example"); err == nil {
			let = append(let, a)
		}
	}
	if len(let) != user.AccountFreeFailures {
		t.Fatalf("%d attempts let through at once, want %d", len(let), user.AccountFreeFailures)
	}
	// Attempts that checked nothing (server busy) give their failure back.
	for _, a := range let {
		a.Abandoned()
	}
	if _, err := th.Begin("192.0.2.1", "mia@shop.example"); err != nil {
		t.Fatalf("after abandoned attempts: %v", err)
	}
}

// An address takes more failures (an office shares one), across accounts;
// signing in to one's own account gives back that attempt only. IPv6
// addresses count by /64.
func TestThrottlePerAddress(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	th := user.NewThrottle(user.ThrottleOptions{Now: c.now})
	for i := range user.AddressFreeFailures {
		if i == 10 {
			a, err := th.Begin("2001:db8:1:2::5", "me@shop.example")
			if err != nil {
				t.Fatal(err)
			}
			a.Succeeded()
		}
		addr := fmt.Sprintf("2001:db8:1:2::%x", i+100) // same /64
		if r := guess(th, addr, fmt.Sprintf("user%d@shop.example", i)); r != nil {
			t.Fatalf("failure %d refused: %v", i+1, r)
		}
	}
	r := guess(th, "2001:db8:1:2:ffff::1", "someone@shop.example")
	if r == nil || r.Account || r.Wait != 30*time.Second {
		t.Fatalf("%d failures from one /64, then: %+v, want the address to wait 30s", user.AddressFreeFailures, r)
	}
	if r := guess(th, "2001:db8:1:3::1", "someone@shop.example"); r != nil {
		t.Fatalf("another /64: %v", r)
	}
	if r := guess(th, "192.0.2.1", "someone@shop.example"); r != nil {
		t.Fatalf("an IPv4 address: %v", r)
	}
}

// Memory is bounded: past MaxKeys the least recently used are forgotten.
func TestThrottleIsBounded(t *testing.T) {
	t.Parallel()
	th := user.NewThrottle(user.ThrottleOptions{MaxKeys: 100})
	for i := range 1000 {
		guess(th, fmt.Sprintf("10.0.%d.%d", i/256, i%256), fmt.Sprintf("user%d@shop.example", i))
	}
	if accounts, addrs := th.Tracked(); accounts != 100 || addrs != 100 {
		t.Fatalf("tracked %d accounts and %d addresses, want 100 each", accounts, addrs)
	}
}

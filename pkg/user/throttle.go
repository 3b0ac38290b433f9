package user

import (
	"container/list"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Sign-in throttling: a few free failures per account and per network
// address, then waits that double with every further failure. The counts
// live in the memory of each API process (not shared between replicas: N
// replicas behind a load balancer let up to N times the free failures
// through, and a restart forgets them), bounded to ThrottleMaxKeys entries
// per kind, the least recently used forgotten first.

// Limits of sign-in throttling.
const (
	// AccountFreeFailures is how many wrong passwords an account (an email
	// address, whatever the workspace) takes before it must wait.
	AccountFreeFailures = 5
	// AddressFreeFailures is the same for a network address (an IPv4
	// address, or an IPv6 /64): more, since an office shares one.
	AddressFreeFailures = 20
	// ThrottleFirstWait is the wait after the free failures; it doubles
	// with each further failure up to ThrottleMaxWait.
	ThrottleFirstWait = 30 * time.Second
	// ThrottleMaxWait is the longest wait between two attempts.
	ThrottleMaxWait = 15 * time.Minute
	// ThrottleForget is how long after its last failure an account or
	// address starts again with its free failures.
	ThrottleForget = time.Hour
	// ThrottleMaxKeys bounds the accounts and the addresses tracked
	// (each, about 150 bytes an entry: under 10 MiB for both).
	ThrottleMaxKeys = 50_000
)

// Throttled is the answer to an attempt that must wait.
type Throttled struct {
	// Account is true when the account must wait, false when the address.
	Account bool
	// Wait is how long until the next attempt is allowed.
	Wait time.Duration
}

func (e *Throttled) Error() string {
	what := "this address"
	if e.Account {
		what = "this account"
	}
	return fmt.Sprintf("too many failed sign-ins for %s: try again in %s", what, e.Wait.Round(time.Second))
}

// Throttle decides whether a sign-in may be attempted now. It is safe for
// concurrent use.
type Throttle struct {
	now      func() time.Time
	accounts *limiter
	addrs    *limiter
}

// ThrottleOptions adjust a Throttle; the zero value keeps the defaults.
type ThrottleOptions struct {
	// Now is the clock (default time.Now), for tests.
	Now func() time.Time
	// MaxKeys bounds each kind of key (default ThrottleMaxKeys).
	MaxKeys int
}

// NewThrottle returns a Throttle with the documented limits.
func NewThrottle(o ThrottleOptions) *Throttle {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = ThrottleMaxKeys
	}
	return &Throttle{
		now:      o.Now,
		accounts: newLimiter(AccountFreeFailures, o.MaxKeys),
		addrs:    newLimiter(AddressFreeFailures, o.MaxKeys),
	}
}

// Attempt is a sign-in let through. It counts as a failure until told
// otherwise, so that concurrent guesses cannot all pass before the first
// one is known wrong.
type Attempt struct {
	t           *Throttle
	account     string
	addr        string
	undoAccount bool
	done        bool
}

// Begin asks to attempt a sign-in for email from addr (the client's IP
// address). A *Throttled error says who must wait and how long; the
// account is checked first, since its wait is the one the person can act
// on.
func (t *Throttle) Begin(addr, email string) (*Attempt, error) {
	now := t.now()
	a := &Attempt{t: t, account: NormalizeEmail(email), addr: addressKey(addr)}
	if wait := t.accounts.wait(a.account, now); wait > 0 {
		return nil, &Throttled{Account: true, Wait: wait}
	}
	if wait := t.addrs.wait(a.addr, now); wait > 0 {
		return nil, &Throttled{Wait: wait}
	}
	t.accounts.fail(a.account, now)
	t.addrs.fail(a.addr, now)
	return a, nil
}

// Succeeded records that the password was right: the account starts
// afresh, and the address gets its failure back (only that one: signing in
// to one's own account does not clear guesses at others').
func (a *Attempt) Succeeded() {
	if a == nil || a.done {
		return
	}
	a.done = true
	a.t.accounts.reset(a.account)
	a.t.addrs.undo(a.addr)
}

// Failed records a wrong password (already counted: this only ends the
// attempt).
func (a *Attempt) Failed() {
	if a != nil {
		a.done = true
	}
}

// Abandoned records an attempt that checked no password (the server was
// busy, or failed): it does not count.
func (a *Attempt) Abandoned() {
	if a == nil || a.done {
		return
	}
	a.done = true
	a.t.accounts.undo(a.account)
	a.t.addrs.undo(a.addr)
}

// addressKey is the throttling key of an IP address: IPv4 as is, IPv6 by
// its /64 (one customer's network: anyone gets a whole /64).
func addressKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// limiter counts failures per key, LRU-bounded.
type limiter struct {
	free    int
	maxKeys int
	mu      sync.Mutex
	order   *list.List // of *limitEntry, most recently used first
	byKey   map[string]*list.Element
}

type limitEntry struct {
	key      string
	failures int
	last     time.Time
}

func newLimiter(free, maxKeys int) *limiter {
	return &limiter{free: free, maxKeys: maxKeys, order: list.New(), byKey: map[string]*list.Element{}}
}

// backoff is the wait after the given number of failures.
func (l *limiter) backoff(failures int) time.Duration {
	n := failures - l.free
	if n < 0 {
		return 0
	}
	if n >= 10 { // 30 s << 10 is far past the maximum
		return ThrottleMaxWait
	}
	return min(ThrottleFirstWait<<n, ThrottleMaxWait)
}

// entry returns key's entry, moved to the front, forgetting old failures;
// nil if the key is not tracked and create is false.
func (l *limiter) entry(key string, now time.Time, create bool) *limitEntry {
	if el, ok := l.byKey[key]; ok {
		l.order.MoveToFront(el)
		e := el.Value.(*limitEntry)
		if now.Sub(e.last) >= ThrottleForget {
			e.failures = 0
		}
		return e
	}
	if !create {
		return nil
	}
	for l.order.Len() >= l.maxKeys {
		old := l.order.Back()
		l.order.Remove(old)
		delete(l.byKey, old.Value.(*limitEntry).key)
	}
	e := &limitEntry{key: key}
	l.byKey[key] = l.order.PushFront(e)
	return e
}

// wait is how long key must wait before its next attempt (0: none).
func (l *limiter) wait(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(key, now, false)
	if e == nil || e.failures < l.free {
		return 0
	}
	return max(e.last.Add(l.backoff(e.failures)).Sub(now), 0)
}

func (l *limiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(key, now, true)
	e.failures++
	e.last = now
}

func (l *limiter) undo(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.byKey[key]; ok {
		e := el.Value.(*limitEntry)
		e.failures = max(e.failures-1, 0)
	}
}

func (l *limiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.byKey[key]; ok {
		l.order.Remove(el)
		delete(l.byKey, key)
	}
}

// Tracked returns how many accounts and addresses the Throttle holds
// counts for (each at most ThrottleMaxKeys).
func (t *Throttle) Tracked() (accounts, addrs int) {
	t.accounts.mu.Lock()
	accounts = t.accounts.order.Len()
	t.accounts.mu.Unlock()
	t.addrs.mu.Lock()
	addrs = t.addrs.order.Len()
	t.addrs.mu.Unlock()
	return accounts, addrs
}

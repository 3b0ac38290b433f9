package ingest

import (
	"hash/fnv"
	"math"
	"sync"
	"time"

	"github.com/parcours/parcours/pkg/events"
)

// KeyLimiter bounds how many records each write key may send: a token
// bucket per key that refills at rate records a second up to burst. It is
// per process: with N API pods behind a load balancer a key may send up to
// N times the rate. A nil *KeyLimiter allows everything.
type KeyLimiter struct {
	rate, burst float64
	mu          sync.Mutex
	buckets     map[string]*bucket
	takes       int
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewKeyLimiter returns a limiter of rate records a second per key with
// bursts of up to burst records, or nil (no limit) when either is 0.
func NewKeyLimiter(rate, burst int) *KeyLimiter {
	if rate <= 0 || burst <= 0 {
		return nil
	}
	return &KeyLimiter{rate: float64(rate), burst: float64(burst), buckets: map[string]*bucket{}}
}

// Rate is the records a second a key may sustain (0 for a nil limiter).
func (l *KeyLimiter) Rate() int {
	if l == nil {
		return 0
	}
	return int(l.rate)
}

// Burst is the most records a key may send at once after a quiet spell
// (0 for a nil limiter).
func (l *KeyLimiter) Burst() int {
	if l == nil {
		return 0
	}
	return int(l.burst)
}

// Take takes n records (at least one: a request costs something even when
// it carries nothing usable) from key's bucket at now. When the bucket
// lacks them, nothing is taken and retryAfter says when it will hold
// enough. A call larger than the burst costs the burst: it passes on a full
// bucket and empties it, so one huge batch does not lock its key out for
// seconds afterwards (a 500 KB batch holds at most some 8,000 records, so a
// key sending nothing but such batches gets at most about 1.6 times the
// rate).
func (l *KeyLimiter) Take(key string, n int, now time.Time) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	need := math.Min(math.Max(float64(n), 1), l.burst)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.takes++
	if l.takes%4096 == 0 {
		l.prune(now)
	}
	b, found := l.buckets[key]
	if !found {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = math.Min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		b.at = now
	}
	if b.tokens < need {
		return false, time.Duration((need - b.tokens) / l.rate * float64(time.Second))
	}
	b.tokens -= need
	return true, 0
}

// prune forgets the buckets that are full again: they hold nothing a new
// bucket would not.
func (l *KeyLimiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// ProfileCap bounds how many records one person may bring a minute: every
// userId and anonymousId of a workspace is counted over a sliding minute,
// and a record that would take one of its identifiers over the cap is
// refused (its caller keeps it in quarantine). Refused records are not
// counted, so a hammered identifier still gets perMinute records a minute
// through.
//
// The counts live in two count-min sketches (this minute and the last), a
// fixed 2 MiB whatever the number of identifiers; a sketch may overcount an
// identifier by the records of those sharing its cells, which at 4 rows of
// 65,536 cells stays far below any useful cap until tens of millions of
// records a minute. Like KeyLimiter it is per process. A nil *ProfileCap
// admits everything.
type ProfileCap struct {
	limit     float64
	mu        sync.Mutex
	cur, prev *sketch
	start     time.Time // of the current minute
}

const (
	capWindow     = time.Minute
	sketchRows    = 4
	sketchColumns = 1 << 16
)

type sketch [sketchRows][sketchColumns]uint32

// NewProfileCap returns a cap of perMinute records per identifier, or nil
// (no cap) when perMinute is 0.
func NewProfileCap(perMinute int) *ProfileCap {
	if perMinute <= 0 {
		return nil
	}
	return &ProfileCap{limit: float64(perMinute), cur: new(sketch), prev: new(sketch)}
}

// PerMinute is the cap (0 for a nil cap).
func (p *ProfileCap) PerMinute() int {
	if p == nil {
		return 0
	}
	return int(p.limit)
}

// Admit counts m for the workspace at now and reports whether it stays
// within the cap; when it does not, field names the identifier over it
// (userId or anonymousId) and nothing is counted.
func (p *ProfileCap) Admit(workspaceID string, m *events.Message, now time.Time) (ok bool, field string) {
	if p == nil {
		return true, ""
	}
	type id struct {
		field string
		h     uint64
	}
	var ids [2]id
	n := 0
	if m.UserID != "" {
		ids[n] = id{"userId", identifierHash(workspaceID, "u", m.UserID)}
		n++
	}
	if m.AnonymousID != "" {
		ids[n] = id{"anonymousId", identifierHash(workspaceID, "a", m.AnonymousID)}
		n++
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.roll(now)
	// The last minute counts for the part of it still inside the window.
	weight := 1 - float64(now.Sub(p.start))/float64(capWindow)
	for _, x := range ids[:n] {
		if float64(p.prev.count(x.h))*weight+float64(p.cur.count(x.h))+1 > p.limit {
			return false, x.field
		}
	}
	for _, x := range ids[:n] {
		p.cur.add(x.h)
	}
	return true, ""
}

// roll moves to the minute of now.
func (p *ProfileCap) roll(now time.Time) {
	if p.start.IsZero() {
		p.start = now.Truncate(capWindow)
		return
	}
	switch elapsed := now.Sub(p.start); {
	case elapsed < 0: // the clock went back: keep counting in this minute
	case elapsed < capWindow:
	case elapsed < 2*capWindow:
		p.prev, p.cur = p.cur, p.prev
		*p.cur = sketch{}
		p.start = p.start.Add(capWindow)
	default:
		*p.prev, *p.cur = sketch{}, sketch{}
		p.start = now.Truncate(capWindow)
	}
}

func identifierHash(workspaceID, typ, value string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(workspaceID))
	h.Write([]byte{0})
	h.Write([]byte(typ))
	h.Write([]byte{0})
	h.Write([]byte(value))
	return h.Sum64()
}

// cells are the identifier's cell in each row (double hashing).
func cells(h uint64) [sketchRows]uint32 {
	lo, hi := uint32(h), uint32(h>>32)|1
	var out [sketchRows]uint32
	for i := range out {
		out[i] = (lo + uint32(i)*hi) % sketchColumns
	}
	return out
}

func (s *sketch) count(h uint64) uint32 {
	c := cells(h)
	m := uint32(math.MaxUint32)
	for i, col := range c {
		m = min(m, s[i][col])
	}
	return m
}

// add counts one more for h, raising only the lowest cells (conservative
// update: it overcounts less).
func (s *sketch) add(h uint64) {
	c := cells(h)
	m := s.count(h)
	for i, col := range c {
		if s[i][col] == m && m < math.MaxUint32 {
			s[i][col]++
		}
	}
}

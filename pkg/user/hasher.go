package user

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Each argon2id hash holds 19 MiB (argonMemory) for its 20-40 ms: thirty
// sign-ins at once took an API pod past its 512 MiB. A Hasher bounds how
// many run at once; past that a few wait briefly and the others are refused
// at once with ErrBusy, so memory stays bounded whatever arrives.

// Defaults of a Hasher.
const (
	// DefaultHashConcurrency is how many hashes run at once by default:
	// 4 × 19 MiB = 76 MiB at most, and 4 cores' worth of work.
	DefaultHashConcurrency = 4
	// hashWaitersPerSlot bounds the queue: two waiters per running hash.
	hashWaitersPerSlot = 2
	// DefaultHashMaxWait is how long a hash waits for a free slot before
	// ErrBusy: long enough for the queue to drain a few times (a hash takes
	// 20-40 ms), short enough that a browser is answered promptly.
	DefaultHashMaxWait = 2 * time.Second
)

// MaxPasswordLength is the longest password accepted, in characters. It is
// checked before any hashing: nobody types more, and a password manager's
// longest default is 100.
const MaxPasswordLength = 256

// ErrBusy: too many passwords are being checked at this moment; the caller
// should try again in a second or two (HTTP 503 with Retry-After).
var ErrBusy = errors.New("too many passwords are being checked at once")

// ErrPasswordTooLong: the password given at sign-in is longer than
// MaxPasswordLength; it was not checked.
var ErrPasswordTooLong = fmt.Errorf("passwords are at most %d characters", MaxPasswordLength)

// passwordTooLong reports whether a password exceeds MaxPasswordLength
// characters, without counting the runes of a megabyte of input.
func passwordTooLong(password string) bool {
	return len(password) > utf8.UTFMax*MaxPasswordLength || utf8.RuneCountInString(password) > MaxPasswordLength
}

// Hasher runs argon2id hashes and checks with bounded concurrency. It is
// safe for concurrent use; one Hasher should serve a whole process (the
// memory it protects is the process's).
type Hasher struct {
	slots   chan struct{} // one per running hash
	queue   chan struct{} // one per running or waiting hash
	maxWait time.Duration

	inFlight, peak, total, refused atomic.Int64
}

// NewHasher returns a Hasher running at most concurrency hashes at once
// (DefaultHashConcurrency when concurrency < 1), with up to twice as many
// waiting at most DefaultHashMaxWait each.
func NewHasher(concurrency int) *Hasher {
	return NewHasherWait(concurrency, hashWaitersPerSlot*max(concurrency, 1), DefaultHashMaxWait)
}

// NewHasherWait is NewHasher with the queue spelt out: at most waiting
// hashes wait for a slot (0: none, a busy Hasher refuses at once), each for
// at most maxWait.
func NewHasherWait(concurrency, waiting int, maxWait time.Duration) *Hasher {
	if concurrency < 1 {
		concurrency = DefaultHashConcurrency
	}
	return &Hasher{
		slots:   make(chan struct{}, concurrency),
		queue:   make(chan struct{}, concurrency+max(waiting, 0)),
		maxWait: maxWait,
	}
}

// defaultHasher serves Stores built without their own.
var defaultHasher = NewHasher(DefaultHashConcurrency)

// HasherStats are a Hasher's counters since it was made.
type HasherStats struct {
	// InFlight hashes are running now; Peak is the most that ever ran at once.
	InFlight, Peak int64
	// Total hashes ran; Refused were answered ErrBusy.
	Total, Refused int64
}

// Stats returns the Hasher's counters.
func (h *Hasher) Stats() HasherStats {
	return HasherStats{InFlight: h.inFlight.Load(), Peak: h.peak.Load(), Total: h.total.Load(), Refused: h.refused.Load()}
}

// acquire takes a slot, waiting in the bounded queue; release gives it back.
func (h *Hasher) acquire(ctx context.Context) (release func(), err error) {
	select {
	case h.queue <- struct{}{}:
	default:
		h.refused.Add(1)
		return nil, ErrBusy
	}
	select {
	case h.slots <- struct{}{}:
	default:
		timer := time.NewTimer(h.maxWait)
		defer timer.Stop()
		select {
		case h.slots <- struct{}{}:
		case <-timer.C:
			<-h.queue
			h.refused.Add(1)
			return nil, ErrBusy
		case <-ctx.Done():
			<-h.queue
			return nil, ctx.Err()
		}
	}
	n := h.inFlight.Add(1)
	h.total.Add(1)
	for {
		p := h.peak.Load()
		if n <= p || h.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return func() {
		h.inFlight.Add(-1)
		<-h.slots
		<-h.queue
	}, nil
}

// Hash is HashPassword within the Hasher's bounds: ErrBusy when too many
// run, ErrPasswordTooLong past MaxPasswordLength (checked first).
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if passwordTooLong(password) {
		return "", ErrPasswordTooLong
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	defer release()
	return HashPassword(password)
}

// Check is CheckPassword within the Hasher's bounds: ErrBusy when too many
// run, ErrPasswordTooLong past MaxPasswordLength (checked first).
func (h *Hasher) Check(ctx context.Context, hash, password string) (bool, error) {
	if passwordTooLong(password) {
		return false, ErrPasswordTooLong
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("check password: %w", err)
	}
	defer release()
	return CheckPassword(hash, password)
}

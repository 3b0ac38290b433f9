package user_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/user"
)

// Thirty checks at once: at most the Hasher's width run together (each
// holds 19 MiB), a few wait, and the rest are refused at once with ErrBusy
// instead of piling up in memory.
func TestHasherBoundsConcurrentHashes(t *testing.T) {
	t.Parallel()
	hash, err := user.HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	h := user.NewHasherWait(2, 2, 5*time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	start := make(chan struct{})
	for range 30 {
		wg.Go(func() {
			<-start
			_, err := h.Check(context.Background(), hash, "a guess")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				outcomes["checked"]++
			case errors.Is(err, user.ErrBusy):
				outcomes["busy"]++
			default:
				t.Errorf("check: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	st := h.Stats()
	if st.Peak > 2 || st.InFlight != 0 {
		t.Fatalf("stats %+v: more than 2 hashes ran at once", st)
	}
	if outcomes["busy"] == 0 || outcomes["checked"] < 2 || outcomes["busy"]+outcomes["checked"] != 30 || st.Refused != int64(outcomes["busy"]) {
		t.Fatalf("outcomes %v, stats %+v: want some refused, the others checked", outcomes, st)
	}
}

// A waiting hash gives up after the Hasher's wait instead of queueing for
// as long as the server is busy.
func TestHasherWaitIsBounded(t *testing.T) {
	t.Parallel()
	h := user.NewHasherWait(1, 5, 30*time.Millisecond)
	hash, err := user.HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := h.Check(context.Background(), hash, "a guess")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	busy := 0
	for err := range errs {
		if errors.Is(err, user.ErrBusy) {
			busy++
		}
	}
	if busy == 0 {
		t.Fatalf("8 checks through one slot with a 30 ms wait: none refused (%+v)", h.Stats())
	}
}

// A 10 KB password is refused before any hashing, at sign-in and when set.
func TestLongPasswordsAreRefusedWithoutHashing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	long := strings.Repeat("p", 10<<10)
	h := user.NewHasher(1)
	if _, err := h.Check(ctx, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g", long); !errors.Is(err, user.ErrPasswordTooLong) {
		t.Fatalf("check a 10 KB password: %v", err)
	}
	if _, err := h.Hash(ctx, long); !errors.Is(err, user.ErrPasswordTooLong) {
		t.Fatalf("hash a 10 KB password: %v", err)
	}
	// 256 characters of three bytes each are fine: the limit counts characters.
	if _, err := h.Hash(ctx, strings.Repeat("é", user.MaxPasswordLength)); err != nil {
		t.Fatalf("hash %d characters: %v", user.MaxPasswordLength, err)
	}
	if st := h.Stats(); st.Total != 1 {
		t.Fatalf("stats %+v: want only the 256-character password hashed", st)
	}

	s, ws := newWorkspaceUsersHashing(t, h)
	var fe *user.FieldError
	if _, err := s.Create(ctx, ws, "mia@shop.example", "", user.RoleMarketer, long); !errors.As(err, &fe) || fe.Field != "password" || !strings.Contains(fe.Reason, "at most 256") {
		t.Fatalf("create with a 10 KB password: %v", err)
	}
	mia := mustCreate(t, s, ws, "mia@shop.example", user.RoleMarketer)
	before := h.Stats().Total
	if _, err := s.Authenticate(ctx, "", "mia@shop.example", long); !errors.Is(err, user.ErrPasswordTooLong) {
		t.Fatalf("sign in with a 10 KB password: %v", err)
	}
	if err := s.ChangePassword(ctx, ws, mia.ID, testPassword, long, ""); !errors.As(err, &fe) || fe.Field != "new_password" {
		t.Fatalf("change to a 10 KB password: %v", err)
	}
	if err := s.ChangePassword(ctx, ws, mia.ID, long, "a new long password", ""); !errors.As(err, &fe) || fe.Field != "current_password" {
		t.Fatalf("change from a 10 KB current password: %v", err)
	}
	if n := h.Stats().Total - before; n != 0 {
		t.Fatalf("%d hashes ran for 10 KB passwords", n)
	}
}

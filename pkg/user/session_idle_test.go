package user_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/user"
	"github.com/parcours/parcours/pkg/workspace"
)

// A browser left open and unused signs out after the idle timeout, though
// the session's 12 hours are not over; one in use stays signed in.
func TestIdleSessionsEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, ws := newWorkspaceUsers(t)
	mia := mustCreate(t, s, ws, "mia@shop.example", user.RoleMarketer)
	now := time.Now()
	used, _, err := s.StartSession(ctx, mia, now)
	if err != nil {
		t.Fatal(err)
	}
	left, _, err := s.StartSession(ctx, mia, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Duration{20 * time.Minute, 45 * time.Minute, 70 * time.Minute} {
		if _, err := s.Session(ctx, used, now.Add(at)); err != nil {
			t.Fatalf("session in use, at %s: %v", at, err)
		}
	}
	if _, err := s.Session(ctx, left, now.Add(user.DefaultIdleTimeout+time.Minute)); !errors.Is(err, user.ErrNoSession) {
		t.Fatalf("session unused for %s: %v, want ErrNoSession", user.DefaultIdleTimeout+time.Minute, err)
	}
	// Use within a minute is not written again, yet counts from the last write.
	if _, err := s.Session(ctx, used, now.Add(70*time.Minute+30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, used, now.Add(70*time.Minute+user.DefaultIdleTimeout+time.Second)); !errors.Is(err, user.ErrNoSession) {
		t.Fatalf("session idle since its last recorded use: %v", err)
	}
}

// The idle timeout is the Store's to set (PARCOURS_SESSION_IDLE_TIMEOUT).
func TestIdleTimeoutOption(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	w, _, _, err := workspace.NewStore(pool).Bootstrap(ctx, "default", "Default")
	if err != nil {
		t.Fatal(err)
	}
	s := user.NewStore(pool, user.Options{IdleTimeout: 5 * time.Minute})
	mia := mustCreate(t, s, w.ID, "mia@shop.example", user.RoleMarketer)
	now := time.Now()
	token, _, err := s.StartSession(ctx, mia, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, token, now.Add(6*time.Minute)); !errors.Is(err, user.ErrNoSession) {
		t.Fatalf("unused for 6 minutes with a 5-minute idle timeout: %v", err)
	}
}

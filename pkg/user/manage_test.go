package user_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/user"
	"github.com/parcours/parcours/pkg/workspace"
)

const testPassword = "a long enough password"

func newWorkspaceUsers(t *testing.T) (*user.Store, string) {
	t.Helper()
	return newWorkspaceUsersHashing(t, nil)
}

// newWorkspaceUsersHashing is newWorkspaceUsers with the Store's Hasher
// (nil: the default).
func newWorkspaceUsersHashing(t *testing.T, h *user.Hasher) (*user.Store, string) {
	t.Helper()
	pool := pgtest.NewPool(t)
	ws, _, _, err := workspace.NewStore(pool).Bootstrap(context.Background(), "default", "Default")
	if err != nil {
		t.Fatal(err)
	}
	return user.NewStore(pool, user.Options{Hasher: h}), ws.ID
}

func mustCreate(t *testing.T, s *user.Store, ws, email string, role user.Role) user.User {
	t.Helper()
	u, err := s.Create(context.Background(), ws, email, "", role, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestTheLastAdminStays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, ws := newWorkspaceUsers(t)
	ana := mustCreate(t, s, ws, "ana@shop.example", user.RoleAdmin)
	mia := mustCreate(t, s, ws, "mia@shop.example", user.RoleMarketer)

	if _, err := s.SetRole(ctx, ws, ana.ID, user.RoleMarketer); !errors.Is(err, user.ErrLastAdmin) {
		t.Fatalf("demoting the only admin: %v, want ErrLastAdmin", err)
	}
	if _, err := s.Deactivate(ctx, ws, mia.ID, ana.ID, time.Now()); !errors.Is(err, user.ErrLastAdmin) {
		t.Fatalf("deactivating the only admin: %v, want ErrLastAdmin", err)
	}
	var fe *user.FieldError
	if _, err := s.SetRole(ctx, ws, mia.ID, "owner"); !errors.As(err, &fe) || fe.Field != "role" {
		t.Fatalf("unknown role: %v", err)
	}
	if got, _ := s.Get(ctx, ws, ana.ID); got.Role != user.RoleAdmin || got.DisabledAt != nil {
		t.Fatalf("a refused change changed the admin: %+v", got)
	}

	// With a second admin, the first may step down.
	if _, err := s.SetRole(ctx, ws, mia.ID, user.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if u, err := s.SetRole(ctx, ws, ana.ID, user.RoleViewer); err != nil || u.Role != user.RoleViewer {
		t.Fatalf("demoting one of two admins: %+v %v", u, err)
	}
	// A deactivated admin does not count: mia is the only active one.
	if _, err := s.SetRole(ctx, ws, ana.ID, user.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deactivate(ctx, ws, mia.ID, ana.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetRole(ctx, ws, mia.ID, user.RoleMarketer); !errors.Is(err, user.ErrLastAdmin) {
		t.Fatalf("demoting the only active admin: %v, want ErrLastAdmin", err)
	}
}

// Two admins deactivating each other at the same moment: the row locks let
// exactly one through, and the workspace keeps an admin.
func TestAdminsDeactivatingEachOtherAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	s := user.NewStore(pool)
	for round := range 5 {
		ws, _, _, err := workspace.NewStore(pool).Bootstrap(ctx, fmt.Sprintf("race-%d", round), "Race")
		if err != nil {
			t.Fatal(err)
		}
		a := mustCreate(t, s, ws.ID, "a@shop.example", user.RoleAdmin)
		b := mustCreate(t, s, ws.ID, "b@shop.example", user.RoleAdmin)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, pair := range [][2]string{{a.ID, b.ID}, {b.ID, a.ID}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.Deactivate(ctx, ws.ID, pair[0], pair[1], time.Now())
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, user.ErrLastAdmin):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		users, err := s.List(ctx, ws.ID)
		if err != nil {
			t.Fatal(err)
		}
		active := 0
		for _, u := range users {
			if u.Role == user.RoleAdmin && u.DisabledAt == nil {
				active++
			}
		}
		if ok != 1 || active != 1 {
			t.Fatalf("round %d: %d of 2 deactivations succeeded (%v) and %d admins are active; want 1 and 1", round, ok, errs, active)
		}
	}
}

func TestDeactivateReactivateRemove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, ws := newWorkspaceUsers(t)
	ana := mustCreate(t, s, ws, "ana@shop.example", user.RoleAdmin)
	mia := mustCreate(t, s, ws, "mia@shop.example", user.RoleMarketer)

	if _, err := s.Deactivate(ctx, ws, ana.ID, ana.ID, time.Now()); !errors.Is(err, user.ErrSelf) {
		t.Fatalf("deactivating oneself: %v", err)
	}
	if err := s.Remove(ctx, ws, ana.ID, ana.ID); !errors.Is(err, user.ErrSelf) {
		t.Fatalf("removing oneself: %v", err)
	}
	if err := s.Remove(ctx, ws, ana.ID, mia.ID); !errors.Is(err, user.ErrActive) {
		t.Fatalf("removing an active user: %v", err)
	}

	// Signed in, then deactivated: the session ends and sign-in is refused.
	u, err := s.Authenticate(ctx, "", "mia@shop.example", testPassword)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	token, _, err := s.StartSession(ctx, u, now)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, ws, mia.ID); got.LastSignInAt == nil || got.LastSignInAt.Sub(now).Abs() > time.Second {
		t.Fatalf("last sign-in not recorded: %v", got.LastSignInAt)
	}
	if d, err := s.Deactivate(ctx, ws, ana.ID, mia.ID, now); err != nil || d.DisabledAt == nil {
		t.Fatalf("deactivate: %+v %v", d, err)
	}
	if _, err := s.Session(ctx, token, now); !errors.Is(err, user.ErrNoSession) {
		t.Fatalf("session of a deactivated user: %v", err)
	}
	if _, err := s.Authenticate(ctx, "", "mia@shop.example", testPassword); !errors.Is(err, user.ErrDisabled) {
		t.Fatalf("sign-in of a deactivated user: %v, want ErrDisabled", err)
	}
	if _, err := s.Authenticate(ctx, "", "mia@shop.example", "a wrong password!"); !errors.Is(err, user.ErrBadCredentials) {
		t.Fatalf("wrong password of a deactivated user: %v, want ErrBadCredentials (nothing told)", err)
	}

	if _, err := s.Reactivate(ctx, ws, mia.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "", "mia@shop.example", testPassword); err != nil {
		t.Fatalf("sign-in after reactivation: %v", err)
	}

	if _, err := s.Deactivate(ctx, ws, ana.ID, mia.ID, now); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, ws, ana.ID, mia.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, ws, mia.ID); !errors.Is(err, user.ErrNotFound) {
		t.Fatalf("removed user still there: %v", err)
	}
	if _, err := s.Create(ctx, ws, "mia@shop.example", "", user.RoleViewer, testPassword); err != nil {
		t.Fatalf("the email of a removed user cannot be used again: %v", err)
	}
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, ws := newWorkspaceUsers(t)
	mia := mustCreate(t, s, ws, "mia@shop.example", user.RoleMarketer)
	now := time.Now()
	here, _, err := s.StartSession(ctx, mia, now)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, _, err := s.StartSession(ctx, mia, now)
	if err != nil {
		t.Fatal(err)
	}

	const next = "an even longer password"
	for _, tt := range []struct{ current, next, field string }{
		{"not my password", next, "current_password"},
		{testPassword, "short", "new_password"},
		{testPassword, testPassword, "new_password"},
	} {
		var fe *user.FieldError
		if err := s.ChangePassword(ctx, ws, mia.ID, tt.current, tt.next, here); !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("ChangePassword(%q, %q) = %v, want a %s error", tt.current, tt.next, err, tt.field)
		}
	}
	if _, err := s.Authenticate(ctx, "", "mia@shop.example", testPassword); err != nil {
		t.Fatalf("a refused change changed the password: %v", err)
	}

	if err := s.ChangePassword(ctx, ws, mia.ID, testPassword, next, here); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "", "mia@shop.example", testPassword); !errors.Is(err, user.ErrBadCredentials) {
		t.Fatalf("old password after the change: %v", err)
	}
	if _, err := s.Authenticate(ctx, "", "mia@shop.example", next); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if _, err := s.Session(ctx, here, now); err != nil {
		t.Fatalf("the session that changed the password was ended: %v", err)
	}
	if _, err := s.Session(ctx, elsewhere, now); !errors.Is(err, user.ErrNoSession) {
		t.Fatalf("another browser stayed signed in after the change: %v", err)
	}
}

package user_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/user"
	"github.com/parcours/parcours/pkg/workspace"
)

func TestPasswordHash(t *testing.T) {
	t.Parallel()
	h, err := user.HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not a PHC argon2id string with the documented parameters", h)
	}
	for _, tt := range []struct {
		password string
		want     bool
	}{{"correct horse battery", true}, {"correct horse batterY", false}, {"", false}} {
		ok, err := user.CheckPassword(h, tt.password)
		if err != nil || ok != tt.want {
			t.Errorf("CheckPassword(%q) = %v, %v; want %v", tt.password, ok, err, tt.want)
		}
	}
	if _, err := user.CheckPassword("$argon2id$v=19$bad", "x"); err == nil {
		t.Error("a malformed hash was accepted")
	}
}

func TestUsersAndSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	ws, _, _, err := workspace.NewStore(pool).Bootstrap(ctx, "default", "Default")
	if err != nil {
		t.Fatal(err)
	}
	s := user.NewStore(pool)
	pw, created, err := s.EnsureFirstAdmin(ctx, ws.ID, "admin@parcours.local")
	if err != nil || !created || len(pw) < user.MinPasswordLength {
		t.Fatalf("first admin: %q %v %v", pw, created, err)
	}
	if _, again, err := s.EnsureFirstAdmin(ctx, ws.ID, "admin@parcours.local"); err != nil || again {
		t.Fatalf("second EnsureFirstAdmin created=%v err=%v", again, err)
	}
	if _, err := s.Create(ctx, ws.ID, " Admin@Parcours.local ", "", user.RoleViewer, "0123456789"); !errors.Is(err, user.ErrEmailTaken) {
		t.Fatalf("duplicate email: %v", err)
	}
	var fe *user.FieldError
	if _, err := s.Create(ctx, ws.ID, "v@example.com", "", user.RoleViewer, "short"); !errors.As(err, &fe) || fe.Field != "password" {
		t.Fatalf("short password: %v", err)
	}
	if _, err := s.Authenticate(ctx, "", "admin@parcours.local", "wrong password"); !errors.Is(err, user.ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := s.Authenticate(ctx, "", "nobody@parcours.local", pw); !errors.Is(err, user.ErrBadCredentials) {
		t.Fatalf("unknown email: %v", err)
	}
	u, err := s.Authenticate(ctx, "", "ADMIN@parcours.local", pw)
	if err != nil || u.Role != user.RoleAdmin || u.WorkspaceID != ws.ID {
		t.Fatalf("sign in: %+v %v", u, err)
	}
	now := time.Now()
	token, sess, err := s.StartSession(ctx, u, now)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Session(ctx, token, now.Add(10*time.Minute))
	if err != nil || got.User.ID != u.ID || !got.CheckCSRF(sess.CSRF) || got.CheckCSRF("") || got.CheckCSRF("x") {
		t.Fatalf("session: %+v %v", got, err)
	}
	// Used every 20 minutes, a session still ends after SessionTTL.
	for at := 30 * time.Minute; at < user.SessionTTL; at += 20 * time.Minute {
		if _, err := s.Session(ctx, token, now.Add(at)); err != nil {
			t.Fatalf("session used every 20 minutes, at %s: %v", at, err)
		}
	}
	if _, err := s.Session(ctx, token, now.Add(user.SessionTTL+time.Minute)); !errors.Is(err, user.ErrNoSession) {
		t.Fatalf("expired session: %v", err)
	}
	if err := s.EndSession(ctx, token); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, token, now); !errors.Is(err, user.ErrNoSession) {
		t.Fatalf("ended session: %v", err)
	}
}

package user

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Errors of user management. The rules live here, not in the console, so
// that every caller keeps a workspace administrable.
var (
	// ErrSelf: people may not deactivate or remove their own account (they
	// would lock themselves out); another admin does it.
	ErrSelf = errors.New("you cannot deactivate or remove your own account")
	// ErrLastAdmin: the change would leave the workspace without an active
	// admin, and so without anyone able to manage users and settings.
	ErrLastAdmin = errors.New("the workspace needs at least one active admin")
	// ErrActive: only a deactivated user can be removed (two steps, so that
	// a slip of the mouse cannot delete an account).
	ErrActive = errors.New("deactivate the user before removing them")
)

// List returns a workspace's users: active ones first, then by name and email.
func (s *Store) List(ctx context.Context, workspaceID string) ([]User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+cols+` FROM users u WHERE u.workspace_id = $1
		ORDER BY u.disabled_at IS NOT NULL, lower(u.name), u.email`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// Get returns one user of a workspace.
func (s *Store) Get(ctx context.Context, workspaceID, id string) (User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+cols+` FROM users u WHERE u.workspace_id = $1 AND u.id = $2`, workspaceID, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return u, fmt.Errorf("load user %s: %w", id, err)
	}
	return u, err
}

// withAdminsLocked runs fn in a transaction that holds row locks on the
// workspace's active admins and on the target user, so that two admins
// demoting or deactivating each other at once cannot both succeed and leave
// nobody in charge. soleAdmin tells fn whether target is the only active
// admin.
func (s *Store) withAdminsLocked(ctx context.Context, workspaceID, targetID string, fn func(tx pgx.Tx, target User, soleAdmin bool) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id::text FROM users WHERE workspace_id = $1 AND role = 'admin' AND disabled_at IS NULL
			ORDER BY id FOR UPDATE`, workspaceID)
		if err != nil {
			return fmt.Errorf("lock admins: %w", err)
		}
		admins, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("lock admins: %w", err)
		}
		target, err := scanUser(tx.QueryRow(ctx, `SELECT `+cols+` FROM users u WHERE u.workspace_id = $1 AND u.id = $2 FOR UPDATE`, workspaceID, targetID))
		if errors.Is(err, ErrNotFound) {
			return err
		}
		if err != nil {
			return fmt.Errorf("load user %s: %w", targetID, err)
		}
		return fn(tx, target, len(admins) == 1 && admins[0] == target.ID)
	})
}

// SetRole changes a user's role. People may change their own role (an admin
// may step down) as long as another active admin remains: the last admin
// cannot be demoted (ErrLastAdmin).
func (s *Store) SetRole(ctx context.Context, workspaceID, id string, role Role) (User, error) {
	if !role.Valid() {
		return User{}, &FieldError{Field: "role", Reason: "must be admin, marketer or viewer"}
	}
	var out User
	err := s.withAdminsLocked(ctx, workspaceID, id, func(tx pgx.Tx, target User, soleAdmin bool) error {
		if soleAdmin && role != RoleAdmin {
			return ErrLastAdmin
		}
		var err error
		out, err = scanUser(tx.QueryRow(ctx, `UPDATE users u SET role = $3 WHERE u.workspace_id = $1 AND u.id = $2 RETURNING `+cols,
			workspaceID, target.ID, role))
		if err != nil {
			return fmt.Errorf("change role of user %s: %w", id, err)
		}
		return nil
	})
	return out, err
}

// Deactivate stops a user from signing in and ends their sessions; the
// account stays, to be reactivated or removed. actorID is the user asking:
// nobody deactivates themselves (ErrSelf), nor the last active admin
// (ErrLastAdmin). Deactivating a deactivated user changes nothing.
func (s *Store) Deactivate(ctx context.Context, workspaceID, actorID, id string, now time.Time) (User, error) {
	if id == actorID {
		return User{}, ErrSelf
	}
	var out User
	err := s.withAdminsLocked(ctx, workspaceID, id, func(tx pgx.Tx, target User, soleAdmin bool) error {
		if target.DisabledAt != nil {
			out = target
			return nil
		}
		if soleAdmin {
			return ErrLastAdmin
		}
		var err error
		out, err = scanUser(tx.QueryRow(ctx, `UPDATE users u SET disabled_at = $3 WHERE u.workspace_id = $1 AND u.id = $2 RETURNING `+cols,
			workspaceID, target.ID, now))
		if err != nil {
			return fmt.Errorf("deactivate user %s: %w", id, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE workspace_id = $1 AND user_id = $2`, workspaceID, target.ID); err != nil {
			return fmt.Errorf("end sessions of user %s: %w", id, err)
		}
		return nil
	})
	return out, err
}

// Reactivate lets a deactivated user sign in again, with the password they had.
func (s *Store) Reactivate(ctx context.Context, workspaceID, id string) (User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `UPDATE users u SET disabled_at = NULL WHERE u.workspace_id = $1 AND u.id = $2 RETURNING `+cols,
		workspaceID, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return u, fmt.Errorf("reactivate user %s: %w", id, err)
	}
	return u, err
}

// Remove deletes a deactivated user's account for good (ErrActive while
// it is active; ErrSelf for one's own). Their email can then be used for a
// new account.
func (s *Store) Remove(ctx context.Context, workspaceID, actorID, id string) error {
	if id == actorID {
		return ErrSelf
	}
	return s.withAdminsLocked(ctx, workspaceID, id, func(tx pgx.Tx, target User, _ bool) error {
		// A deactivated user is never an active admin: no last-admin check.
		if target.DisabledAt == nil {
			return ErrActive
		}
		if _, err := tx.Exec(ctx, `DELETE FROM users WHERE workspace_id = $1 AND id = $2`, workspaceID, target.ID); err != nil {
			return fmt.Errorf("remove user %s: %w", id, err)
		}
		return nil
	})
}

// ChangePassword sets a user's new password once their current one is
// confirmed, and signs out their other browsers (the session of keepToken,
// the one asking, stays). Wrong fields come back as *FieldError:
// current_password or new_password.
func (s *Store) ChangePassword(ctx context.Context, workspaceID, id, current, next, keepToken string) error {
	var hash string
	err := s.pool.QueryRow(ctx, `SELECT password_hash FROM users WHERE workspace_id = $1 AND id = $2 AND disabled_at IS NULL`,
		workspaceID, id).Scan(&hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("load user %s: %w", id, err)
	}
	// Both lengths are checked before any hashing.
	if passwordTooLong(current) {
		return &FieldError{Field: "current_password", Reason: "is not your current password"}
	}
	if err := checkNewPassword(next); err != nil {
		return &FieldError{Field: "new_password", Reason: err.Error()}
	}
	ok, err := s.hasher.Check(ctx, hash, current)
	if err != nil {
		return fmt.Errorf("check password of user %s: %w", id, err)
	}
	if !ok {
		return &FieldError{Field: "current_password", Reason: "is not your current password"}
	}
	if next == current {
		return &FieldError{Field: "new_password", Reason: "is your current password: choose a new one"}
	}
	newHash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE users SET password_hash = $3 WHERE workspace_id = $1 AND id = $2`, workspaceID, id, newHash); err != nil {
			return fmt.Errorf("change password of user %s: %w", id, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE workspace_id = $1 AND user_id = $2 AND id <> $3`,
			workspaceID, id, hashToken(keepToken)); err != nil {
			return fmt.Errorf("end other sessions of user %s: %w", id, err)
		}
		return nil
	})
}

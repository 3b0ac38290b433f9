// Package user holds the people who sign in to the console: their accounts
// (one per workspace and email, with a role), argon2id password hashes and
// sign-in sessions. API keys, in pkg/workspace, stay for machines.
package user

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Role says what a user may do in the console.
type Role string

// Roles, from most to least powerful.
const (
	// RoleAdmin may do everything, including managing users and settings.
	RoleAdmin Role = "admin"
	// RoleMarketer builds and changes segments and journeys.
	RoleMarketer Role = "marketer"
	// RoleViewer reads only.
	RoleViewer Role = "viewer"
)

var roleRank = map[Role]int{RoleViewer: 1, RoleMarketer: 2, RoleAdmin: 3}

// Allows reports whether a user of role r may do what needs role want.
func (r Role) Allows(want Role) bool { return roleRank[r] >= roleRank[want] && roleRank[r] > 0 }

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return roleRank[r] > 0 }

// SessionTTL is how long a sign-in lasts: a working day, after which the
// console asks for the password again.
const SessionTTL = 12 * time.Hour

// DefaultIdleTimeout ends a session nobody used for this long (a browser
// left open on a shared computer), before SessionTTL.
const DefaultIdleTimeout = 30 * time.Minute

// seenEvery is how stale a session's last_seen_at may get before a request
// writes it again: one write a minute per browser, not one per page.
const seenEvery = time.Minute

// Errors of the store.
var (
	ErrNotFound = errors.New("user not found")
	// ErrEmailTaken: a user with this email exists in the workspace.
	ErrEmailTaken = errors.New("a user with this email exists in this workspace")
	// ErrBadCredentials: no user has this email and password.
	ErrBadCredentials = errors.New("wrong email or password")
	// ErrAmbiguous: the email and password match users of several
	// workspaces; the workspace must be named.
	ErrAmbiguous = errors.New("this account exists in several workspaces")
	// ErrNoSession: the session token is unknown or expired.
	ErrNoSession = errors.New("no such session")
	// ErrDisabled: the email and password are right but an admin
	// deactivated the account.
	ErrDisabled = errors.New("this account is deactivated")
)

// FieldError names a wrong input field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// User is a person who signs in to the console.
type User struct {
	ID          string    `json:"id"`
	WorkspaceID string    `json:"workspace_id"`
	Email       string    `json:"email"`
	Name        string    `json:"name"`
	Role        Role      `json:"role"`
	CreatedAt   time.Time `json:"created_at"`
	// DisabledAt is set while the account is deactivated: no sign-in.
	DisabledAt *time.Time `json:"disabled_at,omitempty"`
	// LastSignInAt is the last successful sign-in; nil: never.
	LastSignInAt *time.Time `json:"last_sign_in_at,omitempty"`
}

// Session is a signed-in browser.
type Session struct {
	User User
	// CSRF is the token every form of the session must carry.
	CSRF      string
	ExpiresAt time.Time
}

// Store keeps users and sessions in PostgreSQL.
type Store struct {
	pool   *pgxpool.Pool
	hasher *Hasher
	idle   time.Duration
}

// Options adjust a Store; the zero value keeps every default.
type Options struct {
	// Hasher bounds concurrent password hashing. Default: one Hasher shared
	// by every Store of the process, DefaultHashConcurrency wide.
	Hasher *Hasher
	// IdleTimeout ends sessions unused for this long. Default
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
}

// NewStore returns a Store over pool, adjusted by the first of opts.
func NewStore(pool *pgxpool.Pool, opts ...Options) *Store {
	s := &Store{pool: pool, hasher: defaultHasher, idle: DefaultIdleTimeout}
	if len(opts) > 0 {
		if opts[0].Hasher != nil {
			s.hasher = opts[0].Hasher
		}
		if opts[0].IdleTimeout > 0 {
			s.idle = opts[0].IdleTimeout
		}
	}
	return s
}

// Hasher returns the Hasher the Store checks passwords with.
func (s *Store) Hasher() *Hasher { return s.hasher }

const cols = `u.id::text, u.workspace_id::text, u.email, u.name, u.role, u.created_at, u.disabled_at, u.last_login_at`

func scanUser(row pgx.Row, extra ...any) (User, error) {
	var u User
	err := row.Scan(append([]any{&u.ID, &u.WorkspaceID, &u.Email, &u.Name, &u.Role, &u.CreatedAt, &u.DisabledAt, &u.LastSignInAt}, extra...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, ErrNotFound
	}
	return u, err
}

// NormalizeEmail trims and lower-cases an email address.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Create adds a user to a workspace.
func (s *Store) Create(ctx context.Context, workspaceID, email, name string, role Role, password string) (User, error) {
	email = NormalizeEmail(email)
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
		return User{}, &FieldError{Field: "email", Reason: "must be an email address, e.g. ana@example.com"}
	}
	if !role.Valid() {
		return User{}, &FieldError{Field: "role", Reason: "must be admin, marketer or viewer"}
	}
	if name = strings.TrimSpace(name); len(name) > 200 {
		return User{}, &FieldError{Field: "name", Reason: "must be at most 200 characters"}
	}
	if err := checkNewPassword(password); err != nil {
		return User{}, &FieldError{Field: "password", Reason: err.Error()}
	}
	hash, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return User{}, err
	}
	u, err := scanUser(s.pool.QueryRow(ctx, `
		INSERT INTO users AS u (workspace_id, email, name, role, password_hash) VALUES ($1, $2, $3, $4, $5)
		RETURNING `+cols, workspaceID, email, strings.TrimSpace(name), role, hash))
	if isUnique(err) {
		return User{}, ErrEmailTaken
	}
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// Count returns the number of users of a workspace.
func (s *Store) Count(ctx context.Context, workspaceID string) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM users WHERE workspace_id = $1`, workspaceID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// Authenticate finds the user with this email and password. workspaceSlug
// may be empty: the email is then looked for in every workspace, and
// ErrAmbiguous returned if it matches in more than one. Unknown emails take
// as long to refuse as wrong passwords. A deactivated account is not
// signed in: ErrDisabled when it is the only match of the password.
// A password longer than MaxPasswordLength is refused at once
// (ErrPasswordTooLong), and ErrBusy says too many passwords are being
// checked at this moment.
func (s *Store) Authenticate(ctx context.Context, workspaceSlug, email, password string) (User, error) {
	if passwordTooLong(password) {
		return User{}, ErrPasswordTooLong
	}
	rows, err := s.pool.Query(ctx, `
		SELECT `+cols+`, u.password_hash FROM users u JOIN workspaces w ON w.id = u.workspace_id
		WHERE u.email = $1 AND ($2 = '' OR w.slug = $2) ORDER BY u.created_at LIMIT 20`, NormalizeEmail(email), workspaceSlug)
	if err != nil {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	type candidate struct {
		u    User
		hash string
	}
	var cands []candidate
	for rows.Next() {
		var c candidate
		if c.u, err = scanUser(rows, &c.hash); err != nil {
			rows.Close()
			return User{}, fmt.Errorf("authenticate: %w", err)
		}
		cands = append(cands, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	if len(cands) == 0 {
		if _, err := s.hasher.Check(ctx, dummyHash(), password); errors.Is(err, ErrBusy) {
			return User{}, ErrBusy // as a known email would be answered
		}
		return User{}, ErrBadCredentials
	}
	var matches []User
	disabled := false
	for _, c := range cands {
		ok, err := s.hasher.Check(ctx, c.hash, password)
		if errors.Is(err, ErrBusy) {
			return User{}, ErrBusy
		}
		if err != nil {
			return User{}, fmt.Errorf("authenticate user %s: %w", c.u.ID, err)
		}
		switch {
		case ok && c.u.DisabledAt != nil:
			disabled = true
		case ok:
			matches = append(matches, c.u)
		}
	}
	switch len(matches) {
	case 0:
		if disabled {
			// Only someone who knows the password learns this.
			return User{}, ErrDisabled
		}
		return User{}, ErrBadCredentials
	case 1:
		return matches[0], nil
	}
	return User{}, ErrAmbiguous
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// StartSession signs a user in. The token goes in the browser's cookie; the
// database keeps only its SHA-256.
func (s *Store) StartSession(ctx context.Context, u User, now time.Time) (token string, sess Session, err error) {
	if token, err = randomToken(); err != nil {
		return "", sess, fmt.Errorf("start session: %w", err)
	}
	csrf, err := randomToken()
	if err != nil {
		return "", sess, fmt.Errorf("start session: %w", err)
	}
	sess = Session{User: u, CSRF: csrf, ExpiresAt: now.Add(SessionTTL)}
	if _, err := s.pool.Exec(ctx, `INSERT INTO sessions (id, workspace_id, user_id, csrf_token, expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		hashToken(token), u.WorkspaceID, u.ID, csrf, sess.ExpiresAt, now); err != nil {
		return "", sess, fmt.Errorf("start session: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE users SET last_login_at = $3 WHERE workspace_id = $1 AND id = $2`, u.WorkspaceID, u.ID, now); err != nil {
		return "", sess, fmt.Errorf("record sign-in: %w", err)
	}
	// Expired and idle sessions of anyone are cleared now and then, on sign-in.
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at < $1 OR last_seen_at < $2`, now, now.Add(-s.idle)); err != nil {
		return "", sess, fmt.Errorf("clear expired sessions: %w", err)
	}
	return token, sess, nil
}

// Session returns the live session of a token, with its user, and records
// that it was used at now. A session not used for the Store's idle timeout
// has ended (ErrNoSession), like one past its ExpiresAt.
func (s *Store) Session(ctx context.Context, token string, now time.Time) (Session, error) {
	if token == "" {
		return Session{}, ErrNoSession
	}
	var sess Session
	// One round trip: the CTE moves last_seen_at (when over a minute old)
	// and the SELECT reads the row as it was, which passes the same test.
	u, err := scanUser(s.pool.QueryRow(ctx, `
		WITH seen AS (
			UPDATE sessions SET last_seen_at = $2
			WHERE id = $1 AND expires_at > $2 AND last_seen_at > $3 AND last_seen_at < $4
		)
		SELECT `+cols+`, s.csrf_token, s.expires_at FROM sessions s
		JOIN users u ON u.workspace_id = s.workspace_id AND u.id = s.user_id
		WHERE s.id = $1 AND s.expires_at > $2 AND s.last_seen_at > $3 AND u.disabled_at IS NULL`,
		hashToken(token), now, now.Add(-s.idle), now.Add(-seenEvery)), &sess.CSRF, &sess.ExpiresAt)
	if errors.Is(err, ErrNotFound) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("load session: %w", err)
	}
	sess.User = u
	return sess, nil
}

// EndSession signs a browser out. Ending an unknown session is not an error.
func (s *Store) EndSession(ctx context.Context, token string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE id = $1`, hashToken(token)); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// CheckCSRF compares a form's token with the session's in constant time.
func (sess Session) CheckCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(sess.CSRF)) == 1
}

func isUnique(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// EnsureFirstAdmin creates an admin with email and a random password when
// the workspace has no user yet, and returns the password (once) with
// created=true. Otherwise it changes nothing.
func (s *Store) EnsureFirstAdmin(ctx context.Context, workspaceID, email string) (password string, created bool, err error) {
	n, err := s.Count(ctx, workspaceID)
	if err != nil || n > 0 {
		return "", false, err
	}
	if password, err = RandomPassword(); err != nil {
		return "", false, err
	}
	_, err = s.Create(ctx, workspaceID, email, "Admin", RoleAdmin, password)
	if errors.Is(err, ErrEmailTaken) { // another process won the race
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("create first admin: %w", err)
	}
	return password, true, nil
}

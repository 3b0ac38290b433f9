// Package workspace holds tenants (workspaces) and the API keys that give
// access to them.
//
// A key's secret is shown once, at creation, and stored only as a SHA-256
// hash. Two scopes exist: write keys may only ingest data (they are safe to
// embed in a web page, as Segment write keys are) and admin keys manage the
// workspace and read profiles.
package workspace

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Scope says what an API key may do.
type Scope string

const (
	// ScopeWrite allows ingestion only.
	ScopeWrite Scope = "write"
	// ScopeAdmin allows management and reads of customer data.
	ScopeAdmin Scope = "admin"
)

// Allows reports whether a key of scope s may call an endpoint that needs want.
// Admin keys may do everything a write key may.
func (s Scope) Allows(want Scope) bool {
	return s == want || s == ScopeAdmin
}

// Workspace is one tenant: its customers, journeys and keys are its own.
type Workspace struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
	// UniqueIdentifier is the identifier that makes a contact known and of
	// which a person has one value: email (default), user_id, phone, or an
	// identity trait such as customer_number.
	UniqueIdentifier string `json:"unique_identifier"`
	// IdentityTraits are the traits whose values identify a person.
	IdentityTraits []string  `json:"identity_traits"`
	CreatedAt      time.Time `json:"created_at"`
}

// Settings is a change to a workspace's identity rules.
type Settings struct {
	UniqueIdentifier *string
	IdentityTraits   []string // nil: unchanged
}

var traitNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// apply validates s against w and returns the updated workspace.
func (s Settings) apply(w Workspace) (Workspace, error) {
	if s.IdentityTraits != nil {
		seen := map[string]bool{}
		var traits []string
		for _, t := range s.IdentityTraits {
			if !traitNameRe.MatchString(t) || t == "user_id" || t == "anonymous_id" {
				return w, &FieldError{Field: "identity_traits", Reason: fmt.Sprintf("%q is not a usable trait name (lower-case letters, digits and _, starting with a letter; user_id and anonymous_id are built in)", t)}
			}
			if !seen[t] {
				seen[t] = true
				traits = append(traits, t)
			}
		}
		w.IdentityTraits = traits
	}
	if s.UniqueIdentifier != nil {
		w.UniqueIdentifier = *s.UniqueIdentifier
	}
	if w.UniqueIdentifier != "user_id" && !slices.Contains(w.IdentityTraits, w.UniqueIdentifier) {
		if s.UniqueIdentifier == nil || !traitNameRe.MatchString(w.UniqueIdentifier) || w.UniqueIdentifier == "anonymous_id" {
			return w, &FieldError{Field: "unique_identifier", Reason: fmt.Sprintf("must be user_id or one of the identity traits %v", w.IdentityTraits)}
		}
		w.IdentityTraits = append(w.IdentityTraits, w.UniqueIdentifier)
	}
	return w, nil
}

// Key is an API key as stored: never its secret.
type Key struct {
	ID          string     `json:"id"`
	WorkspaceID string     `json:"workspace_id"`
	Name        string     `json:"name"`
	Scope       Scope      `json:"scope"`
	Source      string     `json:"source,omitempty"`
	Prefix      string     `json:"prefix"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

// NewKey is what creating a key returns: the stored key and its secret,
// which is never retrievable again.
type NewKey struct {
	Key
	Secret string `json:"secret"`
}

// Errors the store translates database failures into.
var (
	ErrNotFound    = errors.New("not found")
	ErrSlugTaken   = errors.New("workspace slug already in use")
	ErrInvalidKey  = errors.New("invalid API key")
	ErrRevokedKey  = errors.New("API key revoked")
	errInvalidSlug = errors.New("must be 1-63 lower-case letters, digits or dashes, starting with a letter or digit")
)

var (
	slugRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	sourceRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
)

// FieldError names the input field that is wrong and why, for the API to
// report per field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// ValidateSlug checks a workspace slug.
func ValidateSlug(slug string) error {
	if !slugRe.MatchString(slug) {
		return &FieldError{Field: "slug", Reason: errInvalidSlug.Error()}
	}
	return nil
}

// KeySpec describes a key to create.
type KeySpec struct {
	Name   string
	Scope  Scope
	Source string // required for write keys: web, app, store, call_centre, crm, ...
}

// Validate checks the spec and reports the first wrong field.
func (s KeySpec) Validate() error {
	switch {
	case strings.TrimSpace(s.Name) == "" || len(s.Name) > 200:
		return &FieldError{Field: "name", Reason: "must be 1-200 characters"}
	case s.Scope != ScopeWrite && s.Scope != ScopeAdmin:
		return &FieldError{Field: "scope", Reason: `must be "write" (ingestion only) or "admin" (management)`}
	case s.Scope == ScopeWrite && !sourceRe.MatchString(s.Source):
		return &FieldError{Field: "source", Reason: "a write key needs the source it feeds, e.g. web, app, store, call_centre or crm (lower-case letters, digits, _ or -)"}
	case s.Scope == ScopeAdmin && s.Source != "":
		return &FieldError{Field: "source", Reason: "only write keys belong to a source"}
	}
	return nil
}

// secretPrefix tags keys so that leaked secrets are recognisable by secret
// scanners and by people.
const secretPrefix = "pcs_"

// generateSecret returns a new random key secret for scope, e.g.
// pcs_write_3JZ... (32 random base-62 characters, about 190 bits).
func generateSecret(scope Scope) (string, error) {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	var b strings.Builder
	b.WriteString(secretPrefix)
	b.WriteString(string(scope))
	b.WriteByte('_')
	for _, c := range buf {
		// 256 % 62 bias is below 2^-5 per character and irrelevant for 190 bits.
		b.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return b.String(), nil
}

// HashSecret is how a secret is stored and looked up.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// displayPrefix is the part of a secret safe to show in lists.
func displayPrefix(secret string) string {
	if len(secret) < 14 {
		return secret
	}
	return secret[:14]
}

// Package addrhash is how Parcours keeps an address or an identifier it
// must recognise but not hold: a keyed hash (HMAC-SHA256) under a key that
// belongs to one workspace and is derived from the server's secret
// (PARCOURS_SECRET_KEY).
//
// Suppressions, deliveries, delivery events and the consent log keep the
// hash of an email address or phone number; the identifiers of erased
// people (suppressed_identities) are kept the same way. Within a workspace
// the same address always hashes the same, so a suppression still stops a
// send and a record about an erased person is still recognised. A plain
// SHA-256, as kept before migration 00025, could be recomputed by anyone who
// knows the address; these cannot without the secret, and the hashes of two
// workspaces cannot be matched with each other.
//
// The key must stay stable: with another PARCOURS_SECRET_KEY, the stored
// hashes no longer match (suppressed addresses could be mailed again, erased
// people's records accepted again). A process without a secret key uses an
// empty one (New(nil)): the hashes are then keyed by the workspace id alone,
// which anyone can recompute, and they change when a key is set later.
package addrhash

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"strings"
	"sync"
)

// Hasher hashes addresses and identifiers, per workspace. It is a pure
// function of the secret: two Hashers made from the same secret give the
// same hashes, whichever process made them. It is safe for concurrent use.
// The zero value and nil are not usable; build one with New.
type Hasher struct {
	root []byte
	// keyed holds, by workspace id, an HMAC already keyed with the
	// workspace's key and never written to: each hash clones it, which
	// saves deriving the key again (ingestion hashes every identifier of
	// every record).
	keyed sync.Map
}

// New returns the Hasher of a server secret (the 32 bytes of
// PARCOURS_SECRET_KEY). nil or empty: the unkeyed fallback described in
// the package comment.
func New(secret []byte) *Hasher {
	return &Hasher{root: mac(secret, "parcours address hashes v1")}
}

// workspaceKey is the key of one workspace: HMAC(root, workspace id). The
// id is a uuid, compared in its canonical lower-case text.
func (h *Hasher) workspaceKey(workspaceID string) []byte {
	return mac(h.root, "workspace\x00"+strings.ToLower(strings.TrimSpace(workspaceID)))
}

// sum is HMAC(workspace key, msg).
func (h *Hasher) sum(workspaceID, msg string) []byte {
	base, ok := h.keyed.Load(workspaceID)
	if !ok {
		base, _ = h.keyed.LoadOrStore(workspaceID, hmac.New(sha256.New, h.workspaceKey(workspaceID)))
	}
	var m hash.Hash
	if c, ok := base.(hash.Cloner); ok {
		m, _ = c.Clone()
	}
	if m == nil {
		// crypto/hmac over SHA-256 clones; should it not, key a new one.
		m = hmac.New(sha256.New, h.workspaceKey(workspaceID))
	}
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// Address is the hash of an email address or phone number as suppressions,
// deliveries, delivery events, broadcasts and the consent log keep it: of
// the address trimmed and lower-cased. Callers normalise what the channel
// needs first (a phone number to E.164, channel.NormalizeAddress).
func (h *Hasher) Address(workspaceID, address string) []byte {
	return h.sum(workspaceID, "address\x00"+strings.ToLower(strings.TrimSpace(address)))
}

// Identity is the hash of an identifier of an erased person as
// suppressed_identities keeps it: of its type (email, phone, user_id,
// anonymous_id, ...) and its value as identity resolution normalised it.
func (h *Hasher) Identity(workspaceID, typ, value string) []byte {
	return h.sum(workspaceID, "identity\x00"+typ+"\x00"+value)
}

func mac(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

package api

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/workspace"
)

const ctxKey = "parcours.key"

// keyFrom returns the authenticated key of the request.
func keyFrom(c echo.Context) workspace.Key {
	k, _ := c.Get(ctxKey).(workspace.Key)
	return k
}

// credential extracts an API key secret from the request: a Bearer token, or
// HTTP Basic with the key as user name and an empty password (what the
// official Segment libraries send with a write key).
func credential(r *http.Request) string {
	h := r.Header.Get(echo.HeaderAuthorization)
	switch {
	case strings.HasPrefix(h, "Bearer "):
		return strings.TrimSpace(h[len("Bearer "):])
	case strings.HasPrefix(h, "Basic "):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[len("Basic "):]))
		if err != nil {
			return ""
		}
		user, _, _ := strings.Cut(string(raw), ":")
		return user
	}
	return ""
}

// requireScope authenticates the request by its Authorization header and
// checks the key's scope.
func (s *Server) requireScope(want workspace.Scope) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			secret := credential(c.Request())
			if secret == "" {
				return unauthorized("This endpoint needs an API key: send it as `Authorization: Bearer <key>`.")
			}
			if _, err := s.authenticate(c, secret, want); err != nil {
				return err
			}
			return next(c)
		}
	}
}

func unauthorized(detail string) *Problem {
	p := problem(http.StatusUnauthorized, detail)
	return p
}

// keyCache remembers authenticated keys for a short time so that the
// ingestion hot path does not query PostgreSQL on every request. A revoked
// key stops working within ttl.
type keyCache struct {
	store *workspace.Store
	ttl   time.Duration
	mu    sync.Mutex
	m     map[string]cachedKey
}

type cachedKey struct {
	key     workspace.Key
	expires time.Time
}

func newKeyCache(store *workspace.Store, ttl time.Duration) *keyCache {
	return &keyCache{store: store, ttl: ttl, m: map[string]cachedKey{}}
}

func (kc *keyCache) authenticate(ctx context.Context, secret string) (workspace.Key, error) {
	h := string(workspace.HashSecret(secret))
	now := time.Now()
	kc.mu.Lock()
	ck, ok := kc.m[h]
	kc.mu.Unlock()
	if ok && now.Before(ck.expires) {
		return ck.key, nil
	}
	k, err := kc.store.Authenticate(ctx, secret)
	if err != nil {
		return k, err
	}
	kc.mu.Lock()
	if len(kc.m) > 10000 { // bounded: drop everything rather than track LRU order
		kc.m = map[string]cachedKey{}
	}
	kc.m[h] = cachedKey{key: k, expires: now.Add(kc.ttl)}
	kc.mu.Unlock()
	return k, nil
}

// forget drops a key from the cache (after revocation through this process).
func (kc *keyCache) forget(keyID string) {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	for h, ck := range kc.m {
		if ck.key.ID == keyID {
			delete(kc.m, h)
		}
	}
}

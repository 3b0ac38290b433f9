package channel

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// ErrBadToken is returned for an unsubscribe token this server did not sign.
var ErrBadToken = errors.New("invalid unsubscribe token")

// UnsubscribeToken identifies whom an unsubscribe link opts out.
type UnsubscribeToken struct {
	WorkspaceID string
	ProfileID   string // "" for a send to a bare address (a test send)
	DeliveryID  string
	Channel     string
}

// SignUnsubscribe returns the link token: the ids, then an HMAC-SHA256 of
// them under a key derived from PARCOURS_SECRET_KEY. It has no expiry: an
// unsubscribe link must keep working as long as the email can be read.
func (b *Box) SignUnsubscribe(t UnsubscribeToken) string {
	payload := strings.Join([]string{"v1", t.WorkspaceID, t.ProfileID, t.DeliveryID, t.Channel}, "|")
	mac := hmacSHA256(b.linkKey, []byte(payload))
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(mac)
}

// VerifyUnsubscribe checks a token's signature and returns its ids.
func (b *Box) VerifyUnsubscribe(token string) (UnsubscribeToken, error) {
	p64, m64, ok := strings.Cut(token, ".")
	if !ok {
		return UnsubscribeToken{}, ErrBadToken
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	mac, err2 := base64.RawURLEncoding.DecodeString(m64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, hmacSHA256(b.linkKey, payload)) {
		return UnsubscribeToken{}, ErrBadToken
	}
	f := strings.Split(string(payload), "|")
	if len(f) != 5 || f[0] != "v1" {
		return UnsubscribeToken{}, ErrBadToken
	}
	return UnsubscribeToken{WorkspaceID: f[1], ProfileID: f[2], DeliveryID: f[3], Channel: f[4]}, nil
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

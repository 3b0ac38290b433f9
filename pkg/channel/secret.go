// Package channel sends messages: email through SendGrid (with the official
// sendgrid-go client), signed webhooks, and the delivery ledger that makes a
// send happen at most once per business key. It also keeps each workspace's
// channel settings, with their secrets encrypted at rest, and consent.
package channel

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/parcours/parcours/pkg/addrhash"
)

// KeySize is the length of the secret key: AES-256.
const KeySize = 32

// Box encrypts channel secrets (SendGrid API keys, webhook signing secrets)
// with AES-256-GCM under the process's secret key (PARCOURS_SECRET_KEY), and
// derives the key that signs unsubscribe links and the keys of address
// hashes (Hashes).
type Box struct {
	aead    cipher.AEAD
	linkKey []byte
	hashes  *addrhash.Hasher
}

// NewBox returns a Box over a 32-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return &Box{aead: aead, linkKey: hmacSHA256(key, []byte("parcours unsubscribe links v1")), hashes: addrhash.New(key)}, nil
}

// Hashes returns the address hasher of the box's key: the same hashes as
// addrhash.New(PARCOURS_SECRET_KEY) anywhere else.
func (b *Box) Hashes() *addrhash.Hasher { return b.hashes }

// ParseKey decodes a base64 (standard or URL alphabet) 32-byte key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("PARCOURS_SECRET_KEY decodes to %d bytes, want %d", len(k), KeySize)
			}
			return k, nil
		}
	}
	return nil, errors.New("PARCOURS_SECRET_KEY is not base64 (generate one with: openssl rand -base64 32)")
}

// LoadOrCreateKeyFile reads a base64 key from path, or creates one (mode
// 0600) when the file does not exist. `parcours dev` keeps its key this way.
func LoadOrCreateKeyFile(path string) ([]byte, bool, error) {
	raw, err := os.ReadFile(path)
	if err == nil {
		k, err := ParseKey(string(raw))
		if err != nil {
			return nil, false, fmt.Errorf("read %s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("read secret key: %w", err)
	}
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, false, fmt.Errorf("generate secret key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("save secret key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("save secret key: %w", err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, false, fmt.Errorf("save secret key: %w", werr)
	}
	return k, true, nil
}

// Seal encrypts plaintext, bound to aad (workspace and channel) so that a
// ciphertext copied to another row does not decrypt.
func (b *Box) Seal(plaintext, aad string) ([]byte, error) {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal secret: %w", err)
	}
	return b.aead.Seal(nonce, nonce, []byte(plaintext), []byte(aad)), nil
}

// Open decrypts what Seal returned.
func (b *Box) Open(ciphertext []byte, aad string) (string, error) {
	n := b.aead.NonceSize()
	if len(ciphertext) < n {
		return "", errors.New("open secret: ciphertext too short")
	}
	p, err := b.aead.Open(nil, ciphertext[:n], ciphertext[n:], []byte(aad))
	if err != nil {
		return "", fmt.Errorf("open secret (was PARCOURS_SECRET_KEY changed?): %w", err)
	}
	return string(p), nil
}

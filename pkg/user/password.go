package user

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters: the first configuration OWASP's Password Storage
// Cheat Sheet recommends (19 MiB of memory, 2 passes, 1 lane), about 20-40 ms
// a hash on a laptop core: slow for an attacker's guesses, fast enough for
// sign-ins. They are written into each hash (PHC string format), so raising
// them later keeps old hashes verifiable.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// MinPasswordLength is the shortest password accepted (NIST SP 800-63B asks
// for at least 8; we ask for more since there is no second factor yet).
const MinPasswordLength = 10

var errBadHash = errors.New("malformed password hash")

// checkNewPassword says what is wrong with a password being set, as a
// reason to follow the field's name ("must be at least 10 characters").
func checkNewPassword(password string) error {
	switch {
	case len(password) < MinPasswordLength:
		return fmt.Errorf("must be at least %d characters", MinPasswordLength)
	case passwordTooLong(password):
		return fmt.Errorf("must be at most %d characters", MaxPasswordLength)
	}
	return nil
}

// HashPassword hashes a password with argon2id and a random salt, as
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash> (unpadded base64).
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches hash, comparing in
// constant time.
func CheckPassword(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	var mem, passes uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &passes, &threads); err != nil || mem == 0 || passes == 0 || threads == 0 {
		return false, errBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, passes, mem, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// dummyHash is verified when no user has the email given at sign-in, so
// that the answer takes as long as for a real user (no account enumeration
// by timing).
var dummyHash = sync.OnceValue(func() string {
	h, err := HashPassword("not a real password")
	if err != nil {
		panic(err)
	}
	return h
})

// RandomPassword returns a password of about 120 random bits, written in an
// alphabet without look-alike characters.
func RandomPassword() (string, error) {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 21)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = alphabet[int(c)%len(alphabet)] // bias of 256 % 56 is irrelevant at this length
	}
	return string(out), nil
}

package addrhash_test

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/parcours/parcours/pkg/addrhash"
)

func TestHashesAreKeyedPerWorkspace(t *testing.T) {
	t.Parallel()
	const ws, other = "6f1c8a52-0d7e-4b8e-9a43-1f2e3d4c5b6a", "0b0b0b0b-0d7e-4b8e-9a43-1f2e3d4c5b6a"
	key := bytes.Repeat([]byte{7}, 32)
	h := addrhash.New(key)
	plain := sha256.Sum256([]byte("ana@example.com"))
	tests := []struct {
		name  string
		a, b  []byte
		equal bool
	}{
		{"same address, same workspace", h.Address(ws, "ana@example.com"), h.Address(ws, "ana@example.com"), true},
		{"normalised: case and spaces", h.Address(ws, " ANA@example.com "), h.Address(ws, "ana@example.com"), true},
		{"workspace id in upper case", h.Address("6F1C8A52-0D7E-4B8E-9A43-1F2E3D4C5B6A", "ana@example.com"), h.Address(ws, "ana@example.com"), true},
		{"another Hasher of the same secret", addrhash.New(bytes.Clone(key)).Address(ws, "ana@example.com"), h.Address(ws, "ana@example.com"), true},
		{"another workspace", h.Address(other, "ana@example.com"), h.Address(ws, "ana@example.com"), false},
		{"another secret", addrhash.New(bytes.Repeat([]byte{8}, 32)).Address(ws, "ana@example.com"), h.Address(ws, "ana@example.com"), false},
		{"no secret", addrhash.New(nil).Address(ws, "ana@example.com"), h.Address(ws, "ana@example.com"), false},
		{"not the plain SHA-256", h.Address(ws, "ana@example.com"), plain[:], false},
		{"an identity is not an address", h.Identity(ws, "email", "ana@example.com"), h.Address(ws, "ana@example.com"), false},
		{"identity type counts", h.Identity(ws, "email", "x"), h.Identity(ws, "user_id", "x"), false},
		{"type and value do not run together", h.Identity(ws, "user", "_id\x00x"), h.Identity(ws, "user_id", "x"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if len(tt.a) != sha256.Size || len(tt.b) != sha256.Size {
				t.Fatalf("hash lengths %d %d, want %d", len(tt.a), len(tt.b), sha256.Size)
			}
			if bytes.Equal(tt.a, tt.b) != tt.equal {
				t.Errorf("equal = %v, want %v", !tt.equal, tt.equal)
			}
		})
	}
}

func BenchmarkAddress(b *testing.B) {
	h := addrhash.New(bytes.Repeat([]byte{7}, 32))
	for b.Loop() {
		h.Address("6f1c8a52-0d7e-4b8e-9a43-1f2e3d4c5b6a", "ana@example.com")
	}
}

package identity_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/identity"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct{ typ, in, want string }{
		{"email", "  Ana.Martin@Example.COM ", "ana.martin@example.com"},
		{"email", "not-an-email", ""},
		{"email", "@example.com", ""},
		{"email", "ana@", ""},
		{"phone", "+33 6 12 34 56 78", "+33612345678"},
		{"phone", "0033 (6) 12-34-56-78", "+33612345678"},
		{"phone", "06 12 34 56 78", "0612345678"},
		{"phone", "call me", ""},
		{"phone", "123", ""},
		{"customer_number", "  C-1001 ", "C-1001"},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"/"+tt.in, func(t *testing.T) {
			t.Parallel()
			if got := identity.Normalize(tt.typ, tt.in); got != tt.want {
				t.Fatalf("Normalize(%q, %q) = %q, want %q", tt.typ, tt.in, got, tt.want)
			}
		})
	}
}

func TestKeysReadIdentifiersFromTheRecord(t *testing.T) {
	t.Parallel()
	s := identity.Settings{UniqueIdentifier: "email", Traits: []string{"email", "phone", "customer_number"}}
	identify := &events.Message{Type: "identify", UserID: "u1", AnonymousID: "a1",
		Traits:  map[string]any{"email": "Ana@Example.com", "customer_number": 1001.0},
		Context: map[string]any{"traits": map[string]any{"email": "other@example.com", "phone": "+33 6 12 34 56 78"}}}
	got := fmt.Sprint(identity.Keys(identify, s))
	want := "[user_id:u1 anonymous_id:a1 email:ana@example.com phone:+33612345678 customer_number:1001]"
	if got != want {
		t.Fatalf("keys %s, want %s", got, want)
	}
	// A track's own traits are not identifiers; its context.traits are.
	track := &events.Message{Type: "track", UserID: "u1", Traits: map[string]any{"email": "x@example.com"}}
	if got := fmt.Sprint(identity.Keys(track, s)); got != "[user_id:u1]" {
		t.Fatalf("track keys %s", got)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	profiles := map[string]identity.Profile{
		"old-anon": {ID: "old-anon", CreatedAt: t0},
		"new-anon": {ID: "new-anon", CreatedAt: t0.Add(time.Hour)},
		"ana":      {ID: "ana", CreatedAt: t0.Add(2 * time.Hour), UniqueValue: "ana@x.com"},
		"bob":      {ID: "bob", CreatedAt: t0.Add(3 * time.Hour), UniqueValue: "bob@x.com"},
	}
	owners := map[identity.Key]string{
		{Type: "anonymous_id", Value: "a-old"}: "old-anon",
		{Type: "anonymous_id", Value: "a-new"}: "new-anon",
		{Type: "email", Value: "ana@x.com"}:    "ana",
		{Type: "email", Value: "bob@x.com"}:    "bob",
		{Type: "anonymous_id", Value: "a-bob"}: "bob",
		{Type: "user_id", Value: "u-ana"}:      "ana",
	}
	k := func(typ, v string) identity.Key { return identity.Key{Type: typ, Value: v} }
	tests := []struct {
		name string
		keys []identity.Key
		want string
	}{
		{"nothing known: new profile", []identity.Key{k("anonymous_id", "fresh")}, "target= merge=[] attach=[anonymous_id:fresh] conflicts=[]"},
		{"two anonymous: merge into the oldest", []identity.Key{k("anonymous_id", "a-new"), k("anonymous_id", "a-old")}, "target=old-anon merge=[new-anon] attach=[] conflicts=[]"},
		{"anonymous meets known: oldest survives, known joins", []identity.Key{k("anonymous_id", "a-old"), k("email", "ana@x.com")}, "target=old-anon merge=[ana] attach=[] conflicts=[]"},
		{"new email on an anonymous profile: it becomes known", []identity.Key{k("anonymous_id", "a-new"), k("email", "new@x.com")}, "target=new-anon merge=[] attach=[email:new@x.com] conflicts=[]"},
		{"two people: never merged", []identity.Key{k("email", "ana@x.com"), k("anonymous_id", "a-bob")}, "target=ana merge=[] attach=[] conflicts=[bob]"},
		{"new email on someone else's device: new profile", []identity.Key{k("anonymous_id", "a-bob"), k("email", "carl@x.com")}, "target= merge=[] attach=[email:carl@x.com] conflicts=[bob]"},
		{"the record's email decides between two people", []identity.Key{k("anonymous_id", "a-bob"), k("email", "ana@x.com")}, "target=ana merge=[] attach=[] conflicts=[bob]"},
		{"no unique value, two people: the first identifier's wins", []identity.Key{k("anonymous_id", "a-bob"), k("user_id", "u-ana")}, "target=bob merge=[] attach=[] conflicts=[ana]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := identity.Resolve(tt.keys, owners, profiles, "email")
			got := fmt.Sprintf("target=%s merge=%v attach=%v conflicts=%v", p.Target, p.Merge, p.Attach, p.Conflicts)
			if got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// Package identity extracts the identifiers a record carries and decides,
// deterministically, which profile the record belongs to: which profiles to
// merge, and which links to refuse because they would join two different
// people (two values of the workspace's unique identifier).
//
// Everything here is pure; the ingest package applies the decisions in a
// database transaction.
package identity

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/parcours/parcours/pkg/events"
)

// Identity types that every record may carry. Workspaces add their own
// (customer_number, loyalty_card, ...) through identity traits.
const (
	AnonymousID = "anonymous_id"
	UserID      = "user_id"
	Email       = "email"
	Phone       = "phone"
)

// Key is one identifier: a type and a normalised value.
type Key struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

func (k Key) String() string { return k.Type + ":" + k.Value }

// Settings are the workspace's identity rules.
type Settings struct {
	// UniqueIdentifier is the identity type that makes a contact known, and
	// of which a person has exactly one value: email, user_id, or a trait
	// such as customer_number.
	UniqueIdentifier string
	// Traits whose values are identifiers (email, phone, customer_number, ...).
	Traits []string
}

// Keys returns the identifiers of m, normalised, without duplicates, in a
// deterministic order. For an alias, previousId is returned separately: it
// names an existing user or anonymous id.
func Keys(m *events.Message, s Settings) []Key {
	seen := map[Key]bool{}
	var out []Key
	add := func(typ, value string) {
		if value == "" {
			return
		}
		k := Key{Type: typ, Value: value}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	add(UserID, m.UserID)
	add(AnonymousID, m.AnonymousID)
	traitSets := []map[string]any{m.ContextTraits()}
	if m.Type == events.TypeIdentify {
		traitSets = append([]map[string]any{m.Traits}, traitSets...)
	}
	for _, name := range s.Traits {
		for _, traits := range traitSets {
			v, ok := traits[name]
			if !ok {
				continue
			}
			if norm := Normalize(name, fmt.Sprint(v)); norm != "" {
				add(name, norm)
				break // the record's own traits win over context.traits
			}
		}
	}
	return out
}

// Normalize cleans an identifier value: emails trimmed and lower-cased (and
// dropped when they are not emails), phones in E.164 where the number allows
// it, other values trimmed. It returns "" for a value that is not usable.
func Normalize(typ, value string) string {
	value = strings.TrimSpace(value)
	switch typ {
	case Email:
		value = strings.ToLower(value)
		at := strings.LastIndexByte(value, '@')
		if at <= 0 || at == len(value)-1 || strings.ContainsAny(value, " \t") {
			return ""
		}
		return value
	case Phone:
		return NormalizePhone(value)
	}
	if value == "<nil>" {
		return ""
	}
	return value
}

// NormalizePhone returns a phone number as "+" and digits (E.164) when it has
// an international prefix (+ or 00), else its digits alone: without a country
// Parcours will not guess one. Fewer than 6 or more than 15 digits is not a
// phone number.
func NormalizePhone(s string) string {
	s = strings.TrimSpace(s)
	intl := strings.HasPrefix(s, "+") || strings.HasPrefix(s, "00")
	if strings.HasPrefix(s, "00") {
		s = s[2:]
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case unicode.IsDigit(r):
			b.WriteRune(r)
		case strings.ContainsRune(" +-.()/", r):
		default:
			return "" // letters: not a phone number
		}
	}
	d := b.String()
	if len(d) < 6 || len(d) > 15 {
		return ""
	}
	if intl {
		return "+" + d
	}
	return d
}

// Profile is what resolution needs to know of an existing profile.
type Profile struct {
	ID        string
	CreatedAt time.Time
	// UniqueValue is the profile's value of the unique identifier, "" while anonymous.
	UniqueValue string
}

// Plan is the decision for one record.
type Plan struct {
	// Target is the profile the record belongs to; "" means create a new one.
	Target string
	// Merge lists profiles to merge into Target, oldest first.
	Merge []string
	// Attach lists the record's identifiers not yet linked to Target.
	Attach []Key
	// Conflicts lists profiles the record points at but that hold another
	// value of the unique identifier: they are left alone.
	Conflicts []string
}

// Resolve decides which profile a record with keys belongs to. owners maps
// each key already known to the profile that holds it; profiles describes
// those profiles. The rules:
//
//   - no key known: a new profile;
//   - all the profiles found agree on the unique identifier (at most one
//     value among them and the record): merge them into the oldest;
//   - otherwise the record's unique value (or, without one, the profile of
//     its strongest identifier) chooses the target; anonymous profiles are
//     merged into it, profiles with another unique value are conflicts.
func Resolve(keys []Key, owners map[Key]string, profiles map[string]Profile, unique string) Plan {
	var recordUnique string
	for _, k := range keys {
		if k.Type == unique {
			recordUnique = k.Value
		}
	}
	// Profiles in the order of the record's keys (deterministic).
	var found []string
	seen := map[string]bool{}
	for _, k := range keys {
		if id, ok := owners[k]; ok && !seen[id] {
			seen[id] = true
			found = append(found, id)
		}
	}
	plan := Plan{}
	// Choose the target.
	switch {
	case recordUnique != "":
		if id, ok := owners[Key{Type: unique, Value: recordUnique}]; ok {
			plan.Target = id
		}
	default:
		// Without a unique value on the record, the profiles' own unique
		// values decide: the first found that has one, in key order.
		for _, id := range found {
			if profiles[id].UniqueValue != "" {
				plan.Target = id
				recordUnique = profiles[id].UniqueValue
				break
			}
		}
	}
	var mergeable []string
	for _, id := range found {
		if id == plan.Target {
			continue
		}
		uv := profiles[id].UniqueValue
		if uv == "" || uv == recordUnique {
			mergeable = append(mergeable, id)
		} else {
			plan.Conflicts = append(plan.Conflicts, id)
		}
	}
	// Merge into the oldest of the target and the mergeable profiles.
	group := mergeable
	if plan.Target != "" {
		group = append([]string{plan.Target}, mergeable...)
	}
	sort.SliceStable(group, func(i, j int) bool {
		a, b := profiles[group[i]], profiles[group[j]]
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
	if len(group) > 0 {
		plan.Target = group[0]
		plan.Merge = group[1:]
	}
	// Keys to attach: those not owned, or owned by a merged profile (they
	// move with the merge, so only unowned ones are listed).
	for _, k := range keys {
		if _, ok := owners[k]; !ok {
			plan.Attach = append(plan.Attach, k)
		}
	}
	return plan
}

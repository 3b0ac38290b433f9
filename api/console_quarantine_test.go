package api

import "testing"

func TestQuarantineWhy(t *testing.T) {
	t.Parallel()
	tests := []struct{ field, reason, want string }{
		{"rule", `rule "Orders have a total" rejected it: properties.total > 0`, `Validation rule "Orders have a total" rejected it: properties.total > 0`},
		{"batch[3].rule", `rule "R" rejected it: x`, `Validation rule "R" rejected it: x`},
		{"userId", "is missing: every record needs a userId or an anonymousId", "userId is missing: every record needs a userId or an anonymousId"},
		{"batch[0].event", "is missing: a track call needs the name of the event", "event is missing: a track call needs the name of the event"},
		{"batch[2].(record)", "a record may be at most 32 KB", "A record may be at most 32 KB"},
		{"line 12: Email", `"x" is not a valid email`, `Line 12, column “Email”: "x" is not a valid email`},
		{"line 7", "has 3 fields where the header has 2", "Line 7 of the file has 3 fields where the header has 2"},
		{"(record)", "is not a valid JSON object: unexpected end", "The record is not a valid JSON object: unexpected end"},
	}
	for _, tt := range tests {
		if got := quarantineWhy(tt.field, tt.reason); got != tt.want {
			t.Errorf("quarantineWhy(%q, %q) = %q, want %q", tt.field, tt.reason, got, tt.want)
		}
	}
}

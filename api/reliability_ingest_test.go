package api_test

import (
	"testing"
)

// R12: JSON escapes that are valid JSON but that PostgreSQL refuses to
// store — \u0000, and a surrogate escape without its other half — were
// answered 500 (found by make soak's R12 fuzzing). The record is now
// stored, each such escape read as U+FFFD (as Go's decoder reads a lone
// surrogate); a real pair and an escaped backslash stay as sent.
func TestR12EscapesPostgreSQLRefusesAreStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name, body, want string // want: the stored property "v"
	}{
		{"NUL", `{"userId":"u","event":"E","properties":{"v":"a\u0000b"}}`, "a\ufffdb"},
		{"NUL in the event name", `{"userId":"u","event":"E\u0000","properties":{"v":"x"}}`, "x"},
		{"NUL in a key", `{"userId":"u","event":"E","properties":{"v":"y","k\u0000":1}}`, "y"},
		{"lone high surrogate", `{"userId":"u","event":"E","properties":{"v":"\ud800"}}`, "\ufffd"},
		{"lone low surrogate", `{"userId":"u","event":"E","properties":{"v":"\uDFFF!"}}`, "\ufffd!"},
		{"halves reversed", `{"userId":"u","event":"E","properties":{"v":"\udc00\ud800"}}`, "\ufffd\ufffd"},
		{"high then not low", `{"userId":"u","event":"E","properties":{"v":"\ud800\u0041"}}`, "\ufffdA"},
		{"a real pair", `{"userId":"u","event":"E","properties":{"v":"\ud83d\ude00"}}`, "😀"},
		{"an escaped backslash", `{"userId":"u","event":"E","properties":{"v":"\\u0000"}}`, `\u0000`},
	}
	for i, tc := range cases {
		status, body := e.send(t, e.write, "/v1/track", []byte(tc.body))
		if status != 200 || body["accepted"] != 1.0 {
			t.Fatalf("%s: %d %v", tc.name, status, body)
		}
		var got string
		if err := e.pool.QueryRow(t.Context(), `SELECT properties->>'v' FROM events WHERE workspace_id = $1 ORDER BY id DESC LIMIT 1`, e.ws.ID).Scan(&got); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Fatalf("%s (record %d): stored %q, want %q", tc.name, i, got, tc.want)
		}
	}
	// In a batch too.
	status, body := e.send(t, e.write, "/v1/batch", []byte(`{"batch":[{"type":"track","userId":"u","event":"\u0000","properties":{"v":"\udbff"}}]}`))
	if status != 200 || body["accepted"] != 1.0 {
		t.Fatalf("batch: %d %v", status, body)
	}
}

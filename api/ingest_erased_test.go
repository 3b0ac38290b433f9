package api_test

import (
	"encoding/json"
	"testing"
)

// A write key is public (it sits in web pages): the ingest answer must not
// tell its holder that somebody was erased. Records about an erased person
// are dropped, but answered exactly as records about anybody else.
func TestIngestAnswerDoesNotTellSomeoneWasErased(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "u-gone", "messageId": "g-id", "traits": map[string]string{"email": "gone@example.com"}})
	id := e.profileBy(t, "userId=u-gone")["id"].(string)
	if status, _, out := e.call(t, "DELETE", "/v1/profiles/"+id, e.admin, nil); status != 200 {
		t.Fatalf("erase: %d %v", status, out)
	}

	answer := func(out map[string]any) string {
		b, _ := json.Marshal(out)
		return string(b)
	}
	// One call about the erased person, one about a stranger: same answer.
	erased := e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "u-gone", "event": "Came Back", "messageId": "g-late"})
	stranger := e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "u-new", "event": "Came Back", "messageId": "n-late"})
	if answer(erased) != answer(stranger) {
		t.Errorf("a record about an erased person is answered %s, about anyone else %s", answer(erased), answer(stranger))
	}
	if _, ok := erased["suppressed"]; ok {
		t.Errorf("the answer counts suppressed records: %s", answer(erased))
	}
	// A batch repeating a messageId: the repeat is a duplicate either way.
	batch := func(user, mid string) map[string]any {
		rec := map[string]any{"type": "track", "userId": user, "event": "Viewed", "messageId": mid}
		return e.mustSend(t, e.write, "/v1/batch", map[string]any{"batch": []any{rec, rec}})
	}
	erased, stranger = batch("u-gone", "g-twice"), batch("u-new", "n-twice")
	if answer(erased) != answer(stranger) || stranger["accepted"] != 1.0 || stranger["duplicates"] != 1.0 {
		t.Errorf("a batch about an erased person is answered %s, about anyone else %s", answer(erased), answer(stranger))
	}
	// And nothing about the erased person was stored.
	if status, _, _ := e.call(t, "GET", "/v1/profiles/lookup?userId=u-gone", e.admin, nil); status != 404 {
		t.Fatal("a late record recreated the erased profile")
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE workspace_id = $1 AND user_id = 'u-gone'`, e.ws.ID); n != 0 {
		t.Fatalf("%d records about the erased person were stored", n)
	}
}

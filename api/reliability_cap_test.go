package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/channel/channeltest"
)

// R11: one person, a cap of 2 marketing emails a day, and 5 live journeys
// that each send to them, each entered twice at once: 10 marketing sends
// race (and 10 transactional ones with them). Exactly 2 marketing emails
// reach SendGrid, the 8 others are recorded skipped for the frequency cap,
// and every transactional email goes.
func TestR11FrequencyCapAcrossJourneysAndConcurrentSends(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := channeltest.NewSendGrid(t, "SG.r11")
	if status, _, body := e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{"api_key": "SG.r11", "from_email": "news@shop.example", "base_url": fake.URL}); status != 200 {
		t.Fatalf("email channel: %d %v", status, body)
	}
	for _, slug := range []string{"promo", "receipt"} {
		if status, _, body := e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": slug, "name": slug, "channel": "email", "subject": slug, "html": "<p>" + slug + "</p>"}); status != 201 {
			t.Fatalf("template: %d %v", status, body)
		}
	}
	if status, _, body := e.call(t, "PUT", "/v1/policies/delivery", e.admin, map[string]any{
		"frequency_caps": []any{map[string]any{"channel": "email", "max": 2, "per": "1d"}},
	}); status != 200 {
		t.Fatalf("policy: %d %v", status, body)
	}
	const journeys, entries = 5, 2
	var ids []string
	for i := range journeys {
		// Half send the promotion first, half the receipt: transactional
		// and marketing sends interleave.
		promo := `{"id": "promo", "type": "send", "channel": "email", "template": "promo", "on_policy": "drop", "next": "%s"}`
		receipt := `{"id": "receipt", "type": "send", "channel": "email", "template": "receipt", "class": "transactional", "next": "%s"}`
		start, nodes := "promo", fmt.Sprintf(promo, "receipt")+", "+fmt.Sprintf(receipt, "end")
		if i%2 == 1 {
			start, nodes = "receipt", fmt.Sprintf(receipt, "promo")+", "+fmt.Sprintf(promo, "end")
		}
		status, _, j := e.call(t, "POST", "/v1/journeys", e.admin, fmt.Sprintf(`{
		  "name": "Offer %d", "trigger": {"type": "event", "event": "Browsed"}, "entry": {"re_entry": "every_time"},
		  "start": %q, "nodes": [%s, {"id": "end", "type": "exit"}]}`, i+1, start, nodes))
		if status != 201 {
			t.Fatalf("journey %d: %d %v", i+1, status, j)
		}
		id := j["id"].(string)
		if status, _, body := e.call(t, "POST", "/v1/journeys/"+id+"/publish", e.admin, nil); status != 200 {
			t.Fatalf("publish: %d %v", status, body)
		}
		ids = append(ids, id)
	}
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "ana", "traits": map[string]any{"email": "ana@example.com"}})
	ana := e.profileBy(t, "userId=ana")["id"].(string)
	// Two records in one batch: every journey starts two runs at once.
	var batch []map[string]any
	for n := range entries {
		batch = append(batch, map[string]any{"type": "track", "userId": "ana", "event": "Browsed", "messageId": fmt.Sprintf("browse-%d", n)})
	}
	e.mustSend(t, e.write, "/v1/batch", map[string]any{"batch": batch})
	for _, id := range ids {
		e.waitForEnded(t, id, entries)
	}

	_, _, ds := e.call(t, "GET", "/v1/deliveries?profile_id="+ana+"&limit=100", e.admin, nil)
	sent, capped, receipts := 0, 0, 0
	for _, d := range ds["data"].([]any) {
		d := d.(map[string]any)
		switch {
		case d["node_id"] == "receipt" && d["class"] == "transactional" && d["status"] == "sent":
			receipts++
		case d["node_id"] == "promo" && d["status"] == "sent":
			sent++
		case d["node_id"] == "promo" && d["status"] == "skipped" && d["reason"] == "frequency_cap":
			capped++
		default:
			t.Errorf("unexpected delivery %v", d)
		}
	}
	if sent != 2 || capped != journeys*entries-2 || receipts != journeys*entries {
		t.Fatalf("%d promotions sent, %d capped, %d receipts; want 2, %d, %d", sent, capped, receipts, journeys*entries-2, journeys*entries)
	}
	var subjects []string
	promos := 0
	for _, m := range fake.Accepted() {
		subjects = append(subjects, m.Subject)
		if m.Subject == "promo" {
			promos++
		}
	}
	if promos != 2 || len(subjects) != 2+journeys*entries {
		t.Fatalf("SendGrid received %d emails (%s), %d promotions; want 2 promotions and %d receipts", len(subjects), strings.Join(subjects, ","), promos, journeys*entries)
	}
}

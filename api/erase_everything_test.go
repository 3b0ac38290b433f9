package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
	"github.com/parcours/parcours/pkg/segment"
)

// M2 (issue 16): a person who touched every table is erased; afterwards no
// text, JSON or binary column of any table holds their email, phone, user
// id, anonymous id or the plain SHA-256 of an address or identifier
// (anyone knowing the address could recompute those), and the segment
// webhook's receiver, which was told who entered, is told the profile was
// erased — by id only.
func TestEraseLeavesNothingOfThePersonInAnyColumn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	const (
		email   = "erin.erasable@example.com"
		phone   = "+33698765432"
		phoneAs = "+33 6 98 76 54 32"
		userID  = "user-erin-7f3a9c"
		anonID  = "anon-erin-51b2c8"
	)
	if status, _, ws := e.call(t, "PATCH", "/v1/workspace", e.admin, map[string]any{"identity_traits": []string{"email", "phone"}}); status != 200 {
		t.Fatalf("settings: %d %v", status, ws)
	}

	// Channels: email through a fake SendGrid with its signed event webhook.
	k := newSGKey(t)
	fake := channeltest.NewSendGrid(t, "SG.erase")
	if status, _, body := e.call(t, "PUT", "/v1/channels/email", e.admin, map[string]any{
		"api_key": "SG.erase", "from_email": "news@shop.example", "base_url": fake.URL, "event_webhook_public_key": k.public,
	}); status != 200 {
		t.Fatalf("configure email: %d %v", status, body)
	}
	if status, _, body := e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": "promo", "name": "Promo", "subject": "Sale", "html": "<p>Sale {{ profile.traits.first_name }}</p>"}); status != 201 {
		t.Fatalf("template: %d %v", status, body)
	}

	// A segment with a webhook receiver, told of entries with the email.
	var mu sync.Mutex
	var hookBodies []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		mu.Lock()
		hookBodies = append(hookBodies, string(raw))
		mu.Unlock()
	}))
	defer recv.Close()
	seg := e.createSegment(t, "known-people", `profile.traits.first_name == "Erin"`)
	if status, _, body := e.call(t, "POST", "/v1/segments/"+seg["id"].(string)+"/webhooks", e.admin, map[string]any{"url": recv.URL + "/hooks", "kinds": []string{"entered"}}); status != 201 {
		t.Fatalf("segment webhook: %d %v", status, body)
	}

	// A live journey that sends on sign-up.
	_, _, j := e.call(t, "POST", "/v1/journeys", e.admin, strings.ReplaceAll(welcomeJourney, `"welcome"`, `"promo"`))
	journeyID := j["id"].(string)
	if status, _, body := e.call(t, "POST", "/v1/journeys/"+journeyID+"/publish", e.admin, nil); status != 200 {
		t.Fatalf("publish: %d %v", status, body)
	}

	// Erin: anonymous visit, identification, events.
	e.mustSend(t, e.write, "/v1/page", map[string]any{"anonymousId": anonID, "name": "Home"})
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"anonymousId": anonID, "userId": userID,
		"traits": map[string]any{"email": email, "phone": phoneAs, "first_name": "Erin"}})
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": userID, "event": "Signed Up", "properties": map[string]any{"contact": email}})
	erin := e.profileBy(t, "userId="+userID)["id"].(string)
	// Someone else, whose data stays.
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "user-fred-0001", "traits": map[string]any{"email": "fred@example.com", "first_name": "Fred"}})

	// A record of hers refused at the door (quarantine), quoting her email.
	if status, out := e.send(t, e.write, "/v1/track", map[string]any{"userId": userID, "timestamp": "yesterday", "event": "Order Completed",
		"context": map[string]any{"traits": map[string]any{"email": email, "phone": phoneAs}}}); status != 200 && status != 400 && status != 422 {
		t.Fatalf("bad record: %d %v", status, out)
	}
	// And one of Fred's, which stays.
	if status, out := e.send(t, e.write, "/v1/track", map[string]any{"userId": "user-fred-0001", "timestamp": "yesterday", "event": "Order Completed"}); status != 200 && status != 400 && status != 422 {
		t.Fatalf("Fred's bad record: %d %v", status, out)
	}
	// An import with a bad row quoting her email (in the phone column).
	im := e.mustImport(t, "crm.csv", "Email,Phone,First name\n"+email+","+email+",Erin\nfred@example.com,+33611111111,Fred\n",
		`{"columns":{"Email":{"identifier":"email"},"Phone":{"identifier":"phone"},"First name":{"trait":"first_name"}}}`)
	if bad, _ := im["bad_rows"].([]any); len(bad) != 1 || !strings.Contains(fmt.Sprint(bad), email) {
		t.Fatalf("import bad rows %v, want one quoting the email", im["bad_rows"])
	}
	if n := e.count(t, `SELECT count(*) FROM rejected_records WHERE workspace_id = $1 AND raw ILIKE '%erin%'`, e.ws.ID); n < 2 {
		t.Fatalf("%d quarantined records of Erin, want the bad call and the bad row", n)
	}

	// The journey sent her the promo.
	e.waitFor(t, "the journey run to end", func() bool {
		rs := e.runs(t, journeyID)
		return len(rs) == 1 && rs[0]["ended_at"] != nil
	})
	if len(fake.Accepted()) != 1 {
		t.Fatalf("%d mails sent, want 1", len(fake.Accepted()))
	}
	var deliveryID, providerID string
	if err := e.pool.QueryRow(ctx, `SELECT id::text, provider_message_id FROM deliveries WHERE workspace_id = $1 AND profile_id = $2`, e.ws.ID, erin).Scan(&deliveryID, &providerID); err != nil {
		t.Fatal(err)
	}
	// A test send to her bare address.
	if _, err := e.ledger.Send(ctx, channel.SendRequest{BusinessKey: "test/promo/1", WorkspaceID: e.ws.ID, ToEmail: email, TemplateSlug: "promo", Channel: "email", Class: "transactional"}); err != nil {
		t.Fatalf("test send: %v", err)
	}

	// SendGrid reports: delivered, a click on a link carrying her address,
	// a bounce whose reason and response quote it, and a spam report that
	// names no delivery.
	now := time.Now().Unix()
	sgEv := func(event, id string, extra map[string]any) map[string]any {
		ev := map[string]any{"email": email, "timestamp": now, "event": event, "sg_event_id": id,
			"sg_message_id": providerID + ".filter-1", "parcours_delivery_id": deliveryID, "parcours_workspace_id": e.ws.ID,
			"ip": "203.0.113.9", "useragent": "Mozilla/5.0", "smtp-id": "<" + email + ">"}
		for k, v := range extra {
			ev[k] = v
		}
		return ev
	}
	events := []map[string]any{
		sgEv("delivered", "ev-1", map[string]any{"response": "250 2.0.0 OK accepted for <" + email + ">"}),
		sgEv("click", "ev-2", map[string]any{"url": "https://shop.example/account?email=" + url.QueryEscape(email) + "&ref=" + userID}),
		sgEv("bounce", "ev-3", map[string]any{"type": "bounce", "status": "5.1.1",
			"reason": "550 5.1.1 <" + strings.ToUpper(email) + ">: Recipient address rejected: User unknown", "response": "550 5.1.1 " + email + " unknown"}),
		{"email": email, "timestamp": now, "event": "spamreport", "sg_event_id": "ev-4", "sg_message_id": "other.filter-2"},
	}
	if status, out := e.postSigned(t, k, mustJSON(t, events)); status != 200 {
		t.Fatalf("sendgrid events: %d %v", status, out)
	}
	if n := e.count(t, `SELECT count(*) FROM suppressions WHERE workspace_id = $1`, e.ws.ID); n != 2 {
		t.Fatalf("%d suppressions after a bounce and a spam report, want 2", n)
	}
	// Consent: she unsubscribes; her number is suppressed by hand.
	if status, _, body := e.call(t, "PUT", "/v1/profiles/"+erin+"/subscriptions/email", e.admin, map[string]any{"purpose": "marketing", "status": "unsubscribed"}); status != 200 {
		t.Fatalf("unsubscribe: %d %v", status, body)
	}
	if status, _, body := e.call(t, "POST", "/v1/suppressions", e.admin, map[string]any{"channel": "sms", "address": phoneAs, "reason": "manual"}); status != 201 {
		t.Fatalf("suppress number: %d %v", status, body)
	}

	// The receiver hears of her entry, with her email.
	d := &segment.Dispatcher{Pool: e.pool, Box: e.ledger.Settings.Box(), Webhook: channel.NewWebhook([]string{"127.0.0.1"}), Backoff: time.Hour}
	for {
		posted, err := d.DispatchOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !posted {
			break
		}
	}
	mu.Lock()
	if len(hookBodies) != 1 || !strings.Contains(hookBodies[0], email) {
		t.Fatalf("receiver got %v, want Erin's entry", hookBodies)
	}
	mu.Unlock()

	// Erase her.
	if status, _, out := e.call(t, "DELETE", "/v1/profiles/"+erin, e.admin, nil); status != 200 {
		t.Fatalf("erase: %d %v", status, out)
	}

	// The receiver is told, by profile id only.
	for {
		posted, err := d.DispatchOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !posted {
			break
		}
	}
	mu.Lock()
	posts := append([]string(nil), hookBodies...)
	mu.Unlock()
	if len(posts) != 2 {
		t.Errorf("receiver got %d posts, want the entry and the erasure", len(posts))
	} else {
		var notice segment.HookPayload
		if err := json.Unmarshal([]byte(posts[1]), &notice); err != nil {
			t.Fatal(err)
		}
		if len(notice.Events) != 1 || notice.Events[0].Kind != "erased" || notice.Events[0].Profile != (segment.HookProfile{ID: erin}) ||
			notice.Events[0].Segment.Slug != "known-people" || strings.Contains(posts[1], "erin.") {
			t.Errorf("erasure notice %s, want one erased event naming the profile id only", posts[1])
		}
	}

	// Every column of every table.
	plain := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	needles := map[string]string{
		"email": email, "email's local part": "erin.erasable", "url-encoded email": url.QueryEscape(email),
		"phone": phone, "phone as sent": phoneAs, "user id": userID, "anonymous id": anonID,
		"sha256(email)": plain(email), "sha256(phone)": plain(phone),
		"sha256(email identity)": plain("email\x00" + email), "sha256(phone identity)": plain("phone\x00" + phone),
		"sha256(user id identity)": plain("user_id\x00" + userID), "sha256(anonymous id identity)": plain("anonymous_id\x00" + anonID),
	}
	for _, hit := range searchEveryColumn(t, e, needles) {
		t.Errorf("after erasure %s", hit)
	}
	// Fred stays, with his quarantined record; the import's bad row keeps
	// its line, the deliveries their figures (linked to no one), the
	// suppressions their hashes; the notice, delivered, is gone.
	e.profileBy(t, "email=fred@example.com")
	if n := e.count(t, `SELECT count(*) FROM rejected_records WHERE workspace_id = $1 AND raw LIKE '%user-fred-0001%'`, e.ws.ID); n != 1 {
		t.Errorf("%d quarantined records of Fred after Erin's erasure, want 1", n)
	}
	if n := e.count(t, `SELECT count(*) FROM imports WHERE workspace_id = $1 AND bad_rows @> '[{"line": 2, "field": "Phone"}]'`, e.ws.ID); n != 1 {
		t.Errorf("the import's bad row at line 2 is gone, want it kept without its reason")
	}
	if n := e.count(t, `SELECT count(*) FROM deliveries WHERE workspace_id = $1 AND profile_id IS NULL AND address_hash IS NULL AND delivered_at IS NOT NULL`, e.ws.ID); n != 1 {
		t.Errorf("%d delivered deliveries kept unlinked, want the journey's", n)
	}
	if n := e.count(t, `SELECT count(*) FROM suppressions WHERE workspace_id = $1`, e.ws.ID); n != 3 {
		t.Errorf("%d suppressions after erasure, want the bounce, the spam report and the number", n)
	}
	if n := e.count(t, `SELECT count(*) FROM segment_events WHERE workspace_id = $1`, e.ws.ID); n != 0 {
		t.Errorf("%d segment events left after the notice was delivered, want 0", n)
	}
	dl, err := e.ledger.Send(ctx, channel.SendRequest{BusinessKey: "test/promo/after", WorkspaceID: e.ws.ID, ToEmail: email, TemplateSlug: "promo", Channel: "email", Class: "transactional"})
	if err != nil || dl.Status != channel.StatusSkipped || !strings.Contains(dl.Reason, "suppressed") {
		t.Fatalf("send to the erased, bounced address after erasure: %+v %v, want skipped (suppressed)", dl, err)
	}
}

// searchEveryColumn looks for each needle (case-insensitively) in every
// column of every table of the database, cast to text (bytea as hex), and
// names where it found one.
func searchEveryColumn(t *testing.T, e *env, needles map[string]string) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := e.pool.Query(ctx, `
		SELECT c.Table_name, c.Column_name FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.Table_schema AND t.table_name = c.Table_name AND t.table_type = 'BASE TABLE'
		WHERE c.Table_schema = 'public' AND c.Table_name <> 'goose_db_version'
		ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	type col struct{ Table, Column string }
	cols, err := pgx.CollectRows(rows, pgx.RowToStructByPos[col])
	if err != nil {
		t.Fatal(err)
	}
	if len(cols) < 100 {
		t.Fatalf("only %d columns found", len(cols))
	}
	var hits []string
	for _, c := range cols {
		for what, needle := range needles {
			var n int
			q := fmt.Sprintf(`SELECT count(*) FROM %s WHERE position($1 IN lower(%s::text)) > 0`, pgx.Identifier{c.Table}.Sanitize(), pgx.Identifier{c.Column}.Sanitize())
			if err := e.pool.QueryRow(ctx, q, strings.ToLower(needle)).Scan(&n); err != nil {
				t.Fatalf("search %s.%s: %v", c.Table, c.Column, err)
			}
			if n > 0 {
				hits = append(hits, fmt.Sprintf("%s.%s: %d rows hold the %s", c.Table, c.Column, n, what))
			}
		}
	}
	return hits
}

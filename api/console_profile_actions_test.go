package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/user"
)

// mergedPerson sends records that make two profiles of one person, a
// visitor's and a customer's, and then merge them (an alias), as
// TestMergeCanBeUndoneThroughTheAPI does. It returns the surviving
// profile's id, the merged one's and the merge's.
func (e *env) mergedPerson(t *testing.T) (survivor, merged, mergeID string) {
	t.Helper()
	e.mustSend(t, e.write, "/v1/page", map[string]any{"anonymousId": "cookie-x", "name": "Home", "messageId": "pv"})
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "u-x", "traits": map[string]string{"email": "xena@example.com", "name": "Xena Park"}, "messageId": "id"})
	visitor := e.profileBy(t, "anonymousId=cookie-x")["id"].(string)
	customer := e.profileBy(t, "email=xena@example.com")["id"].(string)
	e.mustSend(t, e.write, "/v1/alias", map[string]any{"userId": "u-x", "previousId": "cookie-x", "messageId": "al"})
	p := e.profileBy(t, "email=xena@example.com")
	merges := p["merges"].([]any)
	if p["id"] != e.profileBy(t, "anonymousId=cookie-x")["id"] || len(merges) != 1 {
		t.Fatalf("alias did not merge: %v", p)
	}
	survivor, merged = visitor, customer
	if p["id"] == customer {
		survivor, merged = customer, visitor
	}
	return survivor, merged, merges[0].(map[string]any)["id"].(string)
}

func TestConsoleUndoesAMergeAfterSayingWhatMoves(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	survivor, merged, mergeID := e.mergedPerson(t)
	b := newBrowser(t, e)
	token := b.signIn(t, "mia@shop.example", e.consoleUser(t, "mia@shop.example", user.RoleMarketer))

	// Which of the visitor and the customer survived is the merge's rule;
	// the other one's identifiers are the ones to go back.
	mergedBy, mergedSays, survivorBy := "email=xena@example.com", "Email: xena@example.com", "anonymousId=cookie-x"
	if e.profileBy(t, "anonymousId=cookie-x")["id"] == merged {
		mergedBy, mergedSays, survivorBy = survivorBy, "Anonymous ID: cookie-x", mergedBy
	}

	undo := "/profiles/" + survivor + "/merges/" + mergeID + "/undo"
	_, page := b.do(t, "GET", "/profiles/"+survivor, nil)
	if !strings.Contains(page, `href="`+undo+`"`) || !strings.Contains(page, "Undo this merge") || !strings.Contains(page, "linked by") {
		t.Fatalf("the merge history offers no undo:\n%.3000s", mainOf(page))
	}
	// The confirmation says what goes back, and changes nothing yet.
	resp, page := b.do(t, "GET", undo, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, mergedSays) || !strings.Contains(page, "1 record received") {
		t.Fatalf("confirmation: %d\n%.3000s", resp.StatusCode, mainOf(page))
	}
	if e.profileBy(t, mergedBy)["id"] != survivor {
		t.Fatal("showing the confirmation undid the merge")
	}

	resp, page = b.do(t, "POST", undo, url.Values{"csrf": {token}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/profiles/"+survivor+"?split="+merged {
		t.Fatalf("undo: %d to %q\n%.2000s", resp.StatusCode, resp.Header.Get("Location"), mainOf(page))
	}
	// Two profiles again, each with its own identifiers and records.
	back := e.profileBy(t, mergedBy)
	if back["id"] != merged || back["computed"].(map[string]any)["event_count"] != 1.0 {
		t.Fatalf("restored profile %v", back)
	}
	if e.profileBy(t, survivorBy)["id"] != survivor {
		t.Fatal("the survivor lost its own identifier")
	}
	_, page = b.do(t, "GET", resp.Header.Get("Location"), nil)
	if !strings.Contains(page, `id="split"`) || !strings.Contains(page, `href="/profiles/`+merged+`"`) || !strings.Contains(page, "undone") {
		t.Fatalf("after the undo the page does not link the profile split off:\n%.3000s", mainOf(page))
	}
	if strings.Contains(page, `href="`+undo+`"`) {
		t.Fatal("an undone merge still offers an undo")
	}
	// Twice: refused in words, nothing changes.
	resp, page = b.do(t, "POST", undo, url.Values{"csrf": {token}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(page, "already undone") {
		t.Fatalf("second undo: %d\n%.2000s", resp.StatusCode, page)
	}
}

func TestConsoleDownloadsAPersonsData(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "u-d", "messageId": "d-id",
		"traits": map[string]string{"email": "dora@example.com", "address": "2 rue du Bac"}})
	id := e.profileBy(t, "email=dora@example.com")["id"].(string)
	export := "/profiles/" + id + "/export"

	// Without a session: to the sign-in page, no data.
	resp, body := newBrowser(t, e).do(t, "GET", export, nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") || strings.Contains(body, "rue du Bac") {
		t.Fatalf("export signed out: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	b := newBrowser(t, e)
	b.signIn(t, "mia@shop.example", e.consoleUser(t, "mia@shop.example", user.RoleMarketer))
	_, page := b.do(t, "GET", "/profiles/"+id, nil)
	if !strings.Contains(page, `href="`+export+`"`) || !strings.Contains(page, "Download this person's data") {
		t.Fatalf("no download on the page:\n%.3000s", mainOf(page))
	}
	if strings.Contains(page, "Erase this person") {
		t.Fatal("a marketer is offered the erasure")
	}
	resp, body = b.do(t, "GET", export, nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") ||
		resp.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
	}
	var doc struct {
		Profile struct {
			ID     string         `json:"id"`
			Traits map[string]any `json:"traits"`
		} `json:"profile"`
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("export is not JSON: %v\n%.1000s", err, body)
	}
	if doc.Profile.ID != id || doc.Profile.Traits["address"] != "2 rue du Bac" || len(doc.Events) != 1 {
		t.Fatalf("export lacks the person's data: %s", body)
	}
}

func TestConsoleErasesOnlyWithTheTypedConfirmation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "u-e", "messageId": "e-id",
		"traits": map[string]string{"email": "erin@example.com", "name": "Erin Blake"}})
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "u-f", "messageId": "f-id", "traits": map[string]string{"email": "fred@example.com"}})
	id := e.profileBy(t, "email=erin@example.com")["id"].(string)
	erase := "/profiles/" + id + "/erase"

	// A marketer is not offered it and cannot reach it.
	m := newBrowser(t, e)
	m.signIn(t, "mia@shop.example", e.consoleUser(t, "mia@shop.example", user.RoleMarketer))
	if resp, _ := m.do(t, "GET", erase, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a marketer opened the erasure: %d", resp.StatusCode)
	}

	b := newBrowser(t, e)
	token := b.signIn(t, "ana@shop.example", e.consoleUser(t, "ana@shop.example", user.RoleAdmin))
	_, page := b.do(t, "GET", "/profiles/"+id, nil)
	if !strings.Contains(page, `href="`+erase+`"`) {
		t.Fatalf("an admin is not offered the erasure:\n%.3000s", page)
	}
	resp, page := b.do(t, "GET", erase, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "Erase Erin Blake?") || !strings.Contains(page, "cannot be undone") ||
		!strings.Contains(page, "type their email: <strong>erin@example.com</strong>") {
		t.Fatalf("confirmation page: %d\n%.3000s", resp.StatusCode, page)
	}

	for _, typed := range []string{"", "fred@example.com", "ERASE"} {
		resp, page := b.do(t, "POST", erase, url.Values{"csrf": {token}, "confirm": {typed}})
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "Nothing was erased") || !strings.Contains(page, `aria-invalid="true"`) {
			t.Fatalf("confirmation %q: %d\n%.2000s", typed, resp.StatusCode, page)
		}
		if e.profileBy(t, "email=erin@example.com")["id"] != id {
			t.Fatalf("confirmation %q erased the person", typed)
		}
	}

	// Her email, in any case, erases her; the list says so.
	resp, page = b.do(t, "POST", erase, url.Values{"csrf": {token}, "confirm": {" Erin@Example.com "}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/profiles?") {
		t.Fatalf("erase: %d %q\n%.2000s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	_, page = b.do(t, "GET", resp.Header.Get("Location"), nil)
	if !strings.Contains(page, `id="erased"`) || !strings.Contains(page, "2 identifiers") {
		t.Fatalf("the profiles list does not confirm the erasure:\n%.2000s", page)
	}
	if resp, _ := b.do(t, "GET", "/profiles/"+id, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the erased profile's page: %d, want 404", resp.StatusCode)
	}
	for _, q := range []string{"email=erin@example.com", "userId=u-e"} {
		if status, _, _ := e.call(t, "GET", "/v1/profiles/lookup?"+q, e.admin, nil); status != 404 {
			t.Errorf("after erasure lookup %s: %d, want 404", q, status)
		}
	}
	if status, _, _ := e.call(t, "GET", "/v1/profiles/"+id, e.admin, nil); status != 404 {
		t.Errorf("after erasure GET /v1/profiles/%s: %d, want 404", id, status)
	}
	if n := e.count(t, `SELECT count(*) FROM erasures WHERE workspace_id = $1 AND profile_id = $2`, e.ws.ID, id); n != 1 {
		t.Fatalf("%d audit rows for the erasure, want 1", n)
	}
	e.profileBy(t, "email=fred@example.com") // someone else is untouched
}

func TestConsoleViewerCannotUndoExportOrErase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	survivor, _, mergeID := e.mergedPerson(t)
	b := newBrowser(t, e)
	token := b.signIn(t, "val@shop.example", e.consoleUser(t, "val@shop.example", user.RoleViewer))

	_, page := b.do(t, "GET", "/profiles/"+survivor, nil)
	if !strings.Contains(page, "Merge history") {
		t.Fatalf("the viewer does not see the profile:\n%.2000s", page)
	}
	for _, offer := range []string{"Undo this merge", "Download this person", "Erase this person", "/undo", "/export", "/erase"} {
		if strings.Contains(page, offer) {
			t.Errorf("a viewer is offered %q", offer)
		}
	}
	posts := map[string]url.Values{
		"/profiles/" + survivor + "/merges/" + mergeID + "/undo": {"csrf": {token}},
		"/profiles/" + survivor + "/erase":                       {"csrf": {token}, "confirm": {"xena@example.com"}},
	}
	for path, form := range posts {
		resp, page := b.do(t, "POST", path, form)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "can look but not change") {
			t.Errorf("viewer POST %s: %d\n%.1500s", path, resp.StatusCode, page)
		}
	}
	if resp, _ := b.do(t, "GET", "/profiles/"+survivor+"/export", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("viewer export: %d", resp.StatusCode)
	}
	// Still one person, still merged.
	if p := e.profileBy(t, "anonymousId=cookie-x"); p["id"] != survivor {
		t.Fatalf("a viewer's POST changed the profile: %v", p["id"])
	}
}

// mainOf is the page's content, without the layout's head, for messages.
func mainOf(page string) string {
	if i := strings.Index(page, "<main"); i >= 0 {
		return page[i:]
	}
	return page
}

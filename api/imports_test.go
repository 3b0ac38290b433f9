package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/api"
)

// importForm posts a multipart import: the file and the other form fields.
func (e *env) importForm(t *testing.T, key, fileName, file string, fields map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if fileName != "" {
		fw, err := w.CreateFormFile("file", fileName)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(fw, file)
	}
	w.Close()
	return e.do(t, key, "/v1/imports", w.FormDataContentType(), &body)
}

// do posts body with a content type and decodes the JSON answer.
func (e *env) do(t *testing.T, key, path, contentType string, body io.Reader) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", e.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("POST %s: %d, answer is not JSON: %s", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, resp.Header, out
}

// mustImport uploads a file, expects 202, and waits for the import to end.
func (e *env) mustImport(t *testing.T, fileName, file, mapping string) map[string]any {
	t.Helper()
	status, hdr, body := e.importForm(t, e.admin, fileName, file, map[string]string{"mapping": mapping})
	if status != http.StatusAccepted {
		t.Fatalf("import %s: %d %v", fileName, status, body)
	}
	if hdr.Get("Location") != body["status_url"] || body["status"] != "pending" {
		t.Fatalf("202 answer: Location %q, body %v", hdr.Get("Location"), body)
	}
	return e.waitImport(t, body["status_url"].(string))
}

func (e *env) waitImport(t *testing.T, statusURL string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _, im := e.call(t, "GET", statusURL, e.admin, nil)
		if status != 200 {
			t.Fatalf("GET %s: %d %v", statusURL, status, im)
		}
		if im["status"] == "done" || im["status"] == "failed" {
			return im
		}
		if time.Now().After(deadline) {
			t.Fatalf("import still %v after 30s: %v", im["status"], im)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func counts(im map[string]any) string {
	return fmt.Sprintf("%v total=%v processed=%v accepted=%v duplicates=%v rejected=%v", im["status"],
		im["total_rows"], im["processed_rows"], im["accepted"], im["duplicates"], im["rejected"])
}

const contactsCSV = "Email,Customer No,First name,Lifetime value\n" +
	"ana@example.com,C-1,Ana,120.5\n" +
	"bob@example.com,C-2,Bob,\n" +
	"not-an-email,C-3,Carl,10\n" +
	"dan@example.com,,Dan,7\n"

const contactsMapping = `{"columns":{
	"Email":          {"identifier":"email"},
	"Customer No":    {"identifier":"customer_number"},
	"First name":     {"trait":"first_name"},
	"Lifetime value": {"trait":"lifetime_value","type":"number"}}}`

func TestImportCSVOfContactsTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if status, _, ws := e.call(t, "PATCH", "/v1/workspace", e.admin, map[string]any{"identity_traits": []string{"email", "phone", "customer_number"}}); status != 200 {
		t.Fatalf("settings: %d %v", status, ws)
	}
	im := e.mustImport(t, "contacts.csv", contactsCSV, contactsMapping)
	if counts(im) != "done total=4 processed=4 accepted=3 duplicates=0 rejected=1" || im["format"] != "csv" || im["source"] != "crm" || im["name"] != "contacts.csv" {
		t.Fatalf("first import: %s %v", counts(im), im)
	}
	bad := im["bad_rows"].([]any)
	if len(bad) != 1 || bad[0].(map[string]any)["line"] != 4.0 || bad[0].(map[string]any)["field"] != "Email" {
		t.Fatalf("bad rows %v, want line 4 (Email)", bad)
	}

	ana := e.profileBy(t, "email=ana@example.com")
	if ana["traits"].(map[string]any)["first_name"] != "Ana" || ana["traits"].(map[string]any)["lifetime_value"] != 120.5 {
		t.Fatalf("Ana's traits %v", ana["traits"])
	}
	if src := ana["trait_sources"].(map[string]any)["first_name"].(map[string]any); src["source"] != "crm" {
		t.Fatalf("first_name provenance %v", src)
	}
	if e.profileBy(t, "customer_number=C-1")["id"] != ana["id"] {
		t.Fatal("the customer number does not find Ana")
	}
	e.profileBy(t, "email=bob@example.com")
	e.profileBy(t, "email=dan@example.com")
	var adminKeyID string
	if err := e.pool.QueryRow(t.Context(), `SELECT id::text FROM api_keys WHERE workspace_id = $1 AND scope = 'admin'`, e.ws.ID).Scan(&adminKeyID); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE workspace_id = $1 AND source = 'crm' AND key_id = $2 AND type = 'identify'`, e.ws.ID, adminKeyID); n != 3 {
		t.Fatalf("%d identify events from crm by the admin key, want 3", n)
	}

	// The bad row is in quarantine, with its line number and its data.
	status, _, list := e.call(t, "GET", "/v1/rejected", e.admin, nil)
	if status != 200 {
		t.Fatal(status)
	}
	recs := list["data"].([]any)
	if len(recs) != 1 {
		t.Fatalf("quarantine %v, want the one bad row", recs)
	}
	rec := recs[0].(map[string]any)
	if rec["field"] != "line 4: Email" || !strings.Contains(rec["reason"].(string), "not a valid email") || !strings.Contains(rec["raw"].(string), "Carl") || rec["source"] != "crm" {
		t.Fatalf("quarantined row %v", rec)
	}

	// The same file again: nothing stored twice.
	again := e.mustImport(t, "contacts-again.csv", contactsCSV, contactsMapping)
	if counts(again) != "done total=4 processed=4 accepted=0 duplicates=3 rejected=1" {
		t.Fatalf("second import: %s", counts(again))
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE workspace_id = $1`, e.ws.ID); n != 3 {
		t.Fatalf("%d events after importing twice, want 3", n)
	}
	status, _, all := e.call(t, "GET", "/v1/imports", e.admin, nil)
	if status != 200 {
		t.Fatal(status)
	}
	if data := all["data"].([]any); len(data) != 2 || data[0].(map[string]any)["id"] != again["id"] {
		t.Fatalf("imports list %v, want both, newest first", data)
	}
}

func TestImportOrdersUpdateComputedTraits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	orders := "order_id;email;total;store;ordered_at\n" +
		"1001;ana@example.com;120.50;Lyon;2026-11-20T10:00:00Z\n" +
		"1002;ana@example.com;30;Paris;2026-11-21T10:00:00Z\n" +
		"1003;bob@example.com;15.25;Lyon;2026-11-22T10:00:00Z\n" +
		"1004;bob@example.com;12,50;Lyon;2026-11-23T10:00:00Z\n"
	mapping := `{"columns":{"email":{"identifier":"email"},"total":{"property":"total","type":"number"},"store":{"property":"store"}},
		"event":{"name":"Order Completed"},"id_column":"order_id","timestamp_column":"ordered_at","delimiter":";"}`
	// The raw-body form: the file is the body, the rest is in the query.
	q := url.Values{"mapping": {mapping}, "source": {"store"}, "name": {"November orders"}}
	status, _, body := e.do(t, e.admin, "/v1/imports?"+q.Encode(), "text/csv", strings.NewReader(orders))
	if status != http.StatusAccepted {
		t.Fatalf("import: %d %v", status, body)
	}
	im := e.waitImport(t, body["status_url"].(string))
	if counts(im) != "done total=4 processed=4 accepted=3 duplicates=0 rejected=1" || im["name"] != "November orders" {
		t.Fatalf("import: %s %v", counts(im), im)
	}
	if bad := im["bad_rows"].([]any)[0].(map[string]any); bad["line"] != 5.0 || bad["field"] != "total" {
		t.Fatalf("bad row %v", bad)
	}
	ana := e.profileBy(t, "email=ana@example.com")["computed"].(map[string]any)
	bob := e.profileBy(t, "email=bob@example.com")["computed"].(map[string]any)
	if ana["order_count"] != 2.0 || ana["total_revenue"] != 150.5 || ana["last_order_at"] != "2026-11-21T10:00:00Z" || fmt.Sprint(ana["sources"]) != "[store]" {
		t.Fatalf("Ana's computed traits %v", ana)
	}
	if bob["order_count"] != 1.0 || bob["total_revenue"] != 15.25 {
		t.Fatalf("Bob's computed traits %v", bob)
	}
	// The same orders in another file (a later export): order ids dedupe them.
	later := "order_id;email;total;store;ordered_at\n1002;ana@example.com;30;Paris;2026-11-21T10:00:00Z\n1005;ana@example.com;9.5;Lyon;2026-11-25T10:00:00Z\n"
	status, _, body = e.do(t, e.admin, "/v1/imports?"+q.Encode(), "text/csv", strings.NewReader(later))
	if status != http.StatusAccepted {
		t.Fatalf("second import: %d %v", status, body)
	}
	if im := e.waitImport(t, body["status_url"].(string)); counts(im) != "done total=2 processed=2 accepted=1 duplicates=1 rejected=0" {
		t.Fatalf("second import: %s", counts(im))
	}
	if c := e.profileBy(t, "email=ana@example.com")["computed"].(map[string]any); c["order_count"] != 3.0 || c["total_revenue"] != 160.0 {
		t.Fatalf("after the later export: %v", c)
	}
}

func TestImportNDJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	file := `{"id":"u1","contact":{"email":"ana@example.com"},"plan":"pro"}` + "\n" +
		`{"id":"u2","plan":"free"}` + "\n" +
		`{"plan":"none"}` + "\n" +
		`oops` + "\n"
	im := e.mustImport(t, "users.jsonl", file, `{"columns":{"id":{"identifier":"userId"},"contact.email":{"identifier":"email"},"plan":{"trait":"plan"}}}`)
	if counts(im) != "done total=4 processed=4 accepted=2 duplicates=0 rejected=2" || im["format"] != "ndjson" {
		t.Fatalf("import: %s %v", counts(im), im)
	}
	if p := e.profileBy(t, "userId=u1"); p["traits"].(map[string]any)["email"] != "ana@example.com" || p["traits"].(map[string]any)["plan"] != "pro" {
		t.Fatalf("u1 %v", p["traits"])
	}
}

func TestImportRefusalsNameTheField(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	good := contactsMapping
	type form = map[string]string
	tests := []struct {
		name     string
		key      string
		fileName string
		file     string
		fields   form
		status   int
		field    string
		has      string
	}{
		{"write key", e.write, "c.csv", contactsCSV, form{"mapping": good}, 403, "", "admin"},
		{"no file", e.admin, "", "", form{"mapping": good}, 422, "file", "missing"},
		{"empty file", e.admin, "c.csv", "", form{"mapping": `{"columns":{"Email":{"identifier":"email"}}}`}, 422, "file", "empty"},
		{"no mapping", e.admin, "c.csv", contactsCSV, form{}, 422, "mapping", "empty"},
		{"mapping not JSON", e.admin, "c.csv", contactsCSV, form{"mapping": `{"columns":`}, 422, "mapping", "not valid JSON"},
		{"mapping misspelt", e.admin, "c.csv", contactsCSV, form{"mapping": `{"columns":{"Email":{"identifer":"email"}}}`}, 422, "mapping.identifer", "unknown field"},
		{"bad column type", e.admin, "c.csv", contactsCSV, form{"mapping": `{"columns":{"Email":{"identifier":"email","type":"money"}}}`}, 422, "mapping.columns.Email.type", "not one of"},
		{"column not in header", e.admin, "c.csv", contactsCSV, form{"mapping": `{"columns":{"E-mail":{"identifier":"email"}}}`}, 422, "mapping.columns.E-mail", `"Email", "Customer No"`},
		{"identifier unknown to the workspace", e.admin, "c.csv", contactsCSV, form{"mapping": good}, 422, "mapping.columns.Customer No.identifier", "PATCH /v1/workspace"},
		{"format unknown", e.admin, "contacts", contactsCSV, form{"mapping": good}, 422, "format", "csv or ndjson"},
		{"format bad", e.admin, "c.csv", contactsCSV, form{"mapping": good, "format": "xlsx"}, 422, "format", "xlsx"},
		{"bad source", e.admin, "c.csv", contactsCSV, form{"mapping": good, "source": "My CRM"}, 422, "source", "lower-case"},
		{"unknown field", e.admin, "c.csv", contactsCSV, form{"mapping": good, "sauce": "crm"}, 422, "sauce", "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := e.importForm(t, tt.key, tt.fileName, tt.file, tt.fields)
			checkProblem(t, status, hdr, body, tt.status, tt.field, tt.has)
		})
	}
	t.Run("too large", func(t *testing.T) {
		q := url.Values{"format": {"csv"}, "mapping": {`{"columns":{"Email":{"identifier":"email"}}}`}}
		big := io.MultiReader(strings.NewReader("Email\n"), io.LimitReader(repeat("ana@example.com\n"), api.MaxImportBytes))
		status, hdr, body := e.do(t, e.admin, "/v1/imports?"+q.Encode(), "text/csv", big)
		checkProblem(t, status, hdr, body, 413, "file", "100 MB")
	})
	t.Run("not found", func(t *testing.T) {
		for _, id := range []string{"00000000-0000-0000-0000-000000000000", "42"} {
			status, hdr, body := e.call(t, "GET", "/v1/imports/"+id, e.admin, nil)
			checkProblem(t, status, hdr, body, 404, "", "No import")
		}
	})
	if n := e.count(t, `SELECT count(*) FROM imports WHERE workspace_id = $1`, e.ws.ID); n != 0 {
		t.Fatalf("%d imports recorded by refused requests", n)
	}
}

func checkProblem(t *testing.T, status int, hdr http.Header, body map[string]any, wantStatus int, field, has string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d, want %d: %v", status, wantStatus, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("Content-Type %q", ct)
	}
	if field == "" {
		if !strings.Contains(body["detail"].(string), has) {
			t.Fatalf("detail %q does not say %q", body["detail"], has)
		}
		return
	}
	errs, _ := body["errors"].([]any)
	for _, fe := range errs {
		fe := fe.(map[string]any)
		if fe["field"] == field && strings.Contains(fe["reason"].(string), has) {
			return
		}
	}
	t.Fatalf("errors %v do not name %s saying %q (detail %v)", errs, field, has, body["detail"])
}

// repeat reads s again and again.
func repeat(s string) io.Reader {
	return &repeater{s: s}
}

type repeater struct {
	s   string
	off int
}

func (r *repeater) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.s[r.off:])
		n += c
		r.off = (r.off + c) % len(r.s)
	}
	return n, nil
}

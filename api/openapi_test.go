package api

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestOpenAPIDocumentsExactlyTheRoutes keeps /openapi.json true: every route
// in the table is documented with the right security, and nothing documented
// is missing from the table.
func TestOpenAPIDocumentsExactlyTheRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			Summary   string           `json:"summary"`
			Security  []map[string]any `json:"security"`
			Responses map[string]any   `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	param := regexp.MustCompile(`:([a-zA-Z_]+)`)
	s := New(Deps{})
	registered := map[string]bool{}
	for _, r := range s.routes() {
		path := param.ReplaceAllString(r.path, "{$1}")
		key := strings.ToLower(r.method) + " " + path
		registered[key] = true
		op, ok := doc.Paths[path][strings.ToLower(r.method)]
		if !ok {
			t.Errorf("route %s %s is not documented in openapi.json", r.method, path)
			continue
		}
		if op.Summary == "" || len(op.Responses) == 0 {
			t.Errorf("%s %s: documented without summary or responses", r.method, path)
		}
		if (r.scope == public) != (len(op.Security) == 0) {
			t.Errorf("%s %s: needs scope %q but openapi security is %v", r.method, path, r.scope, op.Security)
		}
	}
	var extra []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if !registered[method+" "+path] {
				extra = append(extra, method+" "+path)
			}
		}
	}
	sort.Strings(extra)
	for _, e := range extra {
		t.Errorf("openapi.json documents %s, which no route serves", e)
	}
	// And the router serves exactly the table.
	if got, want := len(s.Echo().Routes()), len(s.routes()); got != want {
		t.Errorf("router has %d routes, table has %d", got, want)
	}
}

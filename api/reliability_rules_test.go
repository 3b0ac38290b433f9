package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parcours/parcours/api"
)

// R16: hostile rules — 1 MB, 20,000 nodes, huge ranges and windows, loops
// nested over the data, values instead of conditions — answer 422 with the
// reason on the rule field, through POST and PATCH /v1/segments, the
// preview, and the conditions of a journey; nothing is saved, and the
// server answers other requests quickly all along. Under the default body
// limit (PARCOURS_BODY_LIMIT=1M) a request carrying a 1 MB rule is refused
// before it is read, 413 (TestErrorsAreProblemDocuments); this server
// accepts 4 MB so that the rule itself reaches the compiler.
func TestR16HostileRulesAnswer422AndSaveNothing(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(d *api.Deps) { d.BodyLimit = "4M" })
	kept := e.createSegment(t, "buyers", `profile.order_count >= 1`)
	keptID := kept["id"].(string)

	// Something must answer quickly while the rules are submitted.
	stop := make(chan struct{})
	var slowest atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			t0 := time.Now()
			resp, err := http.Get(e.url + "/healthz")
			if err != nil || resp.StatusCode != 200 {
				slowest.Store(int64(time.Hour))
				continue
			}
			resp.Body.Close()
			if d := int64(time.Since(t0)); d > slowest.Load() {
				slowest.Store(d)
			}
		}
	}()

	hostile := []struct{ name, rule, has string }{
		{"1 MB", `profile.traits.plan == "` + strings.Repeat("x", 1_000_000) + `"`, "the limit is 4000"},
		{"20,000 nodes", strings.Repeat("profile.order_count > 1 || ", 4_999) + "true", "the limit is 4000"},
		{"more than 500 parts", strings.Repeat("true && ", 490) + "true", "too complex"},
		{"a huge range", `profile.traits.age in 1..1000000000`, "holds 1000000000 numbers"},
		{"a huge window", `count("Order Completed", "100000w") >= 1`, "longer than 290 years"},
		{"nested loops", `any(profile.traits.tags, {any(profile.traits.tags, {# == "vip"})})`, "current item's own list"},
		{"not a condition", `profile.order_count`, "condition"},
		{"a value", `sum("Order Completed", "total", "30d")`, "condition"},
	}
	for _, h := range hostile {
		check := func(how string, status int, body map[string]any) {
			t.Helper()
			errs, _ := body["errors"].([]any)
			if status != 422 || len(errs) == 0 {
				t.Fatalf("%s, %s: %d %.300v", h.name, how, status, body)
			}
			f := errs[0].(map[string]any)
			if !strings.HasSuffix(f["field"].(string), "rule") && !strings.HasSuffix(f["field"].(string), "condition") {
				t.Fatalf("%s, %s: field %v", h.name, how, f["field"])
			}
			if reason, _ := f["reason"].(string); !strings.Contains(reason, h.has) || len(reason) > 300 {
				t.Fatalf("%s, %s: reason %q, want a short one saying %q", h.name, how, reason, h.has)
			}
		}
		status, _, body := e.call(t, "POST", "/v1/segments", e.admin, map[string]any{"slug": "hostile", "name": "Hostile", "rule": h.rule})
		check("POST", status, body)
		status, _, body = e.call(t, "PATCH", "/v1/segments/"+keptID, e.admin, map[string]any{"rule": h.rule})
		check("PATCH", status, body)
		status, _, body = e.call(t, "POST", "/v1/segments/preview", e.admin, map[string]any{"rule": h.rule})
		check("preview", status, body)
		// A journey's branch condition is a profile rule too.
		def, _ := json.Marshal(map[string]any{
			"name": "Hostile branch", "trigger": map[string]any{"type": "api"}, "entry": map[string]any{"re_entry": "once"}, "start": "b",
			"nodes": []any{
				map[string]any{"id": "b", "type": "branch", "branches": []any{map[string]any{"condition": h.rule, "next": "end"}}, "else": "end"},
				map[string]any{"id": "end", "type": "exit"},
			},
		})
		status, _, body = e.call(t, "POST", "/v1/journeys", e.admin, def)
		if len(def) > 256*1024 {
			h.has = "larger than 256 KB" // a journey definition's own limit
		}
		if status != 422 || !strings.Contains(stringify(body), h.has) {
			t.Fatalf("%s, journey branch: %d %.300v", h.name, status, body)
		}
	}
	close(stop)
	wg.Wait()

	// Nothing saved: one segment, its rule unchanged; no journey.
	_, _, list := e.call(t, "GET", "/v1/segments", e.admin, nil)
	if segs := list["data"].([]any); len(segs) != 1 || segs[0].(map[string]any)["rule"] != `profile.order_count >= 1` {
		t.Fatalf("segments after the hostile rules: %v", segs)
	}
	if _, _, js := e.call(t, "GET", "/v1/journeys", e.admin, nil); len(js["data"].([]any)) != 0 {
		t.Fatalf("journeys after the hostile rules: %v", js["data"])
	}
	if d := time.Duration(slowest.Load()); d > 2*time.Second {
		t.Fatalf("/healthz took up to %v while the rules were refused", d)
	}
	// And a good rule still saves.
	if status, _, body := e.call(t, "PATCH", "/v1/segments/"+keptID, e.admin, map[string]any{"rule": `profile.order_count >= 2`}); status != 200 {
		t.Fatalf("a good rule: %d %v", status, body)
	}
}

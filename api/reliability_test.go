package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// R4: the same 1,000-event batch posted three times by each of ten clients at
// once stores each messageId once, and starts one journey run per trigger key.
func TestR4DuplicateBatchesFromConcurrentClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, _, j := e.call(t, "POST", "/v1/journeys", e.admin, cartJourney)
	id := j["id"].(string)
	e.call(t, "POST", "/v1/journeys/"+id+"/publish", e.admin, nil)

	var items []map[string]any
	carts := map[string]bool{}
	for i := 0; i < 1000; i++ {
		user := fmt.Sprintf("u%d", i%50)
		item := map[string]any{"type": "track", "userId": user, "messageId": fmt.Sprintf("r4-%d", i), "event": "Product Viewed", "properties": map[string]any{"sku": i}}
		if i%20 == 0 { // 50 carts, one per user
			cart := "cart-" + user
			item["event"], item["properties"] = "Cart Updated", map[string]any{"cart_id": cart}
			carts[user+"/"+cart] = true
		}
		items = append(items, item)
	}
	body, err := json.Marshal(map[string]any{"batch": items})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for c := 0; c < 10; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 3; n++ {
				req, _ := http.NewRequest("POST", e.url+"/v1/batch", bytes.NewReader(body))
				req.SetBasicAuth(e.write, "")
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.count(t, `SELECT count(*) FROM events WHERE workspace_id = $1 AND source = 'web'`, e.ws.ID); n != 1000 {
		t.Fatalf("%d events stored for 1,000 distinct messageIds", n)
	}
	if n := e.count(t, `SELECT count(*) FROM profiles WHERE workspace_id = $1 AND merged_into IS NULL`, e.ws.ID); n != 50 {
		t.Fatalf("%d profiles for 50 users", n)
	}
	e.waitFor(t, "one run per cart", func() bool { return len(e.runs(t, id)) >= len(carts) })
	if n := len(e.runs(t, id)); n != len(carts) {
		t.Fatalf("%d journey runs for %d distinct carts", n, len(carts))
	}
}

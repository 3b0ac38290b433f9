package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/segment"
)

// checkSegmentWebhook proves the running process dispatches segment
// webhooks: a segment with a webhook to a local receiver, then a profile
// that enters it, posted signed within seconds. The process must allow
// 127.0.0.1 (PARCOURS_OUTBOUND_ALLOW).
func checkSegmentWebhook(t *testing.T, apiURL, admin, write string) {
	t.Helper()
	got := make(chan segment.HookPayload, 10)
	var secret atomic.Value // set once the webhook exists
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		key, _ := secret.Load().(string)
		if !channel.VerifySignature(key, r.Header.Get(channel.SignatureHeader), raw, time.Now(), 5*time.Minute) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p segment.HookPayload
		_ = json.Unmarshal(raw, &p)
		got <- p
	}))
	defer recv.Close()
	call := func(path, key string, body any) map[string]any {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", apiURL+path, bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode >= 300 {
			t.Fatalf("POST %s: %d %v", path, resp.StatusCode, out)
		}
		return out
	}
	sg := call("/v1/segments", admin, map[string]any{"slug": "e2e-hook", "name": "E2E hook", "rule": `profile.traits.plan == "e2e"`})
	hook := call("/v1/segments/"+sg["id"].(string)+"/webhooks", admin, map[string]any{"url": recv.URL})
	secret.Store(hook["signing_secret"].(string))
	call("/v1/identify", write, map[string]any{"userId": "e2e-hook-user", "traits": map[string]any{"plan": "e2e"}})
	select {
	case p := <-got:
		if len(p.Events) != 1 || p.Events[0].Kind != "entered" || p.Events[0].Profile.UserID != "e2e-hook-user" {
			t.Fatalf("segment webhook payload %+v", p)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no segment webhook arrived within 20s: is the dispatcher running?")
	}
}

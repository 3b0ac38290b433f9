package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// checkDevMailbox checks the dev mailbox of a running `parcours dev`: the
// email channel points at the fake SendGrid on the API listener, a test
// send goes through the real SendGrid client to it, and the console's
// Mailbox page shows it, delivered (its signed event came back).
func checkDevMailbox(t *testing.T, apiURL, admin string, creds map[string]string) {
	t.Helper()
	call := func(method, path string, body any) (int, map[string]any) {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, apiURL+path, bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	status, ch := call("GET", "/v1/channels/email", nil)
	if status != 200 || !strings.HasSuffix(ch["base_url"].(string), "/dev/sendgrid") || ch["event_webhook_configured"] != true {
		t.Fatalf("email channel in dev: %d %v", status, ch)
	}
	status, tpl := call("POST", "/v1/templates", map[string]any{"slug": "dev-hello", "name": "Hello", "subject": "Hello from dev", "text": "Hi"})
	if status != 201 {
		t.Fatalf("template: %d %v", status, tpl)
	}
	status, d := call("POST", "/v1/templates/"+tpl["id"].(string)+"/test-send", map[string]any{"email": "ana@example.com"})
	if status != 200 || d["status"] != "sent" {
		t.Fatalf("test send to the dev mailbox: %d %v", status, d)
	}

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(path string) string {
		resp, err := c.Get(apiURL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	login := get("/login")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(login)
	if m == nil {
		t.Fatalf("sign-in page:\n%.1000s", login)
	}
	resp, err := c.PostForm(apiURL+"/login", url.Values{"email": {creds["PARCOURS_CONSOLE_EMAIL"]}, "password": {creds["PARCOURS_CONSOLE_PASSWORD"]}, "csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var page string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if page = get("/mailbox"); strings.Contains(page, "Hello from dev") && strings.Contains(page, "delivered") {
			return
		}
	}
	t.Fatalf("the dev mailbox page never showed the test send, delivered:\n%.3000s", page)
}

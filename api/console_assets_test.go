package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// The console's script is served from the binary, to anyone (the sign-in
// page uses it too), with its JavaScript type; unknown or escaping paths are
// 404.
func TestConsoleAssets(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t, e)
	resp, body := b.do(t, "GET", "/assets/console.js", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || !strings.Contains(body, "data-copy") {
		t.Fatalf("console.js: %d %q\n%.300s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	for _, p := range []string{"/assets/nope.js", "/assets/../layout.html", "/assets/%2e%2e/layout.html"} {
		if resp, _ := b.do(t, "GET", p, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}
	_, login := b.do(t, "GET", "/login", nil)
	if !strings.Contains(login, `<script src="/assets/console.js" defer></script>`) {
		t.Error("pages do not load the console script")
	}
}

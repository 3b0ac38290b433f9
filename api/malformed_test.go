package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// R12: hostile bodies on the ingestion endpoints are refused with a problem
// document the sender can act on — never a 500, never a crash — and the
// server goes on serving.
func TestMalformedIngestionNeverFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	deep := strings.Repeat(`{"a":`, 20000) + `1` + strings.Repeat(`}`, 20000)
	cases := []struct {
		name, path, contentType, encoding string
		body                              []byte
	}{
		{"oversize", "/v1/batch", "application/json", "", []byte(`{"batch":[{"type":"track","userId":"u","event":"` + strings.Repeat("x", 3<<20) + `"}]}`)},
		{"deep nesting", "/v1/track", "application/json", "", []byte(`{"userId":"u","event":"E","properties":` + deep + `}`)},
		{"deep nesting in a batch", "/v1/batch", "application/json", "", []byte(`{"batch":[{"type":"track","userId":"u","event":"E","properties":` + deep + `}]}`)},
		{"invalid UTF-8", "/v1/track", "application/json", "", []byte("{\"userId\":\"u\",\"event\":\"\xff\xfe\xfd\"}")},
		{"huge number", "/v1/track", "application/json", "", []byte(`{"userId":"u","event":"E","properties":{"total":1e400}}`)},
		{"wrong content type", "/v1/identify", "text/plain", "", []byte(`userId=u`)},
		{"not JSON", "/v1/batch", "application/json", "", []byte(`<batch/>`)},
		{"truncated", "/v1/batch", "application/json", "", []byte(`{"batch":[{"type":"track","userId":"u",`)},
		{"empty", "/v1/track", "application/json", "", nil},
		{"gzip that is not", "/v1/batch", "application/json", "gzip", []byte(`{"batch":[]}`)},
		{"batch of the wrong shape", "/v1/batch", "application/json", "", []byte(`{"batch":{"type":"track"}}`)},
		{"null record", "/v1/batch", "application/json", "", []byte(`{"batch":[null, 7, "x"]}`)},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest("POST", e.url+tc.path, bytes.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.contentType)
		if tc.encoding != "" {
			req.Header.Set("Content-Encoding", tc.encoding)
		}
		req.SetBasicAuth(e.write, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var p map[string]any
		_ = json.Unmarshal(raw, &p)
		switch {
		case tc.name == "invalid UTF-8" && (resp.StatusCode != 200 || p["accepted"] != 1.0):
			t.Errorf("%s: %d %s; want the record kept (stray bytes read as U+FFFD, as JSON decoding does)", tc.name, resp.StatusCode, raw)
		case resp.StatusCode >= 500:
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, raw)
		case resp.StatusCode >= 400 && (p["detail"] == nil || p["status"] != float64(resp.StatusCode)):
			t.Errorf("%s: %d without a problem document: %.300s", tc.name, resp.StatusCode, raw)
		case resp.StatusCode < 400 && p["rejected"] == nil && p["accepted"] == nil:
			t.Errorf("%s: %d with an answer that says nothing of the records: %.300s", tc.name, resp.StatusCode, raw)
		}
	}
	if status, _, _ := e.call(t, "GET", "/healthz", "", nil); status != 200 {
		t.Fatalf("after the hostile bodies: /healthz %d", status)
	}
	// And a good record still goes in.
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "u", "event": "Still Here"})
}

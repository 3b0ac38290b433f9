package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeImportAPI accepts one upload and answers polls with the statuses in
// turn (the last one again once they are used up).
func fakeImportAPI(t *testing.T, statuses []string) (*httptest.Server, *sync.Map) {
	t.Helper()
	got := &sync.Map{}
	var mu sync.Mutex
	polls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer pcs_admin_test" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(401)
			io.WriteString(w, `{"type":"about:blank","title":"Unauthorized","status":401,"detail":"The API key is not valid."}`)
			return
		}
		switch {
		case r.Method == "POST" && r.URL.Path == "/v1/imports":
			if err := r.ParseMultipartForm(1 << 20); err != nil {
				t.Errorf("upload is not multipart: %v", err)
			}
			f, hdr, err := r.FormFile("file")
			if err != nil {
				t.Errorf("no file part: %v", err)
				return
			}
			content, _ := io.ReadAll(f)
			got.Store("file", string(content))
			got.Store("filename", hdr.Filename)
			got.Store("mapping", r.FormValue("mapping"))
			got.Store("source", r.FormValue("source"))
			if r.FormValue("mapping") == "{}" {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(422)
				io.WriteString(w, `{"type":"urn:parcours:problem:validation","title":"Invalid input","status":422,"detail":"The import was refused.","errors":[{"field":"mapping.columns","reason":"is empty"}]}`)
				return
			}
			w.WriteHeader(202)
			io.WriteString(w, `{"id":"imp-1","status":"pending","status_url":"/v1/imports/imp-1"}`)
		case r.Method == "GET" && r.URL.Path == "/v1/imports/imp-1":
			mu.Lock()
			i := min(polls, len(statuses)-1)
			polls++
			mu.Unlock()
			io.WriteString(w, statuses[i])
		default:
			w.WriteHeader(404)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestImportPollerDrawsProgressUntilDone(t *testing.T) {
	t.Parallel()
	srv, _ := fakeImportAPI(t, []string{
		`{"id":"imp-1","status":"pending","status_url":"/v1/imports/imp-1"}`,
		`{"id":"imp-1","status":"running","total_rows":4,"processed_rows":2,"accepted":2}`,
		`{"id":"imp-1","status":"running","total_rows":4,"processed_rows":2,"accepted":2}`,
		`{"id":"imp-1","status":"done","total_rows":4,"processed_rows":4,"accepted":3,"rejected":1,
		  "bad_rows":[{"line":4,"field":"Email","reason":"\"x\" is not a valid email"}]}`,
	})
	var stderr bytes.Buffer
	c := &importClient{api: srv.URL, key: "pcs_admin_test", http: srv.Client(), interval: time.Millisecond, stderr: &stderr}
	im, err := c.wait(context.Background(), "/v1/imports/imp-1")
	if err != nil {
		t.Fatal(err)
	}
	if im.Status != "done" || im.Accepted != 3 || im.Rejected != 1 {
		t.Fatalf("final status %+v", im)
	}
	progress := stderr.String()
	for _, want := range []string{
		"waiting for its turn",
		"\r[###############...............]  50%  2/4 rows  2 accepted  0 duplicates  0 rejected",
		"\r[##############################] 100%  4/4 rows  3 accepted  0 duplicates  1 rejected",
	} {
		if !strings.Contains(progress, want) {
			t.Errorf("progress %q lacks %q", progress, want)
		}
	}
	if strings.Count(progress, "50%") != 1 {
		t.Errorf("an unchanged status was drawn twice: %q", progress)
	}
	var out bytes.Buffer
	printImport(&out, im)
	if want := "import imp-1 done: 4 rows, 3 accepted, 0 duplicates, 1 rejected\n"; !strings.HasPrefix(out.String(), want) ||
		!strings.Contains(out.String(), `line 4: Email: "x" is not a valid email`) {
		t.Fatalf("summary %q", out.String())
	}
}

func TestImportCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "contacts.csv")
	mapping := filepath.Join(dir, "mapping.json")
	empty := filepath.Join(dir, "empty.json")
	os.WriteFile(file, []byte("Email\nana@example.com\n"), 0o600)
	os.WriteFile(mapping, []byte(`{"columns":{"Email":{"identifier":"email"}}}`), 0o600)
	os.WriteFile(empty, []byte(`{}`), 0o600)
	env := func(k string) string {
		if k == "PARCOURS_ADMIN_KEY" {
			return "pcs_admin_test"
		}
		return ""
	}
	t.Run("uploads, follows, reports", func(t *testing.T) {
		t.Parallel()
		srv, got := fakeImportAPI(t, []string{`{"id":"imp-1","status":"done","total_rows":1,"processed_rows":1,"accepted":1}`})
		var stdout, stderr bytes.Buffer
		// FILE before the flags, and the key from the environment.
		err := run(context.Background(), []string{"import", file, "--mapping", mapping, "--source", "call_centre", "--api", srv.URL + "/"}, &stdout, &stderr, env)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		if f, _ := got.Load("file"); f != "Email\nana@example.com\n" {
			t.Errorf("uploaded file %q", f)
		}
		if n, _ := got.Load("filename"); n != "contacts.csv" {
			t.Errorf("file name %q", n)
		}
		if s, _ := got.Load("source"); s != "call_centre" {
			t.Errorf("source %q", s)
		}
		if m, _ := got.Load("mapping"); !json.Valid([]byte(m.(string))) {
			t.Errorf("mapping %q", m)
		}
		if !strings.Contains(stdout.String(), "1 accepted") || !strings.Contains(stderr.String(), "100%") {
			t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
		}
	})
	t.Run("refusal names the field", func(t *testing.T) {
		t.Parallel()
		srv, _ := fakeImportAPI(t, nil)
		err := run(context.Background(), []string{"import", "--mapping", empty, "--api", srv.URL, file}, io.Discard, io.Discard, env)
		if err == nil || !strings.Contains(err.Error(), "422 Invalid input") || !strings.Contains(err.Error(), "mapping.columns: is empty") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad key", func(t *testing.T) {
		t.Parallel()
		srv, _ := fakeImportAPI(t, nil)
		err := run(context.Background(), []string{"import", file, "--mapping", mapping, "--api", srv.URL, "--key", "nope"}, io.Discard, io.Discard, env)
		if err == nil || !strings.Contains(err.Error(), "not valid") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("usage errors", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{{"import", file}, {"import", "--mapping", mapping}, {"import", file, file, "--mapping", mapping}} {
			if err := run(context.Background(), args, io.Discard, io.Discard, env); err == nil {
				t.Errorf("%v: no error", args)
			}
		}
	})
}

package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// apiClient calls the rig's API over loopback.
type apiClient struct {
	base string
	http *http.Client
}

func newAPIClient(base string) *apiClient {
	return &apiClient{base: base, http: &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
	}}
}

func (c *apiClient) post(ctx context.Context, method, path, key string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// admin makes a management call and decodes its answer into out (may be
// nil); any status but want is an error naming the answer. Transport errors
// and 5xx are retried for a while: the API may be coming back.
func (c *apiClient) admin(ctx context.Context, method, path, key string, body any, want int, out any) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return err
		}
	}
	var lastErr error
	for attempt := 0; attempt < 30; attempt++ {
		status, got, err := c.post(ctx, method, path, key, raw)
		switch {
		case err != nil:
			lastErr = err
		case status >= 500:
			lastErr = fmt.Errorf("%s %s: %d %s", method, path, status, got)
		case status != want:
			return fmt.Errorf("%s %s: %d %s", method, path, status, got)
		default:
			if out != nil {
				return json.Unmarshal(got, out)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return lastErr
}

// Traffic counts what clients sent and what the API answered, and keeps
// the messageIds of acknowledged records.
type Traffic struct {
	Requests  atomic.Int64 // every attempt
	Refused   atomic.Int64 // answered 5xx or not answered (refused, reset, timeout)
	Status5xx atomic.Int64
	Rejected  atomic.Int64 // 4xx: a bug of the soak or of the API
	GaveUp    atomic.Int64 // records never acknowledged before the deadline
	// Redone counts records a retry found already stored: the request that
	// stored them died (or its answer was lost) before the client heard.
	Redone atomic.Int64

	mu    sync.Mutex
	acked []string
	last  string // the last 4xx, for the report
}

// Acked returns the messageIds whose request was answered 2xx.
func (t *Traffic) Acked() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.acked...)
}

// Record is one Segment record the soak sends.
type Record map[string]any

// send posts records (one as a single call on path, several as /v1/batch)
// until the API acknowledges them, retrying with the same messageIds as a
// Segment library does, until giveUp. It reports whether they were acked.
func (c *apiClient) send(ctx context.Context, t *Traffic, writeKey, path string, recs []Record, giveUp time.Time) bool {
	var body []byte
	if len(recs) == 1 {
		body, _ = json.Marshal(recs[0])
	} else {
		body, _ = json.Marshal(map[string]any{"batch": recs})
		path = "/v1/batch"
	}
	backoff := 100 * time.Millisecond
	for retry := false; ; retry = true {
		t.Requests.Add(1)
		status, got, err := c.post(ctx, http.MethodPost, path, writeKey, body)
		switch {
		case err == nil && status < 300:
			var ans struct{ Accepted, Duplicates, Rejected int }
			if json.Unmarshal(got, &ans) != nil || ans.Accepted+ans.Duplicates != len(recs) {
				// Answered, but not every record taken: quarantined.
				t.Rejected.Add(1)
				t.mu.Lock()
				t.last = fmt.Sprintf("%s answered %d: %.300s", path, status, got)
				t.mu.Unlock()
				return false
			}
			if retry {
				t.Redone.Add(int64(ans.Duplicates))
			}
			t.mu.Lock()
			for _, r := range recs {
				t.acked = append(t.acked, r["messageId"].(string))
			}
			t.mu.Unlock()
			return true
		case err == nil && status < 500:
			t.Rejected.Add(1)
			t.mu.Lock()
			t.last = fmt.Sprintf("%s answered %d: %.300s", path, status, got)
			t.mu.Unlock()
			return false
		case err == nil:
			t.Status5xx.Add(1)
			t.Refused.Add(1)
		default:
			t.Refused.Add(1)
		}
		if time.Now().After(giveUp) || ctx.Err() != nil {
			t.GaveUp.Add(int64(len(recs)))
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// LastRejection is the last 4xx answer, or "".
func (t *Traffic) LastRejection() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

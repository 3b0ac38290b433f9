package soak

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// r12Seed makes R12's bodies reproducible: worker w draws from
// rand.NewPCG(r12Seed, w).
const r12Seed = 12

// r12Workers is how many clients send at once.
const r12Workers = 4

// r12RSSLimit is the API's resident memory R12 allows: the bodies are at
// most a few megabytes and four at a time, so a process that holds on to
// them, or inflates them (gzip bombs, deep nesting), shows well above it.
const r12RSSLimit = 400 << 20

// runR12 sends hostile bodies to the API's ingestion and batch endpoints
// for R12Duration, from r12Workers clients, each body drawn from a seeded
// generator: oversize, deep nesting, invalid UTF-8, huge numbers, wrong
// content types, truncated or fake gzip, gzip bombs, random byte flips and
// cuts of valid payloads, wrong JSON types. Must hold: no 5xx, no
// connection refused or reset (a panic or a crash), the API process never
// restarted and its log free of panics, its resident memory (VmRSS, read
// from /proc) under r12RSSLimit all along; and a good record still goes in.
func runR12(ctx context.Context, rig *Rig, cfg Config) Row {
	sz := cfg.Sizes
	row := newRow(fmt.Sprintf("%s of hostile bodies on the ingestion and batch endpoints (seeded fuzzing)", sz.R12Duration))
	row.Runs = r12Workers
	t, err := rig.newTenant(ctx, "r12")
	if err != nil {
		row.fail("set up: %v", err)
		return row
	}
	pid := procPID(rig.API)
	starts0, kills0 := rig.API.Starts, rig.API.Kills
	logAt := fileSize(rig.API.log)
	baseRSS := vmRSS(pid)

	var peakRSS atomic.Int64
	var guarded atomic.Bool // the API killed past rssGuard
	peakRSS.Store(baseRSS)
	stopSampling := make(chan struct{})
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if sampleRSS(pid, &peakRSS) {
				guarded.Store(true)
			}
		}
	}()

	var requests, ok2xx, refused4xx, status5xx, broken atomic.Int64
	var mu sync.Mutex
	var examples []string // the first failures, to reproduce them
	note := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(examples) < 5 {
			examples = append(examples, fmt.Sprintf(format, a...))
		}
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: r12Workers}}
	end := time.Now().Add(sz.R12Duration)
	var wg sync.WaitGroup
	for w := range r12Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(r12Seed, uint64(w)))
			for n := 0; time.Now().Before(end) && ctx.Err() == nil; n++ {
				h := hostileRequest(rng, t.write)
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, rig.APIURL+h.path, bytes.NewReader(h.body))
				if err != nil {
					note("worker %d body %d (%s): %v", w, n, h.kind, err)
					continue
				}
				for k, v := range h.header {
					req.Header.Set(k, v)
				}
				requests.Add(1)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					broken.Add(1)
					note("worker %d body %d (%s, %s): %v", w, n, h.kind, h.path, err)
					continue
				}
				got, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
				switch {
				case resp.StatusCode >= 500:
					status5xx.Add(1)
					note("worker %d body %d (%s, %s): %d %.200s", w, n, h.kind, h.path, resp.StatusCode, got)
				case resp.StatusCode >= 400:
					refused4xx.Add(1)
					if !strings.Contains(resp.Header.Get("Content-Type"), "problem+json") {
						note("worker %d body %d (%s): %d without a problem document", w, n, h.kind, resp.StatusCode)
						broken.Add(1)
					}
				default:
					ok2xx.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(stopSampling)
	sampling.Wait()

	// The API is the same process, still serving, and takes a good record.
	if err := t.api.admin(ctx, http.MethodPost, "/v1/track", t.write,
		map[string]any{"userId": "r12-after", "event": "Still Here", "messageId": "r12-after"}, 200, nil); err != nil {
		row.fail("a good record after the fuzzing: %v", err)
	}
	if rig.API.Starts != starts0 || rig.API.Kills != kills0 || procPID(rig.API) != pid {
		row.fail("the API process was restarted during the fuzzing")
	}
	if logText := tailFrom(rig.API.log, logAt); strings.Contains(logText, "panic") {
		i := strings.Index(logText, "panic")
		row.fail("the API logged a panic: %.300s", logText[i:])
	}
	row.Refused = int(status5xx.Load() + broken.Load())
	if n := status5xx.Load(); n > 0 {
		row.fail("%d answers 5xx", n)
	}
	if n := broken.Load(); n > 0 {
		row.fail("%d requests not answered (connection reset, refused or timed out) or refused without a problem document", n)
	}
	for _, e := range examples {
		row.fail("for instance %s", e)
	}
	peak := peakRSS.Load()
	if baseRSS == 0 {
		row.fail("could not read the API's VmRSS from /proc/%d/status", pid)
	} else if guarded.Load() {
		row.fail("the API's resident memory passed %d MiB: the rig killed it to keep the machine up", rssGuard>>20)
	} else if peak > r12RSSLimit {
		row.fail("the API's resident memory reached %d MiB (limit %d MiB)", peak>>20, r12RSSLimit>>20)
	}
	row.figure("%d requests from %d clients (seed %d): %d answered 2xx, %d refused 4xx with a problem document, %d 5xx",
		requests.Load(), r12Workers, r12Seed, ok2xx.Load(), refused4xx.Load(), status5xx.Load())
	row.figure("The API's resident memory %d MiB at the start, %d MiB at its peak (limit %d MiB)", baseRSS>>20, peak>>20, r12RSSLimit>>20)
	if requests.Load() < 10 {
		row.fail("only %d requests sent", requests.Load())
	}
	return row
}

// hostile is one request R12 sends.
type hostile struct {
	kind   string // what the generator did, for the report
	path   string
	header map[string]string
	body   []byte
}

var r12Paths = []string{"/v1/identify", "/v1/track", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias", "/v1/batch", "/v1/batch"}

// hostileRequest draws a request: a valid payload, mutated one of many ways.
func hostileRequest(rng *rand.Rand, writeKey string) hostile {
	h := hostile{path: r12Paths[rng.IntN(len(r12Paths))], header: map[string]string{
		"Content-Type": "application/json", "Authorization": "Bearer " + writeKey,
	}}
	base := validPayload(rng, h.path)
	switch k := rng.IntN(16); k {
	case 0, 1, 2:
		h.kind, h.body = "byte flips", flipBytes(rng, base)
	case 3:
		h.kind, h.body = "truncated", base[:rng.IntN(len(base))]
	case 4:
		// Rare and large: above the 1 MB body limit.
		h.kind, h.body = "oversize", []byte(`{"userId":"u","event":"E","properties":{"blob":"`+strings.Repeat("x", 1_100_000+rng.IntN(500_000))+`"}}`)
		if rng.IntN(4) != 0 {
			h.kind, h.body = "near the limit", []byte(`{"userId":"u","event":"E","properties":{"blob":"`+strings.Repeat("y", 900_000)+`"}}`)
		}
	case 5:
		depth := 100 + rng.IntN(200_000)
		open, closeTok := `{"a":`, `}`
		if rng.IntN(2) == 0 {
			open, closeTok = `[`, `]`
		}
		h.kind = fmt.Sprintf("nesting %d deep", depth)
		h.body = []byte(`{"userId":"u","event":"Deep","properties":{"x":` + strings.Repeat(open, depth) + `1` + strings.Repeat(closeTok, depth) + `}}`)
	case 6:
		h.kind, h.body = "invalid UTF-8", invalidUTF8(rng, base)
	case 7:
		nums := []string{"1e400", "-1e999", "123456789012345678901234567890123456789", "0.0000000000000000000000000001e-400", "9223372036854775808", "NaN", "Infinity", "-0", "1" + strings.Repeat("0", 5000)}
		h.kind = "huge numbers"
		h.body = []byte(`{"userId":"u","event":"Num","timestamp":` + nums[rng.IntN(len(nums))] + `,"properties":{"n":` + nums[rng.IntN(len(nums))] + `}}`)
	case 8:
		types := []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "application/json; charset=latin1", "application/xml", "image/png"}
		h.kind = "wrong content type"
		h.header["Content-Type"] = types[rng.IntN(len(types))]
	case 9:
		h.kind, h.header["Content-Encoding"] = "truncated gzip", "gzip"
		z := gzipOf(base)
		h.body = z[:rng.IntN(len(z))]
	case 10:
		h.kind, h.header["Content-Encoding"] = "fake gzip", "gzip"
		h.body = append([]byte{0x1f, 0x8b, 8, 0}, flipBytes(rng, base)...)
	case 11:
		// A small body that inflates past the limit.
		h.kind, h.header["Content-Encoding"] = "gzip bomb", "gzip"
		h.body = gzipOf(append([]byte(`{"userId":"u","event":"Bomb","properties":{"pad":"`), bytes.Repeat([]byte(" "), 20<<20)...))
	case 12:
		shapes := []string{`{"batch":5}`, `{"batch":{"type":"track"}}`, `{"batch":[null,7,"x",[],{}]}`, `{"userId":{},"event":[]}`, `[]`, `null`, `"track"`, `{"userId":"u","event":"E","properties":[1,2]}`, `{"type":"nope","userId":"u"}`, `{"userId":"u","event":"E","timestamp":"yesterday"}`, `{"userId":"u","event":"E","properties":{"\ud800":"\udfff"}}`,
			`{"userId":"u\u0000","event":"E\u0000","properties":{"v":"\u0000\udbff\\u0000"}}`}
		h.kind, h.body = "wrong JSON types", []byte(shapes[rng.IntN(len(shapes))])
	case 13:
		var items []string
		for i := range 2000 + rng.IntN(8000) {
			items = append(items, fmt.Sprintf(`{"type":"track","userId":"u%d","event":"E%d","messageId":"r12-%d-%d"}`, i%50, i%7, rng.Uint64(), i))
		}
		h.path, h.kind = "/v1/batch", "a batch of thousands"
		h.body = []byte(`{"batch":[` + strings.Join(items, ",") + `]}`)
	case 14:
		keys := []string{"", "Bearer ", "Bearer pcs_write_nope", "Basic !!!", "Bearer " + strings.Repeat("k", 10000)}
		h.kind, h.header["Authorization"] = "bad credentials", keys[rng.IntN(len(keys))]
		h.body = base
	default:
		h.kind, h.body = "valid", base
	}
	if h.body == nil {
		h.body = base
	}
	return h
}

// validPayload is a well-formed record (or batch) for path.
func validPayload(rng *rand.Rand, path string) []byte {
	user := "u" + strconv.Itoa(rng.IntN(100))
	rec := map[string]any{"userId": user, "messageId": fmt.Sprintf("r12-%d", rng.Uint64())}
	switch path {
	case "/v1/identify":
		rec["traits"] = map[string]any{"email": user + "@example.com", "plan": "pro", "tags": []any{"a", "b"}}
	case "/v1/track":
		rec["event"], rec["properties"] = "Order Completed", map[string]any{"total": 42.5, "items": []any{map[string]any{"sku": "S1"}}}
	case "/v1/page", "/v1/screen":
		rec["name"] = "Home"
	case "/v1/group":
		rec["groupId"] = "g1"
	case "/v1/alias":
		rec["previousId"] = "anon-" + user
	case "/v1/batch":
		var items []any
		for i := range 1 + rng.IntN(10) {
			items = append(items, map[string]any{"type": "track", "userId": user, "event": "Viewed", "messageId": fmt.Sprintf("r12-%d-%d", rng.Uint64(), i)})
		}
		b, _ := json.Marshal(map[string]any{"batch": items})
		return b
	}
	b, _ := json.Marshal(rec)
	return b
}

// flipBytes changes, inserts or deletes a few random bytes.
func flipBytes(rng *rand.Rand, b []byte) []byte {
	out := append([]byte(nil), b...)
	for range 1 + rng.IntN(8) {
		if len(out) == 0 {
			break
		}
		i := rng.IntN(len(out))
		switch rng.IntN(3) {
		case 0:
			out[i] ^= byte(1 << rng.IntN(8))
		case 1:
			out = append(out[:i], append([]byte{byte(rng.IntN(256))}, out[i:]...)...)
		default:
			out = append(out[:i], out[i+1:]...)
		}
	}
	return out
}

// invalidUTF8 puts stray bytes just inside some of the payload's strings.
func invalidUTF8(rng *rand.Rand, b []byte) []byte {
	bad := [][]byte{{0xff}, {0xfe, 0xfd}, {0xc3}, {0xed, 0xa0, 0x80}, {0xf4, 0x90, 0x80, 0x80}, {0x00}}
	var quotes []int
	for i, c := range b {
		if c == '"' {
			quotes = append(quotes, i)
		}
	}
	out := append([]byte(nil), b...)
	if len(quotes) == 0 {
		return append(out, 0xff)
	}
	// From the last quote back, so that earlier positions stay valid.
	for i := len(quotes) - 1; i >= 0; i-- {
		if rng.IntN(3) != 0 {
			continue
		}
		pos := quotes[i] + 1
		out = append(out[:pos], append(append([]byte(nil), bad[rng.IntN(len(bad))]...), out[pos:]...)...)
	}
	return out
}

func gzipOf(b []byte) []byte {
	var buf bytes.Buffer
	z, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	_, _ = z.Write(b)
	_ = z.Close()
	return buf.Bytes()
}

// procPID is the process id of p's current process (0 when not running).
func procPID(p *Proc) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// rssGuard is the resident memory at which the rig kills a process under
// test at once: a scenario that fails by exhausting memory must fail as a
// row, not take the machine (and every other test on it) down with it.
const rssGuard = 2 << 30

// sampleRSS reads pid's resident memory into peak and kills the process
// (SIGKILL) past rssGuard; it reports whether it killed it.
func sampleRSS(pid int, peak *atomic.Int64) bool {
	r := vmRSS(pid)
	if r > peak.Load() {
		peak.Store(r)
	}
	if r > rssGuard && pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return true
	}
	return false
}

// vmRSS reads a process's resident memory, in bytes, from /proc (0 when
// it cannot).
func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// tailFrom returns a file's content from offset on.
func tailFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || offset > int64(len(b)) {
		return ""
	}
	return string(b[offset:])
}

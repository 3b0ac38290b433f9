package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parcours/parcours/pkg/user"
)

// r21RSSLimit is the resident memory the API and the worker may reach
// while R21's attacks run (the 400 MiB; the pods' limit is 512 Mi).
const r21RSSLimit = 400 << 20

// r21Slow is how long one hostile request may take: a rule, a template or
// a sign-in that holds the server longer is a way to take it down.
const r21Slow = 15 * time.Second

// runR21 is R20's load with a console under attack beside it, for
// R21Duration: sign-ins guessing passwords (concurrently, with huge
// passwords, for a known account and for unknown ones), segment rules
// built to allocate without bound (nested replace, repeat, let, huge
// ranges) checked and previewed from a viewer's session, Liquid built to
// allocate or loop without end (assign | append doubling, capture, empty
// loops, nested loops) previewed by a viewer, and partials nested to
// multiply their size saved and previewed by a marketer. Must hold: what
// R20 holds (no 5xx on the load, nothing lost, every send once, the
// backlog drained), the API's and the worker's resident memory under
// r21RSSLimit throughout, no hostile request answered 500 or left
// unanswered for r21Slow (a 503 must say when to retry), and the viewer
// still served a good rule and a good template at the end.
func runR21(ctx context.Context, rig *Rig, cfg Config) Row {
	sz := cfg.Sizes
	row := newRow(fmt.Sprintf("%s of hostile sign-ins, rules, templates and partials from viewer and marketer sessions during R20's load (%d events/s, %d starts/s)",
		sz.R21Duration, sz.R20Events, sz.R20Starts))
	soakLoad(ctx, rig, cfg, "r21", sz.R21Duration, &row, func(ctx context.Context, t *tenant, end time.Time) ([]string, []string) {
		return attackConsole(ctx, rig, t, end)
	})
	return row
}

// attackConsole runs R21's attackers until end and checks what they saw.
func attackConsole(ctx context.Context, rig *Rig, t *tenant, end time.Time) (problems, figures []string) {
	fail := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	users := user.NewStore(rig.Pool)
	const password = "r21-correct-horse-battery"
	viewerEmail, marketerEmail, victimEmail := "viewer@r21.soak.example", "marketer@r21.soak.example", "victim@r21.soak.example"
	for email, role := range map[string]user.Role{viewerEmail: user.RoleViewer, marketerEmail: user.RoleMarketer, victimEmail: user.RoleAdmin} {
		if _, err := users.Create(ctx, t.ID, email, "", role, password); err != nil {
			fail("create the console user %s: %v", email, err)
			return problems, figures
		}
	}
	viewer, marketer := newConsole(rig.APIURL), newConsole(rig.APIURL)
	for c, email := range map[*console]string{viewer: viewerEmail, marketer: marketerEmail} {
		if err := c.signIn(ctx, email, password); err != nil {
			fail("sign in as %s: %v", email, err)
			return problems, figures
		}
	}
	// A template to preview over, and partials that render each other 40
	// times at each of three levels (64 KiB at the bottom: 4 GB expanded).
	// Saving the upper ones is itself an attack; refused is fine.
	var preview struct {
		ID string `json:"id"`
	}
	if err := t.api.admin(ctx, http.MethodPost, "/v1/templates", t.admin, map[string]any{"slug": "r21-preview", "name": "Preview", "channel": "email",
		"subject": "Hello", "html": "<p>Hello {{ profile.traits.first_name }}</p>", "text": "Hello"}, 201, &preview); err != nil {
		fail("create the template to preview: %v", err)
		return problems, figures
	}
	partials := map[string]int{}
	for _, p := range []struct{ slug, html string }{
		{"r21-leaf", strings.Repeat("x", 64<<10)},
		{"r21-mid", strings.Repeat("{% render 'r21-leaf' %}", 40)},
		{"r21-top", strings.Repeat("{% render 'r21-mid' %}", 40)},
	} {
		status, _, err := t.api.post(ctx, http.MethodPost, "/v1/templates", t.admin, jsonBody(map[string]any{
			"slug": p.slug, "name": p.slug, "kind": "partial", "channel": "email", "html": p.html}))
		if err != nil || status >= 500 {
			fail("save the partial %s: %d %v", p.slug, status, err)
		}
		partials[fmt.Sprintf("partial %s saved: %d", p.slug, status)]++
	}

	tally := &attackTally{counts: map[string]int{}}
	var wg sync.WaitGroup
	attacker := func(name string, n int, one func(rng *rand.Rand, c *console) (status int, header http.Header, err error), c func() *console) {
		for w := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(21, uint64(w)))
				cl := c()
				for time.Now().Before(end) && ctx.Err() == nil {
					t0 := time.Now()
					status, header, err := one(rng, cl)
					tally.note(name, status, header, err, time.Since(t0))
				}
			}()
		}
	}
	// Sign-ins: each guesser keeps its own login form (the CSRF check is
	// double-submit, so a script has both halves).
	attacker("sign-in", 6, func(rng *rand.Rand, c *console) (int, http.Header, error) {
		email := victimEmail
		if rng.IntN(2) == 0 {
			email = fmt.Sprintf("nobody%d@r21.soak.example", rng.IntN(1000))
		}
		guess := fmt.Sprintf("guess-%d", rng.Uint64())
		if rng.IntN(8) == 0 {
			guess = strings.Repeat("p", 64<<10)
		}
		return c.tryLogin(ctx, email, guess)
	}, func() *console { return newConsole(rig.APIURL) })
	attacker("rule", 2, func(rng *rand.Rand, c *console) (int, http.Header, error) {
		path := "/segments/check"
		if rng.IntN(3) == 0 {
			path = "/segments/preview"
		}
		return c.post(ctx, path, url.Values{"rule": {hostileRules[rng.IntN(len(hostileRules))]}, "name": {"r21"}})
	}, func() *console { return viewer })
	attacker("template", 2, func(rng *rand.Rand, c *console) (int, http.Header, error) {
		return c.post(ctx, "/templates/"+preview.ID+"/preview", url.Values{"name": {"Preview"}, "subject": {"Hello"},
			"html": {hostileLiquid[rng.IntN(len(hostileLiquid))]}, "text": {"Hello"}})
	}, func() *console { return viewer })
	attacker("partial", 1, func(rng *rand.Rand, c *console) (int, http.Header, error) {
		html := strings.Repeat("{% render 'r21-top' %}", 1+rng.IntN(40))
		if rng.IntN(2) == 0 {
			return c.post(ctx, "/templates/"+preview.ID+"/preview", url.Values{"name": {"Preview"}, "subject": {"Hello"}, "html": {html}, "text": {"Hello"}})
		}
		return c.post(ctx, "/templates/new", url.Values{"name": {fmt.Sprintf("r21 %d", rng.Uint64())}, "subject": {"Hello"}, "html": {html}, "text": {"Hello"}})
	}, func() *console { return marketer })

	// Resident memory of the API and the worker (whose process changes
	// at each kill), sampled until the attackers stop.
	var apiPeak, workerPeak atomic.Int64
	stop := make(chan struct{})
	var guarded atomic.Bool // a process killed past rssGuard
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if sampleRSS(procPID(rig.API), &apiPeak) {
				guarded.Store(true)
			}
			if sampleRSS(procPID(rig.Worker), &workerPeak) {
				guarded.Store(true)
			}
		}
	}()
	wg.Wait()
	close(stop)
	sampling.Wait()

	// The viewer is still served: a good rule checks and a good template renders.
	if status, _, err := viewer.post(ctx, "/segments/check", url.Values{"rule": {`profile.traits.plan == "pro"`}}); err != nil || status != http.StatusOK {
		fail("a good rule after the attacks: %d %v", status, err)
	}
	if status, _, err := viewer.post(ctx, "/templates/"+preview.ID+"/preview", url.Values{"name": {"Preview"}, "subject": {"Hello"},
		"html": {"<p>Hello {{ profile.traits.first_name }}</p>"}, "text": {"Hello"}}); err != nil || status != http.StatusOK {
		fail("a good template preview after the attacks: %d %v", status, err)
	}

	for _, p := range tally.problems() {
		fail("%s", p)
	}
	if tally.total.Load() < 20 {
		fail("only %d hostile requests sent", tally.total.Load())
	}
	if guarded.Load() {
		fail("a process passed %d MiB of resident memory: the rig killed it to keep the machine up", rssGuard>>20)
	}
	for name, peak := range map[string]int64{"API": apiPeak.Load(), "worker": workerPeak.Load()} {
		if peak == 0 {
			fail("could not read the %s's VmRSS from /proc", name)
		} else if peak > r21RSSLimit {
			fail("the %s's resident memory reached %d MiB (limit %d MiB)", name, peak>>20, r21RSSLimit>>20)
		}
	}
	figures = append(figures, fmt.Sprintf("%d hostile requests answered: %s", tally.total.Load(), tally.summary()),
		fmt.Sprintf("%s; slowest hostile answer %s", strings.Join(sortedKeys(partials), ", "), time.Duration(tally.slowest.Load()).Round(time.Millisecond)),
		fmt.Sprintf("resident memory at its peak: API %d MiB, worker %d MiB (limit %d MiB)", apiPeak.Load()>>20, workerPeak.Load()>>20, r21RSSLimit>>20))
	return problems, figures
}

// hostileRules allocate without bound, or loop for long, if nothing stops
// them; each is a few hundred characters at most.
var hostileRules = []string{
	`repeat("x", 1000000000) != ""`,
	`len(repeat(repeat("x", 100000), 100000)) > 0`,
	`replace(replace(replace(replace(replace(replace(replace(replace("xxxxxxxxxx", "x", "xxxxxxxxxx"), "x", "xxxxxxxxxx"), "x", "xxxxxxxxxx"), "x", "xxxxxxxxxx"), "x", "xxxxxxxxxx"), "x", "xxxxxxxxxx"), "x", "xxxxxxxxxx"), "x", "xxxxxxxxxx") != ""`,
	`let a = "xxxxxxxxxxxxxxxx"; let b = a+a+a+a+a+a+a+a; let c = b+b+b+b+b+b+b+b; let d = c+c+c+c+c+c+c+c; let e = d+d+d+d+d+d+d+d; let f = e+e+e+e+e+e+e+e; len(f+f+f+f+f+f+f+f) > 0`,
	`len(map(1..100000000, # * 2)) > 0`,
	`count(1..1000000000, # > 0) > 0`,
	`len(join(map(1..10000000, "xxxxxxxxxx"), "")) > 0`,
	`len(split(repeat("x,", 50000000), ",")) > 0`,
	`profile.traits.plan == "pro" and len(("x" + "x") + ("x" + "x")) > 0`,
}

// hostileLiquid allocate without bound, or loop without end, if nothing
// stops them.
var hostileLiquid = []string{
	`{% assign s = "xxxxxxxxxx" %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s | size }}`,
	`{% capture c %}{% for i in (1..100000000) %}xxxxxxxxxx{% endfor %}{% endcapture %}{{ c | size }}`,
	`{% for i in (1..2000000000) %}{% endfor %}done`,
	`{% for a in (1..100000) %}{% for b in (1..100000) %}{% endfor %}{% endfor %}done`,
	`{{ "xxxxxxxxxx" | replace: "x", "xxxxxxxxxx" | replace: "x", "xxxxxxxxxx" | replace: "x", "xxxxxxxxxx" | replace: "x", "xxxxxxxxxx" | replace: "x", "xxxxxxxxxx" | replace: "x", "xxxxxxxxxx" | replace: "x", "xxxxxxxxxx" | replace: "x", "xxxxxxxxxx" | size }}`,
	`{% capture a %}{% capture b %}{% for i in (1..1000000) %}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{% endfor %}{% endcapture %}{{ b }}{{ b }}{{ b }}{{ b }}{% endcapture %}{{ a | size }}`,
	`{% assign r = (1..1000000000) %}{% for i in r %}{{ i }}{% endfor %}`,
}

// attackTally counts hostile answers by attacker and status, and what
// must not happen: a 500, a 503 without Retry-After, no answer, or a
// slow one.
type attackTally struct {
	total   atomic.Int64
	slowest atomic.Int64
	mu      sync.Mutex
	counts  map[string]int // "sign-in 429"
	bad     []string
	nBad    int
}

func (a *attackTally) note(name string, status int, header http.Header, err error, took time.Duration) {
	a.total.Add(1)
	if int64(took) > a.slowest.Load() {
		a.slowest.Store(int64(took))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	key := fmt.Sprintf("%s %d", name, status)
	if err != nil {
		key = name + " unanswered"
	}
	a.counts[key]++
	var why string
	switch {
	case err != nil:
		why = fmt.Sprintf("%s: no answer after %s: %v", name, took.Round(time.Millisecond), err)
	case took > r21Slow:
		why = fmt.Sprintf("%s: answered %d after %s", name, status, took.Round(time.Millisecond))
	case status >= 500 && status != http.StatusServiceUnavailable:
		why = fmt.Sprintf("%s: answered %d", name, status)
	case status == http.StatusServiceUnavailable && header.Get("Retry-After") == "":
		why = fmt.Sprintf("%s: answered 503 without Retry-After", name)
	}
	if why != "" {
		a.nBad++
		if len(a.bad) < 5 {
			a.bad = append(a.bad, why)
		}
	}
}

func (a *attackTally) problems() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nBad == 0 {
		return nil
	}
	return append([]string{fmt.Sprintf("%d hostile requests answered 500, 503 without Retry-After, slowly or not at all", a.nBad)}, a.bad...)
}

func (a *attackTally) summary() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var parts []string
	for _, k := range sortedKeys(a.counts) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, a.counts[k]))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// console is a browser on the marketer console: a cookie jar, and the
// CSRF token of the last form it was served.
type console struct {
	base string
	http *http.Client
	mu   sync.Mutex
	csrf string
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func newConsole(base string) *console {
	jar, _ := cookiejar.New(nil)
	return &console{base: base, http: &http.Client{Jar: jar, Timeout: 2 * r21Slow,
		Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}}}
}

// do sends a request and keeps the CSRF token of the page it answers.
func (c *console) do(ctx context.Context, method, path string, form url.Values) (int, http.Header, string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, nil, "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if m := csrfField.FindSubmatch(b); m != nil {
		c.mu.Lock()
		c.csrf = string(m[1])
		c.mu.Unlock()
	}
	return resp.StatusCode, resp.Header, string(b), err
}

// post sends a console form with the session's CSRF token.
func (c *console) post(ctx context.Context, path string, form url.Values) (int, http.Header, error) {
	c.mu.Lock()
	form.Set("csrf", c.csrf)
	c.mu.Unlock()
	status, header, _, err := c.do(ctx, http.MethodPost, path, form)
	return status, header, err
}

// tryLogin posts the sign-in form once, fetching the form first when this
// browser has none.
func (c *console) tryLogin(ctx context.Context, email, password string) (int, http.Header, error) {
	c.mu.Lock()
	has := c.csrf != ""
	c.mu.Unlock()
	if !has {
		if status, header, _, err := c.do(ctx, http.MethodGet, "/login", nil); err != nil || status != http.StatusOK {
			return status, header, err
		}
	}
	return c.post(ctx, "/login", url.Values{"email": {email}, "password": {password}})
}

// signIn signs in and keeps the session (and its CSRF token) in the jar.
func (c *console) signIn(ctx context.Context, email, password string) error {
	if _, _, _, err := c.do(ctx, http.MethodGet, "/login", nil); err != nil {
		return err
	}
	c.mu.Lock()
	token := c.csrf
	c.mu.Unlock()
	status, _, page, err := c.do(ctx, http.MethodPost, "/login", url.Values{"email": {email}, "password": {password}, "csrf": {token}})
	if err != nil {
		return err
	}
	if status != http.StatusOK || strings.Contains(page, `action="/login"`) {
		return fmt.Errorf("sign-in answered %d: %.300s", status, page)
	}
	return nil
}

func jsonBody(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

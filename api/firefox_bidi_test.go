package api_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// A minimal WebDriver BiDi client for Firefox, which speaks the protocol
// natively (no geckodriver): start `firefox --headless
// --remote-debugging-port=0`, read the WebSocket address it prints, open
// ws://.../session, then send commands as JSON ({id, method, params}) and
// read answers and events. Only what the console tests need is here:
// navigate, evaluate a script, click and type with real input events, and
// collect what the pages log as errors.
//
// Spec: https://w3c.github.io/webdriver-bidi/

// firefoxNames are the executables tried, in order: Debian's ESR, then a
// plain Firefox.
var firefoxNames = []string{"firefox-esr", "firefox"}

// bidiTimeout bounds one command; navigations wait for the page's load.
const bidiTimeout = 30 * time.Second

// firefox is one headless Firefox and its BiDi session.
type firefox struct {
	t       *testing.T
	ws      *websocket.Conn
	context string // the top-level browsing context (the tab)

	mu      sync.Mutex
	nextID  int
	waiting map[int]chan bidiMessage
	// pageErrors are the errors the pages logged: uncaught exceptions,
	// console.error (log.entryAdded at level error).
	pageErrors []string
	readErr    error
}

// bidiMessage is any message Firefox sends: a command's answer (id set,
// type success or error) or an event (type event, method set).
type bidiMessage struct {
	Type    string          `json:"type"`
	ID      *int            `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
}

// isCI mirrors newChromium: on CI a missing browser fails the test.
func isCI() bool { v := os.Getenv("CI"); return v == "true" || v == "1" }

// newFirefox starts a headless Firefox for one test, with a fresh profile,
// and opens a BiDi session on its tab, at a tablet-in-landscape viewport.
// Without Firefox the test fails on CI (CI=true or CI=1) and is skipped
// elsewhere.
func newFirefox(t *testing.T) *firefox {
	t.Helper()
	path := ""
	for _, name := range firefoxNames {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		msg := "Firefox is not installed (no firefox-esr or firefox on PATH): install it with `apt-get update && apt-get install -y firefox-esr` (Debian); .ci/run does this"
		if isCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// --remote-allow-origins: the WebSocket client sends an Origin header,
	// which Firefox refuses unless it is allowed.
	cmd := exec.Command(path, "--headless", "--no-remote", "--profile", t.TempDir(),
		"--remote-debugging-port=0", "--remote-allow-origins=http://localhost", "about:blank")
	cmd.Env = append(os.Environ(), "MOZ_HEADLESS=1", "MOZ_CRASHREPORTER_DISABLE=1")
	// Its own process group: Firefox starts content processes, stopped with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// The session's browser.close (sent by close) lets Firefox exit by
		// itself; if it does not, its process group is killed.
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})

	// Firefox prints "WebDriver BiDi listening on ws://127.0.0.1:PORT".
	addr := make(chan string, 1)
	var logMu sync.Mutex
	var log strings.Builder
	go func() {
		re := regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			if log.Len() < 16<<10 {
				log.WriteString(line + "\n")
			}
			logMu.Unlock()
			if m := re.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	var wsURL string
	select {
	case wsURL = <-addr:
	case <-exited:
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("Firefox exited before listening for WebDriver BiDi:\n%s", log.String())
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("Firefox did not listen for WebDriver BiDi within 60 s:\n%s", log.String())
	}

	ws, err := websocket.Dial(wsURL+"/session", "", "http://localhost")
	if err != nil {
		t.Fatalf("connect to Firefox's WebDriver BiDi at %s: %v", wsURL, err)
	}
	f := &firefox{t: t, ws: ws, waiting: map[int]chan bidiMessage{}}
	go f.readLoop()
	t.Cleanup(f.close)

	f.must("session.new", map[string]any{"capabilities": map[string]any{}}, nil)
	f.must("session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}, nil)
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	f.must("browsingContext.getTree", map[string]any{"maxDepth": 0}, &tree)
	if len(tree.Contexts) == 0 {
		t.Fatal("Firefox has no tab")
	}
	f.context = tree.Contexts[0].Context
	f.must("browsingContext.setViewport", map[string]any{"context": f.context, "viewport": map[string]int{"width": 1024, "height": 768}}, nil)
	// Content-Security-Policy violations are not errors a script sees:
	// a preload script, run in every page before its own, records them.
	f.must("script.addPreloadScript", map[string]any{"functionDeclaration": `() => {
		window.__cspViolations = [];
		document.addEventListener("securitypolicyviolation", e => window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI));
	}`}, nil)
	return f
}

func (f *firefox) readLoop() {
	for {
		var raw []byte
		if err := websocket.Message.Receive(f.ws, &raw); err != nil {
			f.mu.Lock()
			f.readErr = err
			for id, ch := range f.waiting {
				close(ch)
				delete(f.waiting, id)
			}
			f.mu.Unlock()
			return
		}
		var m bidiMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			continue
		}
		f.mu.Lock()
		switch {
		case m.ID != nil:
			if ch, ok := f.waiting[*m.ID]; ok {
				ch <- m
				delete(f.waiting, *m.ID)
			}
		case m.Method == "log.entryAdded":
			var e struct {
				Level  string `json:"level"`
				Text   string `json:"text"`
				Source struct {
					Context string `json:"context"`
				} `json:"source"`
			}
			if json.Unmarshal(m.Params, &e) == nil && e.Level == "error" {
				f.pageErrors = append(f.pageErrors, e.Text)
			}
		}
		f.mu.Unlock()
	}
}

// call sends a command and decodes its result into out (nil: ignored).
func (f *firefox) call(method string, params any, out any) error {
	f.mu.Lock()
	if f.readErr != nil {
		f.mu.Unlock()
		return fmt.Errorf("%s: the connection to Firefox is closed: %w", method, f.readErr)
	}
	f.nextID++
	id := f.nextID
	ch := make(chan bidiMessage, 1)
	f.waiting[id] = ch
	f.mu.Unlock()
	req, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return err
	}
	if err := websocket.Message.Send(f.ws, string(req)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: the connection to Firefox closed", method)
		}
		if m.Type == "error" {
			return fmt.Errorf("%s: %s: %s", method, m.Error, m.Message)
		}
		if out != nil {
			return json.Unmarshal(m.Result, out)
		}
		return nil
	case <-time.After(bidiTimeout):
		f.mu.Lock()
		delete(f.waiting, id)
		f.mu.Unlock()
		return fmt.Errorf("%s: no answer from Firefox within %s", method, bidiTimeout)
	}
}

func (f *firefox) must(method string, params any, out any) {
	f.t.Helper()
	if err := f.call(method, params, out); err != nil {
		f.t.Fatal(err)
	}
}

func (f *firefox) close() {
	_ = f.call("browser.close", map[string]any{}, nil)
	_ = f.ws.Close()
}

// navigate opens url in the tab and waits until the page has loaded.
func (f *firefox) navigate(url string) {
	f.t.Helper()
	f.must("browsingContext.navigate", map[string]any{"context": f.context, "url": url, "wait": "complete"}, nil)
}

// eval runs a JavaScript expression in the page and returns its value
// decoded from JSON: the expression is wrapped in JSON.stringify, so it
// must give something JSON can carry.
func (f *firefox) eval(expr string, out any) error {
	var res struct {
		Type   string `json:"type"` // success or exception
		Result struct {
			Type  string `json:"type"`
			Value any    `json:"value"`
		} `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	err := f.call("script.evaluate", map[string]any{
		"expression":   "JSON.stringify((() => { return " + expr + "; })())",
		"target":       map[string]any{"context": f.context},
		"awaitPromise": true,
	}, &res)
	if err != nil {
		return err
	}
	if res.Type == "exception" {
		return fmt.Errorf("script %q threw: %s", expr, res.ExceptionDetails.Text)
	}
	s, ok := res.Result.Value.(string)
	if !ok {
		return fmt.Errorf("script %q gave %s, not JSON", expr, res.Result.Type)
	}
	return json.Unmarshal([]byte(s), out)
}

// text returns the text of the first element matching selector ("" if none).
func (f *firefox) text(selector string) string {
	f.t.Helper()
	var s string
	if err := f.eval(fmt.Sprintf(`document.querySelector(%s)?.textContent.trim().replace(/\s+/g, " ") ?? ""`, jsString(selector)), &s); err != nil {
		f.t.Fatal(err)
	}
	return s
}

// waitFor polls a JavaScript condition until it is true. Errors while the
// page changes (a navigation under way) count as false.
func (f *firefox) waitFor(what, cond string, timeout time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		var ok bool
		err := f.eval("!!("+cond+")", &ok)
		if err == nil && ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			var page string
			_ = f.eval(`location.href + "\n" + document.body.innerText`, &page)
			f.t.Fatalf("waiting for %s: not true after %s (%v); page:\n%.3000s", what, timeout, lastErr, page)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// click clicks the middle of the first element matching selector with the
// mouse, as a person would: the element is scrolled into view first.
func (f *firefox) click(selector string) {
	f.t.Helper()
	var at struct{ X, Y int }
	err := f.eval(fmt.Sprintf(`(() => {
		const el = document.querySelector(%s);
		if (!el) throw new Error("no element " + %s);
		el.scrollIntoView({block: "center"});
		const r = el.getBoundingClientRect();
		return {X: Math.round(r.left + r.width / 2), Y: Math.round(r.top + r.height / 2)};
	})()`, jsString(selector), jsString(selector)), &at)
	if err != nil {
		f.t.Fatalf("click %s: %v", selector, err)
	}
	f.must("input.performActions", map[string]any{"context": f.context, "actions": []any{map[string]any{
		"type": "pointer", "id": "mouse", "parameters": map[string]any{"pointerType": "mouse"},
		"actions": []any{
			map[string]any{"type": "pointerMove", "x": at.X, "y": at.Y},
			map[string]any{"type": "pointerDown", "button": 0},
			map[string]any{"type": "pointerUp", "button": 0},
		},
	}}}, nil)
}

// typeInto clicks a field and types text into it, key by key.
func (f *firefox) typeInto(selector, text string) {
	f.t.Helper()
	f.click(selector)
	var keys []any
	for _, r := range text {
		keys = append(keys, map[string]any{"type": "keyDown", "value": string(r)}, map[string]any{"type": "keyUp", "value": string(r)})
	}
	f.must("input.performActions", map[string]any{"context": f.context, "actions": []any{map[string]any{
		"type": "key", "id": "keyboard", "actions": keys,
	}}}, nil)
}

// errorsLogged returns the errors the pages logged so far, and forgets them.
func (f *firefox) errorsLogged() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.pageErrors
	f.pageErrors = nil
	return out
}

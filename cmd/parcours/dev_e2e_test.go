package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/parcours/parcours/pkg/pgtest"
)

// TestDevRunsTheWholePlatform starts `parcours dev` as a user would, on free
// ports, and checks the promises of the README: the API answers, the Temporal
// UI is served, a workflow runs through the worker and is listed by the
// ParcoursWorkspace search attribute, Ctrl-C stops everything cleanly, and a
// restart keeps the workspace, the keys and the workflow history.
func TestDevRunsTheWholePlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "parcours")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dataDir := t.TempDir()
	dbURL := pgtest.UnusedDatabaseURL(t) // dev must create it
	httpPort, temporalPort, uiPort := freePort(t), freePort(t), freePort(t)
	apiURL := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	uiURL := fmt.Sprintf("http://127.0.0.1:%d", uiPort)

	first := startDev(t, bin, dataDir, dbURL, httpPort, temporalPort, uiPort)
	waitReady(t, apiURL, first)
	banner := first.stdout.String()
	for _, want := range []string{"Parcours", "Temporal UI", "pcs_admin_", "pcs_write_", "credentials.env"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	creds := readCredentials(t, filepath.Join(dataDir, "credentials.env"))
	admin, wsID := creds["PARCOURS_ADMIN_KEY"], creds["PARCOURS_WORKSPACE_ID"]
	if admin == "" || wsID == "" || !strings.Contains(banner, admin) {
		t.Fatalf("credentials file %v does not match the banner", creds)
	}
	// The console's first admin: printed once, saved with the keys.
	if pw := creds["PARCOURS_CONSOLE_PASSWORD"]; creds["PARCOURS_CONSOLE_EMAIL"] != "admin@parcours.local" || pw == "" || !strings.Contains(banner, pw) {
		t.Errorf("console login missing from the credentials file %v or the banner", creds)
	}

	// The Temporal Web UI is served.
	resp, err := http.Get(uiURL + "/")
	if err != nil {
		t.Fatalf("Temporal UI: %v", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(bytes.ToLower(page), []byte("<html")) {
		t.Fatalf("Temporal UI answered %d: %.200s", resp.StatusCode, page)
	}

	// A workflow runs through the worker and is findable by workspace.
	wfID := ping(t, apiURL, admin)
	tc, err := client.Dial(client.Options{HostPort: fmt.Sprintf("127.0.0.1:%d", temporalPort)})
	if err != nil {
		t.Fatal(err)
	}
	waitListed(t, tc, wsID, wfID)
	tc.Close()

	// Segment entries reach a webhook, posted by the dispatcher of the worker side.
	checkSegmentWebhook(t, apiURL, admin, creds["PARCOURS_WRITE_KEY"])

	// Email goes to the dev mailbox, shown in the console (dev_mailbox_e2e_test.go).
	if !strings.Contains(banner, "Dev mailbox") {
		t.Errorf("banner lacks the dev mailbox:\n%s", banner)
	}
	checkDevMailbox(t, apiURL, admin, creds)

	// Ctrl-C stops everything cleanly.
	first.interrupt(t)

	// A restart keeps state: no new keys, the old workflow is still listed.
	second := startDev(t, bin, dataDir, dbURL, httpPort, temporalPort, uiPort)
	waitReady(t, apiURL, second)
	if out := second.stdout.String(); strings.Contains(out, "pcs_admin_") || strings.Contains(out, creds["PARCOURS_CONSOLE_PASSWORD"]) || !strings.Contains(out, "created on first start") {
		t.Errorf("second start should point at the saved keys, not print new ones:\n%s", out)
	}
	tc, err = client.Dial(client.Options{HostPort: fmt.Sprintf("127.0.0.1:%d", temporalPort)})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	waitListed(t, tc, wsID, wfID)
	if id := ping(t, apiURL, admin); id == wfID {
		t.Fatal("second ping reused the first workflow id")
	}
	second.interrupt(t)
}

type devProcess struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	exited chan error
}

func startDev(t *testing.T, bin, dataDir, dbURL string, httpPort, temporalPort, uiPort int) *devProcess {
	t.Helper()
	cmd := exec.Command(bin, "dev",
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--temporal-port", fmt.Sprint(temporalPort),
		"--ui-port", fmt.Sprint(uiPort),
		"--data-dir", dataDir)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "TEMPORAL_ADDRESS=", "LOG_LEVEL=warn",
		"PARCOURS_OUTBOUND_ALLOW=127.0.0.1") // the test's webhook receiver
	p := &devProcess{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	return p
}

func (p *devProcess) interrupt(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("parcours dev exited with %v after Ctrl-C\nstderr:\n%s", err, p.stderr.String())
		}
	case <-time.After(45 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Fatalf("parcours dev did not stop within 45s of Ctrl-C\nstderr:\n%s", p.stderr.String())
	}
}

func waitReady(t *testing.T, apiURL string, p *devProcess) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.exited:
			t.Fatalf("parcours dev exited early: %v\nstdout:\n%s\nstderr:\n%s", err, p.stdout.String(), p.stderr.String())
		default:
		}
		resp, err := http.Get(apiURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(p.stdout.String(), "Press Ctrl-C") {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("/readyz not 200 within 2 minutes\nstderr:\n%s", p.stderr.String())
}

func ping(t *testing.T, apiURL, admin string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", apiURL+"/v1/diagnostics/ping", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 {
		t.Fatalf("ping: %d %v", resp.StatusCode, out)
	}
	return out["workflow_id"].(string)
}

func waitListed(t *testing.T, tc client.Client, wsID, wfID string) {
	t.Helper()
	query := "ParcoursWorkspace = '" + wsID + "'"
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := tc.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err == nil {
			for _, ex := range resp.Executions {
				if ex.Execution.WorkflowId == wfID {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("workflow %s not listed by %s (last error %v)", wfID, query, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func readCredentials(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st, _ := f.Stat(); st.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode %v, want 0600", st.Mode().Perm())
	}
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

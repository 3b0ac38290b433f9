package soak

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
)

// Rig is the system under test, as separate OS processes of one parcours
// binary: `parcours temporal` (the embedded dev Temporal server, SQLite on
// disk, so its state survives a kill), `parcours api` and `parcours worker`,
// against a throwaway PostgreSQL database. Scenarios kill and restart them.
type Rig struct {
	Dir    string // run directory: binary, logs, Temporal's state
	Bin    string
	DBURL  string
	APIURL string
	Pool   *pgxpool.Pool // the rig's own connections, to count what was stored
	Temporal,
	API,
	Worker *Proc
	TC client.Client // to check runs' status in Temporal

	adminURL, dbName string
	log              *slog.Logger
}

// RigConfig says where to build the rig.
type RigConfig struct {
	// AdminURL is the PostgreSQL server to create the throwaway database on.
	AdminURL string
	// Bin is a parcours binary to use; empty builds ./cmd/parcours once.
	Bin string
	// Dir holds the run's files; empty makes a temporary directory, removed
	// by Close unless the run failed.
	Dir    string
	Logger *slog.Logger
}

// StartRig builds the binary, creates and migrates the database and starts
// Temporal, the API and the worker. Close it whatever happens.
func StartRig(ctx context.Context, cfg RigConfig) (r *Rig, err error) {
	r = &Rig{Dir: cfg.Dir, Bin: cfg.Bin, adminURL: cfg.AdminURL, log: cfg.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.Dir == "" {
		if r.Dir, err = os.MkdirTemp("", "parcours-soak-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.Close(true)
			r = nil
		}
	}()
	if r.Bin == "" {
		r.Bin = filepath.Join(r.Dir, "parcours")
		t0 := time.Now()
		build := exec.CommandContext(ctx, "go", "build", "-o", r.Bin, "github.com/parcours/parcours/cmd/parcours")
		if out, err := build.CombinedOutput(); err != nil {
			return r, fmt.Errorf("build parcours: %w\n%s", err, out)
		}
		r.log.Info("built parcours", "took", time.Since(t0).Round(time.Millisecond))
	}
	if err := r.createDatabase(ctx); err != nil {
		return r, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return r, err
	}
	temporalAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	r.APIURL = fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	// 16 connections for the API and the worker, not pgxpool's default of
	// 4 on 2 cores: their queries mostly wait on commits, which PostgreSQL
	// groups across connections. With 4, R20's sign-ups queued for a
	// connection long enough for their clients to give up (journey starts
	// then waited in journey_triggers for the dispatcher).
	env := append(cleanEnv(),
		"DATABASE_URL="+withQuery(r.DBURL, "pool_max_conns=16"),
		"TEMPORAL_ADDRESS="+temporalAddr,
		"PARCOURS_HTTP_ADDR="+strings.TrimPrefix(r.APIURL, "http://"),
		"PARCOURS_SECRET_KEY="+base64.StdEncoding.EncodeToString(secret),
		"PARCOURS_PUBLIC_URL="+r.APIURL,
		"PARCOURS_OUTBOUND_ALLOW=127.0.0.1", // the fake SendGrid
		// The fake SendGrid is a provider host the channel may name.
		"PARCOURS_PROVIDER_URL_ALLOW=api.sendgrid.com,api.twilio.com,127.0.0.1",
		"LOG_LEVEL=info",
	)
	if out, err := r.runOnce(ctx, env, "migrate", "up"); err != nil {
		return r, fmt.Errorf("parcours migrate up: %w\n%s", err, out)
	}
	temporalArgs := []string{"temporal", "--data-dir", filepath.Join(r.Dir, "temporal"), "--port", fmt.Sprint(ports[0]), "--ui-port", "0"}
	if p := os.Getenv("SOAK_TEMPORAL_PPROF_PORT"); p != "" { // to profile the server under a scenario's load
		temporalArgs = append(temporalArgs, "--pprof-port", p)
	}
	r.Temporal = newProc("temporal", r.Bin, env, filepath.Join(r.Dir, "temporal.out"), "Temporal listening on", temporalArgs...)
	// The API logs every request at info; warnings are enough, and /readyz
	// says when it is ready.
	r.API = newProc("api", r.Bin, append(env[:len(env):len(env)], "LOG_LEVEL=warn"), filepath.Join(r.Dir, "api.log"), "", "api")
	r.Worker = newProc("worker", r.Bin, env, filepath.Join(r.Dir, "worker.log"), "worker polling", "worker")
	// Temporal first: the API and the worker dial it at start.
	for _, p := range []*Proc{r.Temporal, r.Worker} {
		if err := p.Start(ctx); err != nil {
			return r, err
		}
		if err := p.WaitReady(ctx, 2*time.Minute); err != nil {
			return r, err
		}
	}
	if err := r.API.Start(ctx); err != nil {
		return r, err
	}
	r.TC, err = client.DialContext(ctx, client.Options{HostPort: temporalAddr,
		Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return r, fmt.Errorf("connect to Temporal: %w", err)
	}
	if err := r.waitAPI(ctx); err != nil {
		return r, err
	}
	return r, nil
}

// cleanEnv is the environment without the settings the rig sets itself.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "TEMPORAL_") || strings.HasPrefix(k, "PARCOURS_") || k == "DATABASE_URL" || strings.HasPrefix(k, "LOG_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (r *Rig) runOnce(ctx context.Context, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.Bin, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// Bootstrap creates a workspace with `parcours bootstrap` and returns its
// id and first keys.
func (r *Rig) Bootstrap(ctx context.Context, slug string) (id, admin, write string, err error) {
	cmd := exec.CommandContext(ctx, r.Bin, "bootstrap", "--workspace", slug)
	cmd.Env = append(cleanEnv(), "DATABASE_URL="+r.DBURL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", "", "", fmt.Errorf("parcours bootstrap: %w\n%s", err, stderr.String())
	}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "PARCOURS_WORKSPACE_ID":
			id = v
		case "PARCOURS_ADMIN_KEY":
			admin = v
		case "PARCOURS_WRITE_KEY":
			write = v
		}
	}
	if id == "" || admin == "" || write == "" {
		return "", "", "", fmt.Errorf("parcours bootstrap printed no keys for a new workspace %s:\n%s", slug, out)
	}
	return id, admin, write, nil
}

// waitAPI waits until /readyz answers 200 (PostgreSQL and Temporal reachable).
func (r *Rig) waitAPI(ctx context.Context) error {
	if err := r.API.WaitReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	return waitUntil(ctx, time.Minute, "the API to be ready", func() (bool, error) {
		resp, err := http.Get(r.APIURL + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// RestartAPI starts the API again after a kill and waits until it is ready.
func (r *Rig) RestartAPI(ctx context.Context) error {
	if err := r.API.Start(ctx); err != nil {
		return err
	}
	return r.waitAPI(ctx)
}

// KillWorker kills the worker with SIGKILL and starts a new one at once;
// it returns when the new one polls.
func (r *Rig) KillWorker(ctx context.Context) error {
	if err := r.Worker.Kill(); err != nil {
		return err
	}
	if err := r.Worker.Start(ctx); err != nil {
		return err
	}
	return r.Worker.WaitReady(ctx, 2*time.Minute)
}

// KillTemporal kills the Temporal server with SIGKILL, waits pause, and
// starts it again on the same SQLite file; it returns once the frontend
// listens.
func (r *Rig) KillTemporal(ctx context.Context, pause time.Duration) error {
	if err := r.Temporal.Kill(); err != nil {
		return err
	}
	select {
	case <-time.After(pause):
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := r.Temporal.Start(ctx); err != nil {
		return err
	}
	return r.Temporal.WaitReady(ctx, 2*time.Minute)
}

// Close stops every process, drops the database and removes the run
// directory, unless keep is set (its logs then help find out why).
func (r *Rig) Close(keep bool) {
	for _, p := range []*Proc{r.API, r.Worker, r.Temporal} {
		if p != nil {
			p.Stop()
		}
	}
	if r.TC != nil {
		r.TC.Close()
	}
	if r.Pool != nil {
		r.Pool.Close()
	}
	if r.dbName != "" {
		if err := r.dropDatabase(); err != nil {
			r.log.Error("could not drop the soak database; drop it by hand", "database", r.dbName, "err", err)
		}
	}
	if keep {
		r.log.Info("run directory kept (logs of every process)", "dir", r.Dir)
		return
	}
	_ = os.RemoveAll(r.Dir)
}

// createDatabase makes parcours_soak_<random> on the admin URL's server;
// `parcours migrate up` then migrates it.
func (r *Rig) createDatabase(ctx context.Context) error {
	admin, err := pgx.Connect(ctx, r.adminURL)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL at %s (set TEST_DATABASE_URL): %w", redact(r.adminURL), err)
	}
	defer admin.Close(context.Background())
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "parcours_soak_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	r.dbName = name
	u, err := url.Parse(r.adminURL)
	if err != nil {
		return fmt.Errorf("parse database URL: %w", err)
	}
	u.Path = "/" + name
	r.DBURL = u.String()
	cfg, err := pgxpool.ParseConfig(r.DBURL)
	if err != nil {
		return err
	}
	cfg.MaxConns = 4
	if r.Pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return fmt.Errorf("open pool: %w", err)
	}
	return nil
}

func (r *Rig) dropDatabase() error {
	if r.Pool != nil {
		r.Pool.Close()
		r.Pool = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var c *pgx.Conn
	// PostgreSQL may be restarting (R5): try for a while.
	err := waitUntil(ctx, 25*time.Second, "PostgreSQL", func() (bool, error) {
		var err error
		c, err = pgx.Connect(ctx, r.adminURL)
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("drop database %s: %w", r.dbName, err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{r.dbName}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", r.dbName, err)
	}
	return nil
}

// withQuery adds a query parameter to a database URL.
func withQuery(raw, kv string) string {
	if strings.Contains(raw, "?") {
		return raw + "&" + kv
	}
	return raw + "?" + kv
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// waitUntil polls cond every 100 ms until it holds, fails, or timeout passes.
func waitUntil(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Proc is one rig process: started, killed with SIGKILL, started again. Its
// output goes to a log file, appended across restarts.
type Proc struct {
	Name   string
	bin    string
	args   []string
	env    []string
	log    string
	marker string // a line the process prints once it is ready; "" for none

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	ready  chan struct{}
	// Starts and Kills count what happened to the process.
	Starts, Kills int
}

func newProc(name, bin string, env []string, logPath, marker string, args ...string) *Proc {
	return &Proc{Name: name, bin: bin, args: args, env: env, log: logPath, marker: marker}
}

// Start runs the process in its own process group (a Ctrl-C to the soak
// does not reach it; Close stops it).
func (p *Proc) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.exited:
		default:
			return fmt.Errorf("%s is already running", p.Name)
		}
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "\n===== soak: start %d of %s at %s =====\n", p.Starts+1, p.Name, time.Now().Format(time.RFC3339Nano))
	ready := make(chan struct{})
	if p.marker == "" {
		close(ready)
	}
	w := &markerWriter{f: f, marker: p.marker, ready: ready, seen: p.marker == ""}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(exited)
	}()
	p.cmd, p.exited, p.ready = cmd, exited, ready
	p.Starts++
	return nil
}

// WaitReady waits for the process's ready line.
func (p *Proc) WaitReady(ctx context.Context, timeout time.Duration) error {
	p.mu.Lock()
	ready, exited := p.ready, p.exited
	p.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-exited:
		return fmt.Errorf("%s exited before it was ready; see %s:\n%s", p.Name, p.log, tail(p.log, 2000))
	case <-time.After(timeout):
		return fmt.Errorf("%s not ready after %s; see %s:\n%s", p.Name, timeout, p.log, tail(p.log, 2000))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("%s was never started", p.Name)
	}
	select {
	case <-exited:
		return fmt.Errorf("%s had already exited; see %s:\n%s", p.Name, p.log, tail(p.log, 2000))
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", p.Name, err)
	}
	<-exited
	p.mu.Lock()
	p.Kills++
	p.mu.Unlock()
	return nil
}

// Stop asks the process to stop (SIGTERM), then kills it after 15 s.
func (p *Proc) Stop() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
}

// markerWriter copies output to the log file and closes ready when the
// marker appears.
type markerWriter struct {
	f      *os.File
	marker string
	ready  chan struct{}
	mu     sync.Mutex
	buf    []byte
	seen   bool
}

func (w *markerWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.seen {
		w.buf = append(w.buf, b...)
		if bytes.Contains(w.buf, []byte(w.marker)) {
			w.seen = true
			w.buf = nil
			close(w.ready)
		} else if len(w.buf) > 8192 {
			w.buf = w.buf[len(w.buf)-len(w.marker):]
		}
	}
	return w.f.Write(b)
}

// tail returns the last n bytes of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

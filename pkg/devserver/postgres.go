package devserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/server/common/testing/freeport"
)

// Postgres is the database `parcours dev` ended up using.
type Postgres struct {
	// URL to connect to.
	URL string
	// Private is true when devserver started its own cluster under DataDir/pg.
	Private bool
	// Created is true when the database did not exist and was created.
	Created bool
	stop    func() error
}

// Stop stops a private cluster; it does nothing for an external server.
func (p *Postgres) Stop() error {
	if p.stop == nil {
		return nil
	}
	return p.stop()
}

// EnsurePostgres makes databaseURL usable: it creates the database if the
// server answers but the database is missing. If nothing answers and
// PostgreSQL server binaries are installed (Debian: /usr/lib/postgresql/*/bin),
// it starts a private cluster under dataDir/pg on a free port instead.
// Otherwise it fails with a message that says how to get PostgreSQL.
func EnsurePostgres(ctx context.Context, databaseURL, dataDir string) (*Postgres, error) {
	created, err := ensureDatabase(ctx, databaseURL)
	if err == nil {
		return &Postgres{URL: databaseURL, Created: created}, nil
	}
	if !isUnreachable(err) {
		return nil, err
	}
	bin := findPostgresBin()
	if bin == "" {
		return nil, fmt.Errorf("no PostgreSQL answers at %s (%v) and no PostgreSQL server is installed here.\n"+
			"Install one (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql) "+
			"or point DATABASE_URL at a running server", redact(databaseURL), err)
	}
	p, err := startPrivateCluster(ctx, bin, filepath.Join(dataDir, "pg"))
	if err != nil {
		return nil, fmt.Errorf("no PostgreSQL answers at %s; starting a private cluster failed: %w", redact(databaseURL), err)
	}
	if p.Created, err = ensureDatabase(ctx, p.URL); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}

// ensureDatabase connects to the database, creating it if it is missing.
func ensureDatabase(ctx context.Context, databaseURL string) (created bool, err error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return false, fmt.Errorf("DATABASE_URL is not a valid PostgreSQL URL: %w", err)
	}
	cfg.ConnectTimeout = 5 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return false, conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
		return false, fmt.Errorf("connect to %s: %w", redact(databaseURL), err)
	}
	name := cfg.Database
	adminCfg := cfg.Copy()
	adminCfg.Database = "postgres"
	admin, err := pgx.ConnectConfig(ctx, adminCfg)
	if err != nil {
		return false, fmt.Errorf("database %q does not exist and connecting to database \"postgres\" to create it failed: %w", name, err)
	}
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: created meanwhile
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create database %q: %w", name, err)
	}
	return true, nil
}

func isUnreachable(err error) bool {
	var netErr net.Error
	var opErr *net.OpError
	if errors.As(err, &netErr) || errors.As(err, &opErr) {
		return true
	}
	// pgconn wraps dial failures in a ConnectError whose text says so.
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "no such file or directory") || strings.Contains(s, "dial error")
}

// findPostgresBin returns the newest /usr/lib/postgresql/N/bin holding initdb,
// or a directory on PATH that holds it.
func findPostgresBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// startPrivateCluster initialises (once) and starts a cluster in dir. As
// PostgreSQL refuses to run as root, a root caller runs it as the "postgres"
// system user.
func startPrivateCluster(ctx context.Context, bin, dir string) (*Postgres, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	dir = abs
	runAs := ""
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			return nil, errors.New("running as root and there is no \"postgres\" system user to run PostgreSQL as")
		}
		runAs = "postgres"
	}
	run := func(ctx context.Context, name string, args ...string) error {
		cmdName := filepath.Join(bin, name)
		if runAs != "" {
			args = append([]string{"-u", runAs, "--", cmdName}, args...)
			cmdName = "runuser"
		}
		out, err := exec.CommandContext(ctx, cmdName, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if runAs != "" {
		if out, err := exec.CommandContext(ctx, "chown", "-R", runAs, dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("chown %s: %w: %s", dir, err, out)
		}
		// The postgres user must be able to reach dir: let it traverse (not
		// list) the data directory, then check every ancestor lets it too.
		if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
			return nil, err
		}
		if out, err := exec.CommandContext(ctx, "runuser", "-u", runAs, "--", "test", "-w", dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("the %q user cannot reach %s (a parent directory is private?); set PARCOURS_DATA_DIR elsewhere or point DATABASE_URL at a server: %v %s", runAs, dir, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := run(ctx, "initdb", "-D", dir, "--auth=trust", "--username=parcours", "--encoding=UTF8", "--no-instructions"); err != nil {
			return nil, err
		}
	}
	port := freeport.MustGetFreePort()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s", port, dir)
	if err := run(ctx, "pg_ctl", "-D", dir, "-o", opts, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "start"); err != nil {
		return nil, err
	}
	stop := func() error {
		// The caller's context is usually cancelled by now (Ctrl-C): stop on a fresh one.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return run(ctx, "pg_ctl", "-D", dir, "-m", "fast", "-w", "stop")
	}
	u := url.URL{Scheme: "postgres", User: url.User("parcours"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Path: "/parcours"}
	return &Postgres{URL: u.String(), Private: true, stop: stop}, nil
}

// redact hides a password in a URL for messages.
func redact(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "DATABASE_URL"
	}
	return u.Redacted()
}

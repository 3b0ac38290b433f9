package bench

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Machine describes where a run happened, for the report's header.
type Machine struct {
	Cores      int
	GOMAXPROCS int
	CPU        string
	MemoryMB   int
	OS, Arch   string
	GoVersion  string
	// Postgres is the server version; SynchronousCommit and Fsync its
	// durability settings, which bound every durable write rate.
	Postgres          string
	SynchronousCommit string
	Fsync             string
	// Version is the parcours build being measured.
	Version string
	// Setup says how Parcours was run (pool size, load driver).
	Setup string
	// LoadStart and LoadEnd are the 1, 5 and 15 minute load averages when
	// the run started and ended: other jobs on the machine slow every row.
	LoadStart, LoadEnd string
}

// describeMachine reads what it can; a field it cannot read stays empty.
func describeMachine(ctx context.Context, databaseURL, version string) Machine {
	m := Machine{
		Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version(), Version: version,
	}
	m.CPU = procField("/proc/cpuinfo", "model name")
	m.LoadStart = loadAverage()
	if kb := procField("/proc/meminfo", "MemTotal"); kb != "" {
		n, _ := strconv.Atoi(strings.Fields(kb)[0])
		m.MemoryMB = n / 1024
	}
	if c, err := pgx.Connect(ctx, databaseURL); err == nil {
		defer c.Close(context.Background())
		_ = c.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('synchronous_commit'), current_setting('fsync')`).
			Scan(&m.Postgres, &m.SynchronousCommit, &m.Fsync)
	}
	return m
}

// procField returns the value of the first "name: value" line of a /proc
// file, or "" (not on Linux, or no such line).
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// loadAverage returns the 1, 5 and 15 minute load averages, or "" when the
// system does not say.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

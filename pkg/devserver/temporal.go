// Package devserver runs, inside the `parcours dev` process, what a real
// deployment gets from outside: a Temporal server (SQLite persisted on disk,
// so journeys survive a restart) with its Web UI, and, when no PostgreSQL
// answers, a private PostgreSQL cluster.
//
// It is modelled on go.temporal.io/server/temporaltest's lite server (which is
// internal to that module), with file persistence and the UI added.
package devserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	"github.com/temporalio/ui-server/v2/server/server_options"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/testing/freeport"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", the one Temporal's SQLite store uses
)

// TemporalOptions configures the embedded Temporal server.
type TemporalOptions struct {
	// DataDir holds temporal.db (the SQLite store) and temporal.log. Required.
	DataDir string
	// IP the frontend and UI bind to. Default 127.0.0.1.
	IP string
	// Port of the frontend gRPC service. Default 7233.
	Port int
	// UIPort of the Web UI; 0 disables the UI.
	UIPort int
	// Namespace registered at start. Default "default".
	Namespace string
	// LogLevel of the server's own log (written to DataDir/temporal.log). Default "warn".
	LogLevel string
	// PProfPort serves the server's Go profiles (/debug/pprof) when not 0.
	PProfPort int
}

// Temporal is a running embedded Temporal server.
type Temporal struct {
	server  temporal.Server
	ui      *uiserver.Server
	address string
	uiURL   string
}

// StartTemporal starts the server and, if asked, its UI, and returns once the
// frontend accepts connections.
func StartTemporal(ctx context.Context, o TemporalOptions) (*Temporal, error) {
	if o.DataDir == "" {
		return nil, errors.New("start temporal: DataDir is required")
	}
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = 7233
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("start temporal: %w", err)
	}
	// Fail early and clearly on taken ports: the UI server would otherwise
	// exit the whole process from its own goroutine.
	for _, p := range []int{o.Port, o.UIPort} {
		if p == 0 {
			continue
		}
		if err := checkPortFree(o.IP, p); err != nil {
			return nil, fmt.Errorf("start temporal: %w", err)
		}
	}

	address := net.JoinHostPort(o.IP, strconv.Itoa(o.Port))
	sqlCfg := &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: filepath.Join(o.DataDir, "temporal.db"),
		ConnectAttributes: map[string]string{
			"mode":         "rwc",
			"journal_mode": "wal",
			// NORMAL is durable across process crashes in WAL mode; only an OS
			// crash can lose the last transactions. Fine for a dev server.
			"synchronous":  "1",
			"busy_timeout": "10000",
			// A 64 MiB page cache (the default is 2 MiB) and the file mapped
			// in memory: Temporal reads its rows back at every task, and
			// reading them from SQLite's cache costs no system call. With
			// the larger GC target of `parcours temporal`, 12% less CPU per
			// journey run on the soak rig.
			"cache_size": "-65536",
			"mmap_size":  "268435456",
			"temp_store": "2",
		},
		// One connection, as Temporal's own dev server does: SQLite has a
		// single writer, and several connections only trade throughput for
		// SQLITE_BUSY errors under load.
		MaxConns:     1,
		MaxIdleConns: 1,
	}
	partitions, err := taskQueuePartitions(o.DataDir, sqlCfg.DatabaseName)
	if err != nil {
		return nil, fmt.Errorf("start temporal: %w", err)
	}
	if _, err := os.Stat(sqlCfg.DatabaseName); errors.Is(err, os.ErrNotExist) {
		if err := sqliteschema.SetupSchema(sqlCfg); err != nil {
			return nil, fmt.Errorf("start temporal: set up SQLite schema: %w", err)
		}
	}
	if err := forgetMembership(sqlCfg.DatabaseName); err != nil {
		return nil, fmt.Errorf("start temporal: %w", err)
	}
	ns, err := sqliteschema.NewNamespaceConfig("active", o.Namespace, false, nil)
	if err != nil {
		return nil, fmt.Errorf("start temporal: namespace config: %w", err)
	}
	if err := sqliteschema.CreateNamespaces(sqlCfg, ns); err != nil {
		return nil, fmt.Errorf("start temporal: create namespace %s: %w", o.Namespace, err)
	}

	cfg := serverConfig(o, sqlCfg)
	logger := log.NewZapLogger(log.BuildZapLogger(log.Config{
		Level:      o.LogLevel,
		OutputFile: filepath.Join(o.DataDir, "temporal.log"),
	}))
	authorizer, err := authorization.GetAuthorizerFromConfig(&cfg.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("start temporal: authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&cfg.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("start temporal: claim mapper: %w", err)
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			// Custom search attributes registered at start are usable at once.
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
			dynamicconfig.FrontendEnableUpdateWorkflowExecution.Key():   []dynamicconfig.ConstrainedValue{{Value: true}},
			// The events cache is per history shard, sized (512 KiB) for
			// clusters of hundreds of shards; this server has one, so with
			// thousands of runs in flight their events no longer fit and
			// are read back from SQLite. (Not measured on its own: the
			// soak figures in docs/operations.md are with all three.)
			dynamicconfig.EventsCacheMaxSizeBytes.Key():             []dynamicconfig.ConstrainedValue{{Value: 64 << 20}},
			dynamicconfig.MatchingNumTaskqueueReadPartitions.Key():  []dynamicconfig.ConstrainedValue{{Value: partitions}},
			dynamicconfig.MatchingNumTaskqueueWritePartitions.Key(): []dynamicconfig.ConstrainedValue{{Value: partitions}},
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("start temporal: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("start temporal: %w", err)
	}
	t := &Temporal{server: srv, address: address}
	if err := waitTCP(ctx, address, 30*time.Second); err != nil {
		_ = srv.Stop()
		return nil, fmt.Errorf("start temporal: frontend %s: %w", address, err)
	}

	if o.UIPort != 0 {
		t.ui = uiserver.NewServer(server_options.WithConfigProvider(&uiconfig.Config{
			TemporalGRPCAddress: address,
			Host:                o.IP,
			Port:                o.UIPort,
			EnableUI:            true,
			DefaultNamespace:    o.Namespace,
			HideLogs:            true,
			DisableNewsFetch:    true, // no outbound network from a dev box
			CORS:                uiconfig.CORS{CookieInsecure: true},
		}))
		go func() { _ = t.ui.Start() }()
		t.uiURL = "http://" + net.JoinHostPort(uiHost(o.IP), strconv.Itoa(o.UIPort))
		if err := waitHTTP(ctx, t.uiURL+"/healthz", 30*time.Second); err != nil {
			t.Stop()
			return nil, fmt.Errorf("start temporal UI: %w", err)
		}
	}
	return t, nil
}

// Address is the frontend's host:port for SDK clients.
func (t *Temporal) Address() string { return t.address }

// UIURL is the Web UI's base URL, or "" when the UI is disabled.
func (t *Temporal) UIURL() string { return t.uiURL }

// Stop shuts the UI and the server down.
func (t *Temporal) Stop() error {
	if t.ui != nil {
		t.ui.Stop()
	}
	return t.server.Stop()
}

// taskQueuePartitions is how many partitions each task queue gets. One
// server and a few workers need one: every poller then waits on the same
// partition and a task meets one at once, instead of landing on one of the
// default four where nobody polls at that moment, to be written to the
// database, forwarded and read back. On the soak rig (R20, 25 journey
// starts/s) one partition and no metrics took the backlog left when the
// load stopped from 1m42s to drain to 28s. Fewer read partitions would
// strand the tasks queued on the others, so a data directory created
// before this choice (no marker file) keeps Temporal's default of four.
func taskQueuePartitions(dataDir, dbPath string) (int, error) {
	marker := filepath.Join(dataDir, "temporal-one-partition")
	if _, err := os.Stat(marker); err == nil {
		return 1, nil
	}
	if _, err := os.Stat(dbPath); err == nil {
		return 4, nil // an older data directory: keep what its queues have
	}
	if err := os.WriteFile(marker, []byte("task queues of this Temporal store have one partition (pkg/devserver)\n"), 0o600); err != nil {
		return 0, fmt.Errorf("write %s: %w", marker, err)
	}
	return 1, nil
}

// forgetMembership clears the cluster membership a previous run left in the
// SQLite file. Each run binds its internal services to new free ports; left
// in place, the old, dead hosts make the new ring answer "Not enough hosts to
// serve the request" until they expire. This process is the file's only user.
func forgetMembership(dbPath string) error {
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("open %s: %w", dbPath, err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM cluster_membership`); err != nil {
		return fmt.Errorf("clear stale cluster membership in %s: %w", dbPath, err)
	}
	return nil
}

func serverConfig(o TemporalOptions, sqlCfg *config.SQL) *config.Config {
	svc := func(grpcPort int) config.Service {
		return config.Service{RPC: config.RPC{
			GRPCPort:       grpcPort,
			MembershipPort: freeport.MustGetFreePort(),
			BindOnIP:       o.IP,
		}}
	}
	cfg := &config.Config{}
	cfg.Global.Membership = config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: o.IP}
	// No metrics: nobody scrapes a dev server's (they were served on a
	// random port), and recording them costs CPU on every call.
	cfg.Global.PProf = config.PProf{Port: o.PProfPort, Host: o.IP}
	cfg.Persistence = config.Persistence{
		DefaultStore:     sqliteplugin.PluginName,
		VisibilityStore:  sqliteplugin.PluginName,
		NumHistoryShards: 1,
		DataStores:       map[string]config.DataStore{sqliteplugin.PluginName: {SQL: sqlCfg}},
	}
	cfg.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        "active",
		CurrentClusterName:       "active",
		ClusterInformation: map[string]cluster.ClusterInformation{
			"active": {Enabled: true, InitialFailoverVersion: 1, RPCAddress: net.JoinHostPort(o.IP, strconv.Itoa(o.Port))},
		},
	}
	cfg.DCRedirectionPolicy = config.DCRedirectionPolicy{Policy: "noop"}
	cfg.Services = map[string]config.Service{
		"frontend": svc(o.Port),
		"history":  svc(freeport.MustGetFreePort()),
		"matching": svc(freeport.MustGetFreePort()),
		"worker":   svc(freeport.MustGetFreePort()),
	}
	cfg.Archival = config.Archival{
		History:    config.HistoryArchival{State: "disabled"},
		Visibility: config.VisibilityArchival{State: "disabled"},
	}
	cfg.NamespaceDefaults = config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
		History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
		Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
	}}
	cfg.PublicClient = config.PublicClient{HostPort: net.JoinHostPort(o.IP, strconv.Itoa(o.Port))}
	return cfg
}

func uiHost(ip string) string {
	if ip == "127.0.0.1" || ip == "0.0.0.0" || ip == "" {
		return "localhost"
	}
	return ip
}

func checkPortFree(ip string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %d on %s is already in use (is another `parcours dev` or Temporal running?): %w", port, ip, err)
	}
	return l.Close()
}

func waitTCP(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
			err = fmt.Errorf("%s answered %s", url, resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
